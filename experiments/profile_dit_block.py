r"""Where a DiT block's training time goes on this machine: one block's forward + backward as
built, with the self-attention kernel replaced by the identity (the attention's share), and, for
`mixed`, with JAX's own gradient of a bf16-operand dot instead of `dit.mixed_linear` (what the
custom VJP buys); then the rate of the dot layouts the flash kernel's backward chooses between.

    .venv/bin/python experiments/profile_dit_block.py --width 384 --out=out/profile_dit_block.json
    .venv/bin/python experiments/profile_dit_block.py --width 192 --attention xla   # before flash

One block on one clip of 2,048 tokens (8 frames × 256), head dim 64, MiniLM-shaped text (33
tokens). Best of `--repeats` timings each. Nothing here is a test: numbers depend on the machine.
"""

import argparse
import json
import pathlib
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.models import dit
from sora_jax.train import throughput


def best_seconds(fn, args, repeats: int) -> float:
    return throughput.seconds_per_call(fn, args, repeats, statistic=min)


def block_gradient(width: int, matmul_dtype, attention: str, dtype=jnp.float32, module=dit):
    """(jitted gradient of one block's summed squared output, the block's params): `module`'s
    Block (this repo's `dit`, or one loaded from another commit) on one 2,048-token clip."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 8, 256, width)), jnp.float32)
    cond = jnp.asarray(rng.normal(size=(1, 8, width)), jnp.float32)
    context = jnp.asarray(rng.normal(size=(1, 33, width)), jnp.float32)
    mask = jnp.ones((1, 33), bool)
    cos, sin = module.rope_3d((8, 16, 16), 64)
    block = module.Block(width // 64, dtype=dtype, matmul_dtype=matmul_dtype, implementation=attention)
    params = jax.tree.map(lambda p: p + 0.01, block.init(jax.random.PRNGKey(0), x, cond, context, mask, cos, sin))
    grad = jax.jit(jax.grad(lambda p: jnp.sum(block.apply(p, x, cond, context, mask, cos, sin) ** 2)))
    return grad, params


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
    cases = {
        "scores^T = K·Qᵀ ([M,K]·[N,K])": (lambda a, b: jnp.einsum("hkd,hqd->hkq", a, b, preferred_element_type=jnp.float32), (k, q)),
        "dK = dSᵀ·Q ([M,K]·[K,N])": (lambda a, b: jnp.einsum("hkq,hqd->hkd", a, b, preferred_element_type=jnp.float32), (scores_t, q)),
        "dQᵀ = Kᵀ·dSᵀ ([M,K]·[K,N], Kᵀ pre-transposed)": (lambda a, b: jnp.einsum("hdk,hkq->hdq", a, b, preferred_element_type=jnp.float32), (k_t, scores_t)),
        "dQ = dS·K from dSᵀ (contracts lhs dim 1)": (lambda a, b: jnp.einsum("hkq,hkd->hqd", a, b, preferred_element_type=jnp.float32), (scores_t, k)),
    }
    return {name: flops / best_seconds(jax.jit(fn), args, repeats) / 1e9 for name, (fn, args) in cases.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--attention", default="flash", choices=dit.ATTENTION_IMPLEMENTATIONS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="out/profile_dit_block.json")
    args = parser.parse_args()
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
        result["mixed"]["block_ms_with_jax_transpose"] = 1e3 * block_seconds(args.width, jnp.bfloat16, args.attention, args.repeats)
    print(f"mixed with JAX's own gradient of the bf16 dots: {result['mixed']['block_ms_with_jax_transpose']:.1f} ms", flush=True)
    result["dot_gflops"] = dot_layouts(args.width // 64, args.repeats)
    for name, rate in result["dot_gflops"].items():
        print(f"{rate:7.0f} GFLOP/s  {name}")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
