"""What compute buys, measured the same way for every rung of a ladder.

Every rung samples the same prompts with the same noise (common random numbers): the captions
of held-out PhysWorld scenes (seeds 90000+, never in the training set's seed range), whose
ground truth the probes compare against. Per rung: validation loss (fixed clips x timestep
quantiles x noise, from training), world probes with bootstrap CIs over `probe_samples`
videos, violation-of-expectation likelihood tests; the same probes on the ground-truth renders
and the VAE's reconstructions are the ceilings. Writes:

    ladder.json               every number above, per rung, with the ceilings and the fits
    ladder.md                 the same as a table
    side_by_side.mp4 / .gif   a labelled grid: one row per prompt, columns 1x | 4x | 32x | truth
    side_by_side.png          its frame 3/4 of the way through
    loss_vs_compute.png       validation loss vs training FLOPs with the power-law fit;
                              per-timestep curves
    probes_vs_compute.png     each probe vs compute, CIs, ceilings dashed
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from sora_jax.data import video_io
from sora_jax.scaling import plots, world_evals
from sora_jax.scaling.world_evals import PROBE_CLIP, PROBE_SEED, probe_scenes, sample_scenes, sample_videos, score

# experiments/ use these through compare
__all__ = ["PROBE_CLIP", "PROBE_SEED", "probe_scenes", "sample_scenes", "sample_videos", "score"]

SHOWN = world_evals.PhysworldEval.shown  # the physworld ladder's probes (a blockworld ladder's: its own)


def ceilings(pipeline, scenes, scorer=None) -> dict:
    """The probes (`scorer(videos, scenes)`, default PhysWorld's `score`) on ground-truth renders
    and on their VAE reconstructions."""
    from sora_jax.pipelines import vae as vae_pipeline

    scorer = scorer or score
    truth = np.stack([s.video for s in scenes])
    reconstructed = vae_pipeline.reconstruct(pipeline, truth)
    return {"truth": scorer(truth, scenes), "vae": scorer(reconstructed, scenes)}


def evaluate_rung(run_dir: pathlib.Path, scenes, probe_samples: int, voe_quads: int, world=None
                  ) -> tuple[dict, np.ndarray, object]:
    from sora_jax import generate

    world = world or world_evals.PhysworldEval()
    generator = generate.Generator(run_dir)
    pipeline, params = generator.pipeline, generator.params
    videos = world.sample(pipeline, params, scenes[:probe_samples])
    result = {"probes": world.score(videos, scenes[:probe_samples]),
              "voe": world.voe(pipeline, params, voe_quads) if voe_quads else {}}
    return result, videos, pipeline


def label_strip(labels: list[str], width: int, height: int = 14) -> np.ndarray:
    """uint8 [height, len(labels) * width, 3]: each label centred over its column."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width * len(labels), height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for index, label in enumerate(labels):
        left, _, right, _ = draw.textbbox((0, 0), label)
        draw.text((index * width + (width - (right - left)) // 2, 1), label, fill=(0, 0, 0))
    return np.asarray(strip)


def text_lines(text: str, width: int, line_height: int = 13, max_lines: int = 2) -> np.ndarray:
    """uint8 [lines * line_height, width, 3]: `text` wrapped to `width` pixels, left-aligned."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines, current = [], ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and probe.textlength(trial) > width - 8:
            lines.append(current)
            current = word
        else:
            current = trial
    lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [lines[max_lines - 1] + " ..."]
    image = Image.new("RGB", (width, line_height * len(lines)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((4, number * line_height), line, fill=(60, 60, 60))
    return np.asarray(image)


def side_by_side(columns: dict[str, np.ndarray], rows: int, prompts: list[str] | None = None, scale: int = 4,
                 gap: int = 4) -> np.ndarray:
    """columns {label: uint8 [N, T, H, W, 3]} -> one video [T, height, width, 3]: a header of
    column labels, then per row its prompt above the clips, each clip enlarged `scale` times
    (nearest neighbour: every generated pixel stays a sharp block)."""
    labels = list(columns)
    frames, height, width = next(iter(columns.values())).shape[1:4]
    cell_h, cell_w = height * scale, width * scale
    total_w = len(labels) * (cell_w + gap)
    parts = [np.broadcast_to(label_strip(labels, cell_w + gap), (frames, 14, total_w, 3))]
    for r in range(rows):
        if prompts is not None:
            caption = text_lines(prompts[r], total_w)
            parts.append(np.broadcast_to(caption, (frames, *caption.shape)))
        band = np.full((frames, cell_h + gap, total_w, 3), 255, np.uint8)
        for c, label in enumerate(labels):
            clip = np.repeat(np.repeat(columns[label][r], scale, axis=1), scale, axis=2)
            band[:, :cell_h, c * (cell_w + gap):c * (cell_w + gap) + cell_w] = clip
        parts.append(band)
    return np.concatenate(parts, axis=1)


def still(grid: np.ndarray) -> np.ndarray:
    """A side-by-side's frame 3/4 of the way through (a one-frame video: the PNG for the README)."""
    return grid[len(grid) * 3 // 4:]


def write_experiment(out: pathlib.Path, name: str, report: dict, markdown: str, columns: dict[str, np.ndarray],
                     prompts: list[str]) -> None:
    """An experiment's results: `name`.json, `name`.md (also printed) and side_by_side.png, one row
    per prompt of `columns` ({label: uint8 [N, T, H, W, 3]})."""
    out.mkdir(parents=True, exist_ok=True)
    video_io.write_video(out / "side_by_side.png", still(side_by_side(columns, len(prompts), prompts, scale=4)))
    (out / f"{name}.json").write_text(json.dumps(report, indent=1, default=jsonable))
    (out / f"{name}.md").write_text(markdown)
    print(markdown)


def compare(workdir: str | pathlib.Path, summaries: list[dict], config=None, probe_samples: int = 128,
            voe_quads: int = 32, shown_rows: int = 4) -> dict:
    from sora_jax.scaling import fit

    workdir = pathlib.Path(workdir)
    world = world_evals.for_dataset(config.data.dataset if config is not None else "physworld/tiny")
    scenes = world.scenes(probe_samples)
    rungs, columns, pipeline = [], {}, None
    for summary in summaries:
        print(f"ladder: evaluating {summary['run']} ({probe_samples} samples, {voe_quads} VoE quadruplets per kind)",
              flush=True)
        result, videos, pipeline = evaluate_rung(workdir / summary["run"], scenes, probe_samples, voe_quads, world)
        rungs.append({**summary, **result})
        columns[summary["budget"]] = videos[:shown_rows]
    report = {"rungs": rungs, "ceilings": ceilings(pipeline, scenes, world.score), "probe_clip": world.clip,
              "probe_seeds": [world.seed, world.seed + probe_samples - 1], "world": world.name,
              "shown": list(world.shown), "lower_is_better": list(world.lower_is_better)}
    if config is not None:
        report["ladder"] = {k: v for k, v in config.ladder.items()}
    points = [(r["compute_flops"], r["val_loss"]) for r in rungs if r.get("compute_flops")]
    if len(points) >= 2:
        report["loss_fit"] = fit.fit_power_law(*zip(*points))
    columns["truth"] = np.stack([s.video for s in scenes[:shown_rows]])
    prompts = [s.caption for s in scenes[:shown_rows]]
    grid = side_by_side(columns, shown_rows, prompts, scale=4)
    video_io.write_video(workdir / "side_by_side.mp4", grid)
    video_io.write_video(workdir / "side_by_side.png", still(grid))  # one frame, for the README
    video_io.write_video(workdir / "side_by_side.gif", side_by_side(columns, shown_rows, prompts, scale=2))
    (workdir / "ladder.json").write_text(json.dumps(report, indent=1, default=jsonable))
    (workdir / "ladder.md").write_text(markdown_table(report))
    plots.plot_loss(report, workdir / "loss_vs_compute.png")
    plots.plot_probes(report, workdir / "probes_vs_compute.png", report["shown"])
    return report


def jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    return str(value)


def cell(stats: dict | None) -> str:
    if not stats or stats.get("mean") is None:
        return "–"
    return f"{stats['mean']:.3f} [{stats['low']:.3f}, {stats['high']:.3f}]"


MIN_SCORED = 10  # a probe scored on fewer videos than this (e.g. tracks followed end to end) is not marked


def separated(a: dict | None, b: dict | None) -> int:
    """+1 if b's 95 % CI lies wholly above a's, -1 if wholly below, 0 if they overlap, a value is
    missing or either rests on fewer than MIN_SCORED videos."""
    if not a or not b or None in (a.get("low"), a.get("high"), b.get("low"), b.get("high")):
        return 0
    if min(a.get("n", MIN_SCORED), b.get("n", MIN_SCORED)) < MIN_SCORED:
        return 0
    return 1 if b["low"] > a["high"] else -1 if b["high"] < a["low"] else 0


LOWER_IS_BETTER = world_evals.PhysworldEval.lower_is_better


def terminal_table(report: dict) -> str:
    """One screen: each probe at every rung, the VAE ceiling and ground truth. A rung's value is
    marked + (better) or - (worse) where its 95 % CI is clear of the first rung's (`separated`)."""
    rungs = report["rungs"]
    names = [r["budget"] for r in rungs] + ["VAE", "truth"]
    lines = [f"{'probe':<20}" + "".join(f"{n:>10}" for n in names)]
    lines.append(f"{'validation loss':<20}" + "".join(f"{r['val_loss']:>10.4f}" for r in rungs))
    better_count = 0
    lower_is_better = report.get("lower_is_better", LOWER_IS_BETTER)
    for key in report.get("shown", SHOWN):
        if all((r["probes"].get(key) or {}).get("mean") is None for r in rungs):
            continue
        cells, first = [], rungs[0]["probes"].get(key)
        for index, r in enumerate(rungs):
            stats = r["probes"].get(key) or {}
            sign = separated(first, stats) * (-1 if key in lower_is_better else 1) if index else 0
            better_count += sign > 0 and index == len(rungs) - 1
            mark = {1: "+", -1: "-", 0: " "}[sign]
            cells.append("–".rjust(10) if stats.get("mean") is None else f"{stats['mean']:>9.3f}{mark}")
        for name in ("vae", "truth"):
            stats = report["ceilings"][name].get(key) or {}
            cells.append("–".rjust(10) if stats.get("mean") is None else f"{stats['mean']:>9.3f} ")
        lines.append(f"{key:<20}" + "".join(cells))
    lines.append(f"+/-: 95 % CI clear of {rungs[0]['budget']}'s; {rungs[-1]['budget']} is better than "
                 f"{rungs[0]['budget']} on {better_count} probes")
    return "\n".join(lines)


def markdown_table(report: dict) -> str:
    rungs = report["rungs"]
    header = ["", *[f"{r['budget']} ({r['model']})" for r in rungs], "VAE recon.", "ground truth"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append("| training FLOPs | " + " | ".join(f"{r['compute_flops']:.2e}" for r in rungs) + " | | |")
    lines.append("| params (non-emb.) | " + " | ".join(f"{r['params']:,}" for r in rungs) + " | | |")
    lines.append("| validation loss | " + " | ".join(f"{r['val_loss']:.4f}" for r in rungs) + " | | |")
    for key in report.get("shown", SHOWN):
        cells = [cell(r["probes"].get(key)) for r in rungs]
        cells += [cell(report["ceilings"]["vae"].get(key)), cell(report["ceilings"]["truth"].get(key))]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for kind in (rungs[0].get("voe") or {}):
        lines.append(f"| VoE {kind} (chance 0.5) | " + " | ".join(cell(r["voe"][kind]) for r in rungs) + " | | |")
    return "\n".join(lines) + "\n"
