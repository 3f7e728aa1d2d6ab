"""Low-rank adapters (LoRA, Hu et al. 2021) on a model's dense layers, and the parameter trees
around them.

    spec = LoraSpec(rank=8, alpha=8.0, targets=("*attention/qkv", "*mlp_in"))
    model = DiT(..., lora=spec)        # every `Linear` whose path matches a target gets an adapter
    y = x·W + b + (alpha / rank) · (x·A)·B      # A [in.., r] (fan-in init), B [r, out..] (zeros)

An adapter is two leaves beside the layer's kernel, `lora_a` and `lora_b`, so a model with
adapters has the base model's tree plus those leaves: `split` parts them (base, adapters),
`combine` puts them back, `merge` folds every adapter into its kernel (W + scale·A·B), which is
the base model's tree again (`sora-jax export --merge`). B starts at zero, so a fresh adapter
leaves the base model's function exactly as it was. `fingerprint` names a parameter tree by its
content: an adapter records its base's, and is refused on any other base.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

ADAPTER_LEAVES = ("lora_a", "lora_b")
# The DiT's layers an adapter may sit on, as `fnmatch` patterns over a layer's path
# ("block_3/attention/qkv"): self-attention (full, or factorized spatial / temporal), cross-attention
# and the MLP — what LoRA fine-tunes of DiTs adapt (diffusers/peft's to_q/k/v/out + ff).
DEFAULT_TARGETS = ("*attention/qkv", "*attention/out", "*cross_attention/q", "*cross_attention/kv", "*mlp_in",
                   "*mlp_out")


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    """Rank, alpha (the update is scaled by alpha / rank) and which layers get an adapter."""

    rank: int
    alpha: float
    targets: tuple[str, ...] = DEFAULT_TARGETS

    @classmethod
    def from_config(cls, lora_config) -> LoraSpec | None:
        """The spec of a `lora` config section; None when the section is absent or rank is 0."""
        if lora_config is None or not lora_config.get("rank", 0):
            return None
        return cls(int(lora_config.rank), float(lora_config.alpha), tuple(lora_config.targets))

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def applies(self, path: tuple[str, ...]) -> bool:
        name = "/".join(path)
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.targets)


def adapter_output(x, kernel_shape, inputs: int, spec: LoraSpec, param, project):
    """(alpha / r) · (x·A)·B for a layer whose kernel has `kernel_shape` and contracts x's last
    `inputs` axes; creates A and B through `param` (a module's `self.param`) and multiplies with
    `project(x, kernel, bias, inputs)`, the layer's own matmul (its precision, in both passes)."""
    in_shape, out_shape = kernel_shape[:inputs], kernel_shape[inputs:]
    fan_in = int(np.prod(in_shape))
    a = param("lora_a", lambda key, shape: jax.random.normal(key, shape) / np.sqrt(fan_in), (*in_shape, spec.rank))
    b = param("lora_b", lambda key, shape: jnp.zeros(shape), (spec.rank, *out_shape))
    low = project(x, a, jnp.zeros((spec.rank,), a.dtype), inputs)
    return spec.scale * project(low, b, jnp.zeros(out_shape, b.dtype), 1)


def is_adapter(path) -> bool:
    return getattr(path[-1], "key", None) in ADAPTER_LEAVES


def _select(params: dict, keep) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            inner = _select(value, keep)
            if inner:
                out[key] = inner
        elif keep(key):
            out[key] = value
    return out


def split(params: dict) -> tuple[dict, dict]:
    """A tree with adapters -> (base tree, adapter tree); each keeps the nesting of its leaves."""
    return _select(params, lambda k: k not in ADAPTER_LEAVES), _select(params, lambda k: k in ADAPTER_LEAVES)


def combine(base: dict, adapters: dict) -> dict:
    """Inverse of `split`: the adapters' leaves placed beside their layers' kernels."""
    out = dict(base)
    for key, value in adapters.items():
        if isinstance(value, dict):
            if not isinstance(base.get(key), dict):
                raise ValueError(f"adapter layer {key!r} has no counterpart in the base parameters")
            out[key] = combine(base[key], value)
        else:
            out[key] = value
    return out


def merge(params: dict, spec: LoraSpec) -> dict:
    """Every adapter folded into its kernel: W + (alpha / r)·A·B, in f32; adapters removed."""
    out = {}
    for key, value in params.items():
        if not isinstance(value, dict):
            out[key] = value
        elif "lora_a" in value:
            a, b = np.asarray(value["lora_a"], np.float32), np.asarray(value["lora_b"], np.float32)
            update = np.tensordot(a, b, axes=1) * spec.scale
            kernel = np.asarray(value["kernel"])
            out[key] = {k: v for k, v in value.items() if k not in ADAPTER_LEAVES}
            out[key]["kernel"] = (kernel.astype(np.float32) + update).astype(kernel.dtype)
        else:
            out[key] = merge(value, spec)
    return out


def layers(params: dict, pattern: str, prefix: str = "") -> list[str]:
    """Paths ("block_0/attention/qkv") of the layers (dicts holding leaves) matching `pattern`."""
    found = []
    for key, value in params.items():
        if isinstance(value, dict):
            path = f"{prefix}{key}"
            if any(not isinstance(v, dict) for v in value.values()) and fnmatch.fnmatchcase(path, pattern):
                found.append(path)
            found.extend(layers(value, pattern, f"{path}/"))
    return found


def count(params: dict) -> int:
    return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(params))


def fingerprint(params: dict) -> str:
    """SHA-256 (first 16 hex digits) over every leaf's path, dtype, shape and bytes, in path order."""
    digest = hashlib.sha256()
    leaves = {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    for path in sorted(leaves):
        array = np.asarray(jax.device_get(leaves[path]))
        digest.update(f"{path}|{array.dtype}|{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
