r"""Where a DiT block's training time goes on this machine: one block's forward + backward as
built, with the self-attention kernel replaced by the identity (the attention's share), and, for
`mixed`, with JAX's own gradient of a bf16-operand dot instead of `dit.mixed_linear` (what the
custom VJP buys); then the rate of the dot layouts the flash kernel's backward chooses between.

    .venv/bin/python benchmarks/profile_dit_block.py --width 384 --out=out/profile_dit_block.json
    .venv/bin/python benchmarks/profile_dit_block.py --width 192 --attention xla   # before flash

One block on one clip of 2,048 tokens (8 frames × 256), head dim 64, MiniLM-shaped text (33
tokens). Best of `--repeats` timings each. Nothing here is a test: numbers depend on the machine.
"""

import json
import pathlib
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from harness import block_gradient
from sora_jax.models import dit
from sora_jax.train import throughput


def best_seconds(fn, args, repeats: int) -> float:
    return throughput.seconds_per_call(fn, args, repeats, statistic=min)


def block_seconds(width: int, matmul_dtype, attention: str, repeats: int) -> float:
    grad, params = block_gradient(width, matmul_dtype, attention)
    return best_seconds(grad, (params,), repeats)


def jax_transposed_linear(x, kernel, bias, inputs, operand_dtype):
    """What `mixed_linear` replaces: a bf16-operand dot with an f32 result, differentiated by JAX."""
    contract = tuple(range(x.ndim - inputs, x.ndim))
    return jax.lax.dot_general(x.astype(operand_dtype), kernel.astype(operand_dtype),
                               ((contract, tuple(range(inputs))), ((), ())), preferred_element_type=jnp.float32) + bias


def dot_layouts(heads: int, repeats: int) -> dict[str, float]:
    """GFLOP/s (bf16 operands, f32 result) of one score block's dots: [heads, 2048 keys, 256 queries]."""
    rng = np.random.default_rng(0)
    keys, queries, d = 2048, 256, 64
    make = lambda *shape: jnp.asarray(rng.normal(size=(heads, *shape)), jnp.bfloat16)
    k, q, k_t, scores_t = make(keys, d), make(queries, d), make(d, keys), make(keys, queries)
    flops = 2.0 * heads * keys * queries * d
    def dot(spec):
        return lambda a, b: jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)

    cases = {
        "scores^T = K·Qᵀ ([M,K]·[N,K])": (dot("hkd,hqd->hkq"), (k, q)),
        "dK = dSᵀ·Q ([M,K]·[K,N])": (dot("hkq,hqd->hkd"), (scores_t, q)),
        "dQᵀ = Kᵀ·dSᵀ ([M,K]·[K,N], Kᵀ pre-transposed)": (dot("hdk,hkq->hdq"), (k_t, scores_t)),
        "dQ = dS·K from dSᵀ (contracts lhs dim 1)": (dot("hkq,hkd->hqd"), (scores_t, k)),
    }
    return {name: flops / best_seconds(jax.jit(fn), args, repeats) / 1e9 for name, (fn, args) in cases.items()}


flags.DEFINE_integer("width", 384, 'Model width.')
flags.DEFINE_enum("attention", "flash", dit.ATTENTION_IMPLEMENTATIONS,
                  'Attention implementation(s) (model.attention_implementation).')
flags.DEFINE_integer("repeats", 5, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("out", "out/profile_dit_block.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    result = {"device": jax.devices()[0].device_kind, "width": args.width, "tokens": 2048, "attention": args.attention}
    for name, matmul_dtype in (("float32", None), ("mixed", jnp.bfloat16)):
        full = block_seconds(args.width, matmul_dtype, args.attention, args.repeats)
        with mock.patch.object(dit, "attend", lambda q, k, v, mask=None, implementation="xla", operand_dtype=None:
                               v if mask is None else jax.nn.dot_product_attention(q, k, v, mask=mask)):
            without = block_seconds(args.width, matmul_dtype, args.attention, args.repeats)
        result[name] = {"block_ms": 1e3 * full, "without_self_attention_ms": 1e3 * without,
                        "self_attention_share": 1 - without / full}
        print(f"{name}: block {1e3 * full:.1f} ms; without the self-attention kernel {1e3 * without:.1f} ms "
              f"(attention {1 - without / full:.0%})", flush=True)
    with mock.patch.object(dit, "mixed_linear", jax_transposed_linear):
        result["mixed"]["block_ms_with_jax_transpose"] = 1e3 * block_seconds(args.width, jnp.bfloat16,
                                                                             args.attention, args.repeats)
    print(f"mixed with JAX's own gradient of the bf16 dots: {result['mixed']['block_ms_with_jax_transpose']:.1f} "
          "ms", flush=True)
    result["dot_gflops"] = dot_layouts(args.width // 64, args.repeats)
    for name, rate in result["dot_gflops"].items():
        print(f"{rate:7.0f} GFLOP/s  {name}")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)
