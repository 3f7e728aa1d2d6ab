r"""An attention kernel against the same kernel at an earlier commit, A/B in one process: the
baseline's `sora_jax/models/attention.py` is read with `git show REV:...` and loaded beside the
working tree's, and both run the same forward + backward, interleaved, best of `--repeats`.

    .venv/bin/python benchmarks/ab_attention_kernel.py --baseline=48457be \
        --out=benchmarks/results/cpu/ab_flash_kernel.json

Shapes: one clip of `--tokens` tokens, head dim 64, `--heads` each; operand dtypes bf16 (mixed
precision's) and f32. Also the largest difference of the gradients between the two, relative
to their largest magnitude. Nothing here is a test: numbers depend on the machine.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from harness import module_at
from sora_jax.models import attention
from sora_jax.train import throughput

KERNEL = "sora_jax/models/attention.py"


flags.DEFINE_string("baseline", None, "a git revision")
flags.DEFINE_enum("implementation", "flash", attention.IMPLEMENTATIONS,
                  'Attention implementation (model.attention_implementation).')
flags.DEFINE_multi_integer("tokens", [2048], 'Tokens per sequence (repeat the flag for several).')
flags.DEFINE_multi_integer("heads", [3, 6], 'Attention heads (repeat for several).')
flags.DEFINE_integer("repeats", 5, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("out", "out/ab_attention_kernel.json", 'Where to write the output.')
flags.mark_flag_as_required("baseline")


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    kernels = {args.baseline: module_at(args.baseline), "working tree": attention}
    rng = np.random.default_rng(0)
    rows = []
    for tokens in args.tokens:
        for heads in args.heads:
            q, k, v, cotangent = (jnp.asarray(rng.normal(size=(1, tokens, heads, 64)), jnp.float32) for _ in range(4))
            for dtype in (jnp.bfloat16, jnp.float32):
                steps = {name: jax.jit(jax.grad(
                    lambda q, k, v, m=module: jnp.sum(m.attend(q, k, v, implementation=args.implementation,
                                                               operand_dtype=dtype) * cotangent), argnums=(0, 1, 2)))
                    for name, module in kernels.items()}
                best = {name: float("inf") for name in steps}
                for _ in range(args.repeats):  # interleaved: both see the same machine state
                    for name, step in steps.items():
                        best[name] = min(best[name], throughput.seconds_per_call(step, (q, k, v), 1, statistic=min))
                grads = {name: step(q, k, v) for name, step in steps.items()}
                difference = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
                                 for a, b in zip(grads["working tree"], grads[args.baseline]))
                row = {"tokens": tokens, "heads": heads, "operands": jnp.dtype(dtype).name,
                       "baseline_ms": 1e3 * best[args.baseline], "working_tree_ms": 1e3 * best["working tree"],
                       "speedup": best[args.baseline] / best["working tree"], "gradient_difference": difference}
                rows.append(row)
                print(f"{tokens:6d} tokens, {heads} heads, {row['operands']:>8} operands: {args.baseline} "
                      f"{row['baseline_ms']:7.1f} ms, working tree {row['working_tree_ms']:7.1f} ms "
                      f"({row['speedup']:.2f}x), gradients differ by {difference:.1e}", flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"device": jax.devices()[0].device_kind, "baseline": args.baseline,
                                                  "implementation": args.implementation, "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
