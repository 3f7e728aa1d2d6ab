r"""A DiT block against the same block at an earlier commit, A/B in one process: the baseline's
`sora_jax/models/dit.py` is read with `git show REV:...` and loaded beside the working tree's
(as `ab_attention_kernel.py` does for the attention kernels), and both run the same block's
forward + backward, interleaved; medians of `--repeats`. With `--whole_step`, the whole DiT
training step of `bench_dit_step.py` (depth 4, AdamW) instead of one block.

    .venv/bin/python benchmarks/ab_dit_block.py --baseline=6ac54cf \
        --out=benchmarks/results/cpu/ab_mixed_linear_bias.json

One clip of 2,048 tokens (8 frames × 256), head dim 64, MiniLM-shaped text (33 tokens), the
`flash` kernel; precisions of `model.dtype` (`--dtypes`). Also the largest difference of the
parameter gradients between the two, relative to each gradient's largest magnitude. Nothing here
is a test: numbers depend on the machine.
"""

import json
import pathlib
import statistics

import jax
import jax.numpy as jnp
from absl import app, flags

from harness import block_gradient, jax_steps, module_at
from sora_jax.models import dit
from sora_jax.train import throughput


def one_block(module, width: int, dtype: str):
    """(jitted gradient of one block, its params) of `module`'s DiT block."""
    compute, matmul = module.DTYPES[dtype]
    return block_gradient(width, matmul, "flash", dtype=compute, module=module)


def whole_step(module, width: int, dtype: str):
    """(run one training step, no arguments) of `bench_dit_step.jax_steps` with `module`'s DiT."""
    train = jax_steps(width, 4, width // 64, (8, 16, 64), 1, dtype, "flash", model_class=module.DiT)[0]
    return train, None


flags.DEFINE_string("baseline", None, "a git revision")
flags.DEFINE_multi_integer("widths", [192, 384], 'Model widths to measure (repeat for several).')
flags.DEFINE_multi_enum("dtypes", ["mixed", "float32"], list(dit.DTYPES),
                        'model.dtype values to measure (repeat for several).')
flags.DEFINE_integer("repeats", 11, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_bool("whole_step", False, "time the whole training step, not one block")
flags.DEFINE_string("out", "out/ab_dit_block.json", 'Where to write the output.')
flags.mark_flag_as_required("baseline")


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    modules = {args.baseline: module_at(args.baseline, "sora_jax/models/dit.py"), "working tree": dit}
    rows = []
    for width in args.widths:
        for dtype in args.dtypes:
            build = whole_step if args.whole_step else one_block
            runs = {name: build(module, width, dtype) for name, module in modules.items()}
            seconds = {name: [] for name in runs}
            for _ in range(args.repeats):  # interleaved: both see the same machine state
                for name, (run, params) in runs.items():
                    seconds[name].append(throughput.seconds_per_call(run, () if params is None else (params,), 1,
                                                                     statistic=min))
            median = {name: statistics.median(s) for name, s in seconds.items()}
            difference = None
            if not args.whole_step:
                grads = {name: grad(params) for name, (grad, params) in runs.items()}
                difference = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)) for a, b in
                                 zip(jax.tree.leaves(grads["working tree"]), jax.tree.leaves(grads[args.baseline])))
            row = {"width": width, "dtype": dtype, "baseline_ms": 1e3 * median[args.baseline],
                   "working_tree_ms": 1e3 * median["working tree"],
                   "speedup": median[args.baseline] / median["working tree"],
                   "gradient_difference": difference}
            rows.append(row)
            print(f"width {width}, {dtype:>8}: {args.baseline} {row['baseline_ms']:7.1f} ms, working tree "
                  f"{row['working_tree_ms']:7.1f} ms ({row['speedup']:.3f}x)"
                  + ("" if difference is None else f", gradients differ by {difference:.1e}"), flush=True)
            pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(args.out).write_text(json.dumps({"device": jax.devices()[0].device_kind,
                                                          "baseline": args.baseline,
                                                          "repeats": args.repeats, "whole_step": args.whole_step,
                                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
