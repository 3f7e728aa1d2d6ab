"""Violation-of-expectation by likelihood: does the model find possible clips more probable?

IntPhys-style quadruplets from `data/violations.py`: a scene, and the same scene edited (an object
removed, moved sideways, not painting, recolored) make two possible clips; switching from one to
the other at frame k makes two impossible ones (an object vanishes for good or pops up, teleports,
a trail is erased or appears, a color changes). The four hold the same frames between them, so
content cannot explain a preference. Each clip is encoded by the run's VAE and scored by the flow
loss at fixed timesteps with the same noise for all four and no caption (the question is the
world's rules, not the prompt). A quadruplet is passed when the possible clips' summed loss is the
lower; chance is 0.5.
"""

from __future__ import annotations

import numpy as np

from sora_jax.data import violations
from sora_jax.evaluation.probes import bootstrap_mean

TIMESTEPS = (0.2, 0.4, 0.6, 0.8)


def clip_losses(task, params, groups: np.ndarray, timesteps=TIMESTEPS, seed: int = 0) -> np.ndarray:
    """groups uint8 [G, K, T, H, W, 3] -> mean flow loss over `timesteps` [G, K]; the K clips of
    group g share the noise drawn from (seed, g, timestep index)."""
    import jax

    from sora_jax.pipelines.t2v import text_inputs

    count, members = groups.shape[:2]
    latents = task.encode(groups.reshape(count * members, *groups.shape[2:]))
    text = text_inputs(task.encode_prompts([""] * (count * members)), task.encoder)
    total = np.zeros(count * members)
    for index, t in enumerate(timesteps):
        keys = [jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), g), index) for g in range(count)]
        noise = np.repeat(np.stack([np.asarray(jax.random.normal(k, latents.shape[1:])) for k in keys]), members, 0)
        total += task.flow_losses(params, latents, np.full(count * members, t, np.float32), noise, text)
    return (total / len(timesteps)).reshape(count, members)


def quadruplet_seed(kind_index: int, seed: int, number: int) -> int:
    """The seed of a kind's `number`-th quadruplet (`kind_index`: the kind's place in its world's
    KINDS), so a kind scored alone or pictured gets the quadruplets a full run scores."""
    return 10_000 * (kind_index + 1) + seed * 1000 + number


def voe_scores(task, params, pairs_per_kind: int = 32, clip_shape=(17, 32, 56), kinds=violations.KINDS,
               seed: int = 0, batch: int = 16, quadruplet=violations.quadruplet,
               only: tuple[str, ...] | None = None) -> dict[str, dict]:
    """Per violation kind: the fraction of quadruplets whose possible clips have the lower summed
    loss (with a bootstrap CI), and the mean gap (impossible - possible, per clip). `quadruplet`
    (seed, kind, frames, height, width) makes them: PhysWorld's, or another world's
    (`data/block_violations.py`). `only`: score these of `kinds`, on the same quadruplets as
    when all are scored (each kind's seeds follow its place in `kinds`)."""
    unknown = set(only or ()) - set(kinds)
    if unknown:
        raise ValueError(f"violation kinds {sorted(unknown)}; valid: {', '.join(kinds)}")
    results = {}
    for kind_index, kind in enumerate(kinds):
        if only is not None and kind not in only:
            continue
        passed, gaps = [], []
        for start in range(0, pairs_per_kind, batch):
            quads = [quadruplet(quadruplet_seed(kind_index, seed, i), kind, *clip_shape)
                     for i in range(start, min(pairs_per_kind, start + batch))]
            losses = clip_losses(task, params, np.stack([np.stack([*q.possible, *q.impossible]) for q in quads]),
                                 seed=seed)
            good, bad = losses[:, :2].sum(1), losses[:, 2:].sum(1)
            passed += list(good < bad)
            gaps += list((bad - good) / 2)
        results[kind] = {**bootstrap_mean(np.array(passed, np.float64)), "loss_gap": float(np.mean(gaps))}
    return results
