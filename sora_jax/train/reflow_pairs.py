"""Few-step sampling by reflow (Liu et al. 2022, "Flow Straight and Fast"; InstaFlow): a teacher's
(noise, sample) pairs, on which a student learns straight paths.

    pairs = reflow_pairs.make("runs/ladder/32x", "runs/reflow/pairs", count=2048)   # the teacher samples
    sora-jax train --config=sora_jax/configs/t2v.py:reflow --config.distill.pairs=runs/reflow/pairs \
        --workdir=runs/reflow/student
    sora-jax sample --workdir=runs/reflow/student --prompt="a red ball"      # 4 Euler steps, no CFG

The teacher samples each caption of its own training cache from a fixed noise with its sampler
(`steps` Euler steps at classifier-free guidance `guidance`); the pairs directory is a latent cache
(`latent_cache.LatentSource`: the samples as latents, the captions' text embeddings) plus
`noise.npy`, the noise each sample came from. A student trained on it (`distill.pairs`) starts from
the teacher's weights and takes its noise from the pair instead of drawing it, so the flow it learns
is the straight line from each noise to the teacher's answer: few Euler steps follow it. The guided
sample is the target, so the student needs no guidance (one forward a step, not two), and the
prompting tasks still hold given frames at t = 0 (they come from the teacher's sample).
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from sora_jax.models import lora
from sora_jax.pipelines import adapters
from sora_jax.pipelines import t2v as t2v_pipeline
from sora_jax.train import latent_cache


def make(teacher: str | pathlib.Path, out: str | pathlib.Path, count: int, steps: int = 30, guidance: float = 4.0,
         batch: int = 32, seed: int = 0) -> latent_cache.LatentSource:
    """Samples the first `count` captions of the teacher's training cache (its `latent_cache/train`,
    or the cache its config names) into `out`; resumable per batch of one shape."""
    import tqdm

    teacher = pathlib.Path(teacher)
    pipeline, params, meta, step = t2v_pipeline.load(teacher)
    config = pipeline.config
    root = pathlib.Path(config.data.latent_cache_dir or teacher / "latent_cache")
    source = latent_cache.LatentSource(root / config.data.train_split)
    if count > len(source):
        raise ValueError(f"the teacher's training cache {source.directory} holds {len(source)} captions, fewer than "
                         f"the {count} pairs asked for")
    out = pathlib.Path(out)
    index_path = out / "index.json"
    teacher_record = {"path": str(teacher), "step": int(step), "fingerprint": lora.fingerprint(params),
                      "steps": steps, "guidance": guidance, "seed": seed}
    if index_path.exists():
        existing = json.loads(index_path.read_text())
        if existing.get("teacher") == teacher_record and len(existing["captions"]) == count:
            return latent_cache.LatentSource(out)
    writer = latent_cache.Writer(out, [source.latent_shape(i) for i in range(count)], arrays=("latents", "noise"))
    with tqdm.tqdm(total=count, desc="reflow pairs", unit="pair", dynamic_ncols=True) as bar:
        for members in latent_cache.group_by_shape(writer.latent_shapes):
            shape = tuple(writer.latent_shapes[members[0]])
            for start in range(0, len(members), batch):
                chunk = members[start:start + batch]
                noise = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), i), shape))
                                  for i in chunk])
                sample = pipeline.sample_latents(params, [source.captions[i] for i in chunk], shape,
                                                 steps=steps, guidance=guidance, noise=noise)
                for i, x, z in zip(chunk, sample, noise):
                    writer.put("latents", i, x)
                    writer.put("noise", i, z)
                bar.update(len(chunk))
    for key in ("text_tokens", "text_mask", "text_pooled"):
        if key in source.text:
            np.save(writer.staging / f"{key}.npy", np.asarray(source.text[key][:count]))
    return writer.finish(
        {**source.fingerprint, "split": "reflow_pairs"}, source.latent_stats, source.captions[:count],
        teacher=teacher_record,
        teacher_config={"model": meta["config"]["model"], "vae_workdir": meta["config"]["vae_workdir"]})


def adopt_teacher(config) -> dict:
    """A reflow student's model and VAE are its teacher's, and it starts from the teacher's weights
    (`init_from`, unless set); returns the teacher record of the pairs."""
    index_path = pathlib.Path(config.distill.pairs) / "index.json"
    if not index_path.exists():
        raise FileNotFoundError(f"distill.pairs={config.distill.pairs!r} holds no reflow pairs (index.json): make them "
                                f"first (train/reflow_pairs.make)")
    index = json.loads(index_path.read_text())
    if "teacher" not in index:
        raise ValueError(f"distill.pairs={config.distill.pairs!r} is a latent cache, not reflow pairs")
    saved = index["teacher_config"]
    adapters.adopt_model(config, saved["model"])
    config.vae_workdir = saved["vae_workdir"]
    if not config.init_from:
        config.init_from = index["teacher"]["path"]
    return index["teacher"]
