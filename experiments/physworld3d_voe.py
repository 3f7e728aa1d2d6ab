r"""PhysWorld 3D's violation-of-expectation kinds on every rung of a ladder: which rungs find the
possible clips likelier, per kind, with bootstrap CIs — the easy kinds (`depth_pop`, `cut_swap`,
`parallax_reversed`) next to the subtle ones (`depth_nudge`, `shape_pop`) that are there to rank
rungs the easy ones cannot.

    .venv/bin/python experiments/physworld3d_voe.py --ladder=runs/ladder_physworld3d \
        --quads=32 --results=experiments/results/physworld3d_voe
    # a kind added later, merged into the same table: --kinds=size_drift

Quadruplets: `data/violations3d.py`; the test: `evaluation/likelihood.voe_scores` (the same call
as the ladder's comparison, with more quadruplets per kind).
"""

import json
import pathlib

from absl import app, flags

_LADDER = flags.DEFINE_string("ladder", None, "A ladder workdir on physworld3d (its rungs are subfolders).")
_RUNGS = flags.DEFINE_list("rungs", ["1x", "4x", "32x"], "Rungs to score.")
_QUADS = flags.DEFINE_integer("quads", 32, "Quadruplets per kind.")
_RESULTS = flags.DEFINE_string("results", "", "Write physworld3d_voe.json / .md here (optional).")
_KINDS = flags.DEFINE_list("kinds", None, "Score only these kinds (same quadruplets as a full run) and merge them "
                           "into --results' JSON, keeping the other kinds' rows.")


def main(argv):
    del argv
    from sora_jax import generate
    from sora_jax.data import violations3d
    from sora_jax.evaluation import likelihood
    from sora_jax.scaling import world_evals

    world = world_evals.Physworld3dEval()
    saved = pathlib.Path(_RESULTS.value or ".") / "physworld3d_voe.json"
    table = {rung: {} for rung in _RUNGS.value}
    if _KINDS.value and saved.exists():
        kept = json.loads(saved.read_text())
        if kept["quads"] != _QUADS.value:
            raise SystemExit(f"{saved} has {kept['quads']} quadruplets a kind, not --quads={_QUADS.value}")
        table = {rung: kept["voe"].get(rung, {}) for rung in _RUNGS.value}
    for rung in _RUNGS.value:
        generator = generate.Generator(pathlib.Path(_LADDER.value) / rung)
        table[rung].update(likelihood.voe_scores(generator.pipeline, generator.params, _QUADS.value, world.clip,
                                                 violations3d.KINDS, quadruplet=violations3d.quadruplet,
                                                 only=_KINDS.value))
        print(rung, {k: round(v["mean"], 3) for k, v in table[rung].items()}, flush=True)
    lines = ["| kind | " + " | ".join(_RUNGS.value) + " |", "|---" * (len(_RUNGS.value) + 1) + "|"]
    for kind in (k for k in violations3d.KINDS if all(k in table[r] for r in _RUNGS.value)):
        cells = [f"{table[r][kind]['mean']:.2f} [{table[r][kind]['low']:.2f}, {table[r][kind]['high']:.2f}]"
                 for r in _RUNGS.value]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + (f"\n\nShare of {_QUADS.value} quadruplets per kind whose possible clips have the "
                                   "lower summed flow loss (95 % bootstrap CI); 0.5 is chance.\n")
    print(markdown)
    if _RESULTS.value:
        out = pathlib.Path(_RESULTS.value)
        out.mkdir(parents=True, exist_ok=True)
        (out / "physworld3d_voe.json").write_text(json.dumps({"ladder": _LADDER.value, "quads": _QUADS.value,
                                                              "voe": table}, indent=1))
        (out / "physworld3d_voe.md").write_text(markdown)
        _pictures(out, _KINDS.value or violations3d.KINDS, world.clip)


def _pictures(out: pathlib.Path, kinds, clip_shape) -> None:
    """`<kind>_quadruplet.png` per kind: the first quadruplet scored, rows A, B (possible) then the
    two impossible clips, five frames each (first to last), 4x nearest neighbour."""
    import imageio.v3 as iio

    from sora_jax.data import preview, violations3d
    from sora_jax.evaluation import likelihood

    for kind in kinds:
        quad = violations3d.quadruplet(likelihood.quadruplet_seed(violations3d.KINDS.index(kind), 0, 0), kind,
                                       *clip_shape)
        sheet = preview.contact_sheet([*quad.possible, *quad.impossible], columns=5, cell=4 * max(clip_shape[1:]))
        iio.imwrite(out / f"{kind}_quadruplet.png", sheet)


if __name__ == "__main__":
    app.run(main)
