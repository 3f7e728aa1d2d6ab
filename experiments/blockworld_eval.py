r"""A trained BlockWorld model, measured: the rule probes on its samples — driven by the held-out
clips' actions (step-by-step control) and by their captions alone (the model picks the policy) —
beside ground truth and the VAE's reconstructions (the ceilings), the violation-of-expectation
quadruplets, and `sora-jax play`'s speed on this machine.

    .venv/bin/python experiments/blockworld_eval.py --workdir=runs/blockworld \
        --results=experiments/results/blockworld

Writes blockworld.json / .md and side_by_side.png (rows: held-out prompts; columns: truth, VAE,
sampled with actions, sampled from the caption alone).
"""

import json
import pathlib
import time

import numpy as np
from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", "runs/blockworld", "A run of sora_jax/configs/t2v.py:blockworld.")
_RESULTS = flags.DEFINE_string("results", None, "Write the results here.")
_SAMPLES = flags.DEFINE_integer("samples", 64, "Held-out clips sampled (and scored) per mode.")
_QUADS = flags.DEFINE_integer("quads", 16, "Violation-of-expectation quadruplets per kind.")
_PLAY_ACTIONS = flags.DEFINE_integer("play_actions", 24, "Actions played to time `sora-jax play` (after its window "
                                     "fills and compiles).")


def play_speed(workdir: str, actions: int, sequences: int = 8) -> dict:
    """Seconds per action and frames per second of `play.Game` once its window is full, and the
    action adherence of what it draws: `sequences` games of 8 random actions from their own
    start, read back by the rule probes."""
    from sora_jax import play
    from sora_jax.data import blockworld
    from sora_jax.evaluation import block_probes

    game = play.Game.load(workdir)
    moves = ["right", "right", "jump", "left", "place", "dig_down", "left", "none"]
    started = time.perf_counter()
    for i in range(game.context + 2 + actions):
        game.act(moves[i % len(moves)])
    speed = {**game.timing.summary(game.temporal), "wall_seconds_total": time.perf_counter() - started,
             "context_latent_frames": game.context, "steps": game.steps, "guidance": game.guidance}
    rng = np.random.default_rng(0)
    scores = []
    for seed in range(sequences):
        played = play.Game(game.pipeline, game.params, seed=seed)
        sent = list(rng.choice(["left", "right", "jump", "dig_front", "dig_down", "place"], 8))
        video = np.concatenate([played.first_frame[None], *(played.act(a) for a in sent)])
        reading = block_probes.read(video, blockworld.cell_size(*video.shape[1:3]))
        scores.append(block_probes.action_adherence(reading, [blockworld.ACTIONS.index(a) for a in sent])["score"])
    return {**speed, "adherence": block_probes.bootstrap_mean(np.array(scores))}


def main(argv):
    del argv
    from sora_jax.evaluation import block_probes
    from sora_jax.pipelines import t2v
    from sora_jax.pipelines import vae as vae_pipeline
    from sora_jax.scaling import compare, world_evals

    world = world_evals.BlockworldEval()
    pipeline, params, _, step = t2v.load(_WORKDIR.value)
    scenes = world.scenes(_SAMPLES.value)
    truth = np.stack([s.video for s in scenes])
    recon = vae_pipeline.reconstruct(pipeline, truth)
    with_actions = world.sample(pipeline, params, scenes)
    latent_shape = pipeline.vae.model.latent_shape((1, *world.clip, 3))[1:]
    caption_only = world_evals.sample_videos(pipeline, params, [s.caption for s in scenes], latent_shape)
    report = {"run": str(_WORKDIR.value), "step": step, "samples": len(scenes),
              "probes": {"truth": world.score(truth, scenes), "vae": world.score(recon, scenes),
                         "actions": world.score(with_actions, scenes),
                         "caption_only": block_probes.score_videos(  # adherence only where the caption names actions
                             caption_only, [[] if s.caption.endswith("explores.") else s.segments for s in scenes])},
              "voe": world.voe(pipeline, params, _QUADS.value) if _QUADS.value else {},
              "play": play_speed(_WORKDIR.value, _PLAY_ACTIONS.value)}
    columns = ("truth", "vae", "actions", "caption_only")
    lines = ["| probe | ground truth | VAE recon. | sampled with actions | caption only |", "|---|---|---|---|---|"]
    for probe in world.shown:
        lines.append(f"| {probe} | " + " | ".join(compare.cell(report["probes"][c].get(probe)) for c in columns) + " |")
    for kind, stats in report["voe"].items():
        lines.append(f"| VoE {kind} (chance 0.5) | | | {compare.cell(stats)} | |")
    speed = report["play"]
    lines.append(f"\n`sora-jax play` on this machine: {speed['seconds_per_action']:.3f} s per action "
                 f"(p90 {speed['p90_seconds_per_action']:.3f}), {speed['frames_per_second']:.1f} frames/s "
                 f"({speed['actions']} actions after the {speed['context_latent_frames']}-frame window filled); "
                 f"action adherence of its games {compare.cell(speed['adherence'])} (8 games of 8 random actions).")
    markdown = "\n".join(lines) + "\n"
    shown = min(4, len(scenes))
    videos = {"truth": truth[:shown], "VAE": recon[:shown], "with actions": with_actions[:shown],
              "caption only": caption_only[:shown]}
    prompts = [s.caption for s in scenes[:shown]]
    if _RESULTS.value:
        compare.write_experiment(pathlib.Path(_RESULTS.value), "blockworld", report, markdown, videos, prompts)
    else:
        print(markdown)
        print(json.dumps(report["play"]))


if __name__ == "__main__":
    app.run(main)
