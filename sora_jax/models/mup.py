"""μP for the DiT (Yang et al., Tensor Programs V; for DiTs, arXiv 2505.15270): the LR that is best
at a small base width stays best as the model widens.

Under Adam, μP (their Table 3) asks of each weight, by how its shape grows with width:

| weight | example | init variance | Adam LR |
|---|---|---|---|
| input-like: only fan_out grows; biases, norm scales | `patch_embed`, `time_in`, `text_proj` | 1/fan_in (fixed) | η |
| hidden: fan_in grows | `qkv`, `mlp_in`, `modulation`, `time_out` | 1/fan_in | η · base/width |
| output: fan_in grows, fan_out fixed | `final` | 1/fan_in² (ours: zero) | η · base/width |

The init side is the DiT's (`parametrization="mup"` draws kernels with variance 1/fan_in); this
module gives the LR side: a multiplier per parameter, found as the `mup` package does, by comparing
each parameter's shape with the same model's at the base width. A kernel whose first (input) axis
grew gets base/width; everything else 1. Attention keeps 1/sqrt(head_dim): head_dim is fixed
(`scaling/plan.py:HEAD_DIM`) and width grows by heads, where μP's 1/head_dim is the same
constant. At the base width μP is the standard model with fan-in init.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import optax


def base_model(model, base_width: int):
    """The same DiT at `base_width` (heads follow, head_dim fixed), without adapters: a LoRA
    run's adapters keep the LR it gives them."""
    head_dim = model.width // model.heads
    if base_width % head_dim:
        raise ValueError(f"model.mup_base_width={base_width} is not a multiple of head_dim {head_dim}")
    return model.clone(width=base_width, heads=base_width // head_dim, lora=None)


def lr_multipliers(params, base_params) -> dict:
    """A float per parameter of `params`: base/width for kernels whose input axis is wider than at
    the base width (hidden and output layers), 1 elsewhere. `base_params`: the same tree (shapes
    suffice) at the base width; parameters absent there (adapters) get 1."""
    params, base_params = nn.unbox(params), nn.unbox(base_params)  # logical-axis boxes, if any
    flat_base = {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(base_params)}

    def multiplier(path, leaf) -> float:
        base = flat_base.get(jax.tree_util.keystr(path))
        kernel = leaf.ndim >= 2 and getattr(path[-1], "key", None) == "kernel"
        if base is None or not kernel or base.shape[0] == leaf.shape[0]:
            return 1.0
        return base.shape[0] / leaf.shape[0]

    return jax.tree_util.tree_map_with_path(multiplier, params)


def scale_updates(multipliers) -> optax.GradientTransformation:
    """The last link of the optimizer chain: each update times its multiplier (the LR and,
    AdamW's decay being LR-scaled, the weight decay with it, as `mup.MuAdamW` does)."""
    return optax.stateless(lambda updates, params=None: jax.tree.map(lambda u, m: u * m, updates, multipliers))
