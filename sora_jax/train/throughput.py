"""Throughput accounting: FLOPs of a compiled step (XLA's cost analysis) and the device's matmul
ceiling measured in this process, so MFU compares like with like on a noisy shared machine."""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp


def compiled_flops(compiled) -> float:
    """FLOPs XLA counts for one call of a compiled program (0.0 when the backend does not say)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends cannot analyse every program
        return 0.0
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def matmul_peak_flops(size: int | None = None, dtype=jnp.float32, repeats: int = 5) -> float:
    """Best-of-`repeats` FLOP/s of a square matmul on the default device (f32 accumulation).
    The default size is 2,048 on a CPU and 8,192 on an accelerator (smaller would time launches)."""
    size = size or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jnp.ones((size, size), dtype)
    b = jnp.ones((size, size), dtype)
    matmul = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def seconds_per_call(fn, args, repeats: int = 5, statistic=statistics.median) -> float:
    """`statistic` (median by default; `min` for best-of) of `repeats` timed calls after one warm-up."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - started)
    return statistic(times)


class Window:
    """Throughput over the steps since the last log line: tokens, XLA FLOPs, steps, seconds."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.start, self.tokens, self.flops, self.steps = time.perf_counter(), 0, 0.0, 0

    def rates(self, peak: float) -> dict[str, float]:
        elapsed = time.perf_counter() - self.start
        return dict(steps_per_s=self.steps / elapsed, tokens_per_s=self.tokens / elapsed,
                    tflops_per_s=self.flops / elapsed / 1e12, mfu=self.flops / elapsed / peak)
