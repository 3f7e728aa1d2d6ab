"""Counting compute: analytic FLOPs of the DiT per training step and per sample, parameter counts
(per-token vs total), and a jaxpr counter for programs without a formula (the VAE).

FLOPs are true FLOPs (a multiply-add is 2), the convention of PaLM's appendix B and nanoGPT's
`estimate_mfu`; DiT's paper reports multiply-accumulates (half of these). Matmuls only: norms,
activations, softmax and the optimizer are a few percent at the widths that matter and are left
out, as every published scaling law does.

Per sample, forward, for a DiT of width d, depth L, N video tokens, T_c text context tokens:

    2 · N · N_tok                       N_tok = matrices applied per video token (patch embed,
                                        q/k/v/out, cross q/out, MLP, final projection)
    + 4 · L · N · T_self · d            self-attention scores and values (T_self = N full, or
                                        S + F for factorized spatial S then temporal F)
    + 4 · L · N · T_c · d               cross-attention scores and values
    + 2 · T_c · N_text                  text projection and per-layer K/V of the text, once per sample
    + 2 · F · N_cond                    timestep MLP and adaLN weights, once per patch frame
    + 2 · t·h·w · k² · c²               the output convolution, when there is one (k x k, c latent
                                        channels, every latent pixel)

Training is forward + backward = 3 · forward, less the input-gradient matmuls of the first
layers (their inputs, the noisy latent and the frozen text features, need no gradient).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

TIMESTEP_FEATURES = 256  # the sinusoidal timestep embedding's width (models/dit.py)
FROZEN_TEXT_WIDTH = {"minilm": 384}  # feature width of each frozen encoder's tokens
BYTE_ENCODER = dict(depth=2, mlp_ratio=4)  # models/text.py ByteEncoder
BYTE_VOCAB = 257  # models/text.py BYTE_VOCAB (bytes + padding); tests/test_flops.py checks it


@dataclasses.dataclass(frozen=True)
class DiTShape:
    """What the DiT's compute depends on (a subset of `config.model` plus the latent channels)."""

    width: int
    depth: int
    heads: int
    latent_channels: int
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (1, 2, 2)
    layout: str = "full"
    text_encoder: str = "minilm"
    text_width: int = 128
    text_length: int = 128
    output_conv: int = 0  # k of the k x k convolution over the output latent (0: none)

    @classmethod
    def from_config(cls, model_config, latent_channels: int) -> DiTShape:
        return cls(width=model_config.width, depth=model_config.depth, heads=model_config.heads,
                   latent_channels=latent_channels, mlp_ratio=model_config.mlp_ratio,
                   patch=tuple(model_config.patch), layout=model_config.layout,
                   text_encoder=model_config.text_encoder, text_width=model_config.text_width,
                   text_length=model_config.text_length, output_conv=model_config.get("output_conv", 0))

    @property
    def mlp(self) -> int:
        return int(self.mlp_ratio * self.width)

    @property
    def patch_dim(self) -> int:
        return int(np.prod(self.patch)) * self.latent_channels

    @property
    def text_features(self) -> int:
        """Width of the text tokens entering the DiT's text projection."""
        return self.text_width if self.text_encoder == "bytes" else FROZEN_TEXT_WIDTH[self.text_encoder]

    @property
    def context_length(self) -> int:
        return self.text_length + 1  # + the learned null token

    @property
    def attentions(self) -> int:
        return 1 if self.layout == "full" else 2

    def grid(self, latent_thw) -> tuple[int, int, int]:
        return tuple(int(s) // p for s, p in zip(latent_thw, self.patch))


def param_counts(shape: DiTShape) -> dict[str, int]:
    """Weights (biases included) by how often they are applied: per video token, per text token,
    per patch frame (conditioning), per sample; `non_embedding` is the per-token count scaling
    laws use for N."""
    d, m = shape.width, shape.mlp
    block_token = shape.attentions * (4 * d * d + 4 * d) + (2 * d * d + 2 * d) + (2 * d * m + m + d)
    per_token = shape.depth * block_token + (shape.patch_dim * d + d) + (d * shape.patch_dim + shape.patch_dim)
    text_kv = shape.depth * (2 * d * d + 2 * d)
    text_proj = shape.text_features * d + d
    per_text_token = text_kv + text_proj
    modulation = shape.depth * (3 * shape.attentions + 3) * (d * d + d) + 2 * (d * d + d)
    per_frame = (TIMESTEP_FEATURES * d + d) + (d * d + d) + modulation
    per_sample = shape.text_features * d + d  # pooled text projection
    norms = shape.depth * (2 * (d // shape.heads) * (shape.attentions + 1) + 2 * d)  # QK-norm scales, cross norm
    byte_encoder = 0
    if shape.text_encoder == "bytes":
        w = shape.text_width
        layer = 4 * (w * w + w) + 2 * BYTE_ENCODER["mlp_ratio"] * w * w + BYTE_ENCODER["mlp_ratio"] * w + w + 4 * w
        byte_encoder = BYTE_VOCAB * w + shape.text_length * w + BYTE_ENCODER["depth"] * layer + 2 * w
    c = shape.latent_channels
    output_conv = shape.output_conv**2 * c * c + c if shape.output_conv else 0  # applied per latent pixel
    total = per_token + per_text_token + per_frame + per_sample + norms + d + byte_encoder + output_conv  # d: null text
    return {"non_embedding": per_token - (shape.patch_dim * d + d) - (d * shape.patch_dim + shape.patch_dim),
            "per_token": per_token, "per_text_token": per_text_token, "per_frame": per_frame,
            "per_sample": per_sample, "byte_encoder": byte_encoder, "output_conv": output_conv, "total": total}


def _per_token_matmul_weights(shape: DiTShape) -> int:
    d = shape.width
    return shape.depth * (shape.attentions * 4 * d * d + 2 * d * d + 2 * d * shape.mlp) + 2 * shape.patch_dim * d


def forward_flops(shape: DiTShape, latent_thw, batch: int = 1) -> dict[str, float]:
    """Forward FLOPs of one DiT call on `batch` samples of latent size (t, h, w), by term."""
    d, L = shape.width, shape.depth
    gt, gh, gw = shape.grid(latent_thw)
    tokens = gt * gh * gw
    attended = tokens if shape.layout == "full" else gh * gw + gt
    context = shape.context_length
    terms = {
        "token_matmuls": 2.0 * tokens * _per_token_matmul_weights(shape),
        "self_attention": 4.0 * L * tokens * attended * d,
        "cross_attention": 4.0 * L * tokens * context * d,
        "text": 2.0 * shape.text_length * shape.text_features * d + 2.0 * context * L * 2 * d * d
        + 2.0 * shape.text_features * d,
        "conditioning": 2.0 * gt * (TIMESTEP_FEATURES * d + d * d + (L * (3 * shape.attentions + 3) + 2) * d * d),
    }
    if shape.output_conv:  # over every latent pixel of every frame
        pixels = math.prod(int(s) for s in latent_thw)
        terms["output_conv"] = 2.0 * pixels * shape.output_conv**2 * shape.latent_channels**2
    if shape.text_encoder == "bytes":
        w, n, r = shape.text_width, shape.text_length, BYTE_ENCODER["mlp_ratio"]
        terms["byte_encoder"] = BYTE_ENCODER["depth"] * (2.0 * n * (4 * w * w + 2 * r * w * w) + 4.0 * n * n * w)
    return {key: value * batch for key, value in terms.items()} | {"tokens": float(tokens * batch)}


def _total(terms: dict[str, float]) -> float:
    return sum(value for key, value in terms.items() if key != "tokens")


def train_step_flops(shape: DiTShape, latent_thw, batch: int) -> float:
    """Model FLOPs of one training step (forward + backward) on `batch` clips of one latent size."""
    terms = forward_flops(shape, latent_thw, batch)
    gt, gh, gw = shape.grid(latent_thw)
    # No gradient flows into the noisy latent (patch embed) or frozen text features (text projection).
    no_input_grad = 2.0 * batch * (gt * gh * gw * shape.patch_dim * shape.width)
    if shape.text_encoder != "bytes":
        no_input_grad += 2.0 * batch * shape.text_length * shape.text_features * shape.width
    return 3.0 * _total(terms) - no_input_grad


def sample_flops(shape: DiTShape, latent_thw, steps: int, guidance: float = 1.0, evaluations_per_step: int = 1,
                 batch: int = 1) -> float:
    """FLOPs of sampling `batch` videos: `steps` solver steps of `evaluations_per_step` DiT calls
    (Euler and AB2 1, Heun 2), each on a doubled batch when classifier-free guidance is on."""
    per_call = _total(forward_flops(shape, latent_thw, batch * (1 if guidance == 1.0 else 2)))
    return steps * evaluations_per_step * per_call


def sampler_evaluations(method: str, steps: int) -> int:
    """DiT calls a sampler makes over `steps` steps (Heun skips its correction on the last step)."""
    return {"euler": steps, "ab2": steps, "ddim": steps, "heun": 2 * steps - 1}[method]


# --- a counter over jaxprs, for programs without a formula --------------------------------------


def _dot_flops(eqn) -> float:
    lhs, rhs = (v.aval for v in eqn.invars)
    (contract_l, contract_r), (batch_l, _) = eqn.params["dimension_numbers"]
    contracted = math.prod(lhs.shape[i] for i in contract_l)
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * contracted


def _conv_flops(eqn) -> float:
    rhs = eqn.invars[1].aval
    dims = eqn.params["dimension_numbers"]
    spec = dims.rhs_spec  # (out feature, in feature, *spatial)
    window = math.prod(rhs.shape[i] for i in spec[2:])
    in_features = rhs.shape[spec[1]]
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * window * in_features


def jaxpr_matmul_flops(jaxpr) -> float:
    """Matmul and convolution FLOPs in a (closed) jaxpr, through calls, scans, remat and conds."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        subs = [v for v in eqn.params.values() if hasattr(v, "eqns") or hasattr(v, "jaxpr")]
        subs += [b for v in eqn.params.values() if isinstance(v, (tuple, list)) for b in v
                 if hasattr(b, "eqns") or hasattr(b, "jaxpr")]
        if name == "cond":
            total += max((jaxpr_matmul_flops(b) for b in eqn.params["branches"]), default=0.0)
            continue
        inner = sum(jaxpr_matmul_flops(sub) for sub in subs)
        total += inner * (eqn.params.get("length", 1) if name == "scan" else 1)
    return total


def program_flops(fn, *args) -> float:
    """Matmul FLOPs of `fn(*args)` from its jaxpr (args may be ShapeDtypeStructs: nothing runs)."""
    return jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args))


def vae_flops(vae, params, video_shape, method: str = "encode") -> float:
    """Forward FLOPs of the VAE encoding videos [B, T, H, W, 3] or decoding their latents."""
    from sora_jax.models.vae import VideoVAE

    if method == "encode":
        array = jax.ShapeDtypeStruct(tuple(video_shape), np.float32)
        return program_flops(lambda p, x: vae.apply({"params": p}, x, method=VideoVAE.encode_mean), params, array)
    latent = jax.ShapeDtypeStruct(vae.latent_shape(tuple(video_shape)), np.float32)
    return program_flops(lambda p, z: vae.apply({"params": p}, z, method=VideoVAE.decode), params, latent)
