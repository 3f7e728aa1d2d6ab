r"""An attention kernel against the same kernel at an earlier commit, A/B in one process: the
baseline's `sora_jax/models/attention.py` is read with `git show REV:...` and loaded beside the
working tree's, and both run the same forward + backward, interleaved, best of `--repeats`.

    .venv/bin/python experiments/ab_attention_kernel.py --baseline=48457be \
        --out=experiments/results/cpu/ab_flash_kernel.json

Shapes: one clip of `--tokens` tokens, head dim 64, `--heads` each; operand dtypes bf16 (mixed
precision's) and f32. Also the largest difference of the gradients between the two, relative
to their largest magnitude. Nothing here is a test: numbers depend on the machine.
"""

import argparse
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.models import attention
from sora_jax.train import throughput

KERNEL = "sora_jax/models/attention.py"


def source_at(revision: str, source_path: str, file_name: str | None = None) -> pathlib.Path:
    """`source_path` (a file of this repository) as it was at `revision`, written to a new temporary
    directory as `file_name` (default: its own name)."""
    source = subprocess.run(["git", "show", f"{revision}:{source_path}"], capture_output=True, text=True, check=True).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / (file_name or pathlib.Path(source_path).name)
    path.write_text(source)
    return path


def module_at(revision: str, source_path: str = KERNEL):
    """`source_path` (a module of this repository) as it was at `revision`, loaded as its own module."""
    name = f"{pathlib.Path(source_path).stem}_{revision}".replace("-", "_").replace("~", "_").replace("^", "_")
    path = source_at(revision, source_path, f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # flax's dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="a git revision")
    parser.add_argument("--implementation", default="flash", choices=attention.IMPLEMENTATIONS)
    parser.add_argument("--tokens", type=int, nargs="+", default=[2048])
    parser.add_argument("--heads", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="out/ab_attention_kernel.json")
    args = parser.parse_args()
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
    sys.exit(main())
