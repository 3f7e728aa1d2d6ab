r"""Draws which parts of `sora_jax` import which, one arrow per pair of parts, into
docs/imports.md (read from the source by `tests/test_layering.py`'s import graph, so imports
inside functions count).

    .venv/bin/python docs/make_import_graph.py --out=docs/imports.md
"""

import collections
import pathlib
import sys

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout, for tests/
from tests.test_layering import import_graph  # noqa: E402

flags.DEFINE_string("out", "docs/imports.md", "Where to write the drawing (Markdown).")

# The parts of the package, top to bottom: what launches training, then what serves a trained model.
PARTS = ("cli", "configs", "train", "scaling", "generate", "prompts", "pipelines", "checkpoints", "evaluation",
         "diffusion", "models", "kernels", "data", "host_memory")


def part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "sora_jax"


def edges() -> dict[str, list[str]]:
    arrows = collections.defaultdict(set)
    for module, imported in import_graph().items():
        for name in imported:
            source, target = part(module), part(name)
            if source != target and target in PARTS and source in PARTS:
                arrows[source].add(target)
    return {source: sorted(targets, key=PARTS.index) for source, targets in arrows.items()}


def main(argv: list[str]) -> None:
    del argv  # flags only
    arrows = edges()
    importers_of_train = sorted(source for source, targets in arrows.items() if "train" in targets)
    lines = ["# Import drawing of `sora_jax`", "",
             "Made by `.venv/bin/python docs/make_import_graph.py`; `tests/test_layering.py` holds the rules.",
             "", "```"]
    for source in PARTS:
        if source in arrows:
            lines.append(f"{source:<12} -> {', '.join(arrows[source])}")
    lines += ["```", "", f"`train/` is imported by: {', '.join(importers_of_train)} — what launches training "
              "(`scaling` only in `ladder.py`, the runner of ladders and sweeps)."]
    pathlib.Path(flags.FLAGS.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
