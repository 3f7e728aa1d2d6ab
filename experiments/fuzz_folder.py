r"""Bad-data fuzzing of the user-folder source (`sora_jax/data/fuzz.py`): >= 100 broken and awkward
files scanned, loaded and batched; what was skipped and why, written as JSON. Any exception is a
crash and fails.

    .venv/bin/python experiments/fuzz_folder.py --out=out/fuzz_folder.json
"""

import json
import pathlib
import tempfile

from absl import app, flags

from sora_jax.data.fuzz import fuzz

flags.DEFINE_integer("seed", 0, 'Random seed.')
flags.DEFINE_string("out", "out/fuzz_folder.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    with tempfile.TemporaryDirectory() as directory:
        report = fuzz(pathlib.Path(directory) / "folder", args.seed)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"{report['cases']} bad or awkward files: {report['usable']} usable, {report['skipped']} skipped "
          f"(counted, with reasons), crashes: {report['crashes']}, unaccounted: {len(report['unaccounted'])}")
    for reason, count in report["skip_reasons"].items():
        print(f"  {count:3d}  {reason}")


if __name__ == "__main__":
    app.run(main)
