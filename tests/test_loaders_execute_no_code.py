"""Loading paths read data formats only (safetensors, Orbax, ArrayRecord, JSON, NumPy without
pickle): no pickle, no eval/exec, no torch.load anywhere in the package."""

import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "sora_jax"
FORBIDDEN = {
    r"\bimport pickle\b|\bfrom pickle\b|\bcloudpickle\b|\bdill\b": "pickle",
    r"allow_pickle\s*=\s*True": "np.load with pickle",
    r"(?<![\w.])eval\(|(?<![\w.])exec\(": "eval/exec",
    r"torch\.load|joblib\.load": "pickle-based loaders",
}


def test_no_code_executing_loaders():
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, what in FORBIDDEN.items():
                if re.search(pattern, line):
                    hits.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {what}: {line.strip()}")
    assert not hits, "\n".join(hits)
