"""Throughput accounting: FLOPs of a compiled step (XLA's cost analysis), and the two peaks MFU
is reported against: the chip's datasheet peak for the run's matmul precision (how MaxText and
PaLM report MFU; `DATASHEET_PEAKS`), and the matmul ceiling measured in this process (like with
like on a noisy shared machine). A CPU has no datasheet entry: its MFU is against the measured
ceiling, and says so (`Peak.source`)."""

from __future__ import annotations

import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp

from sora_jax.kernels import amx_matmul


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
    The default size is 2,048 on a CPU and 8,192 on an accelerator (smaller would time launches).
    bf16 operands on a CPU with AMX are timed on the AMX kernel, which mixed precision's dense
    layers run on (`models/mixed_linear.py`); XLA's own bf16 dot there is slower than its f32 one."""
    size = size or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jnp.ones((size, size), dtype)
    b = jnp.ones((size, size), dtype)
    if amx_matmul.serves(dtype, (size, size, size)):
        matmul = jax.jit(amx_matmul.matmul)
    else:
        matmul = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


# Dense (no sparsity) peak FLOP/s per chip from the vendors' datasheets: (bf16, f32). An f32 matmul
# on an NVIDIA GPU since A100 runs on TF32 tensor cores at XLA's default precision, so its f32
# column is the TF32 peak; TPUs run f32 matmuls as bf16 passes, so both columns are the bf16 peak.
# Keys are `device_kind` prefixes; the longest match wins ("NVIDIA H100 PCIe" before "NVIDIA H100").
DATASHEET_PEAKS = {
    "NVIDIA H200": (989e12, 495e12),
    "NVIDIA H100": (989e12, 495e12),  # SXM (device_kind "NVIDIA H100 80GB HBM3")
    "NVIDIA H100 PCIe": (756e12, 378e12),
    "NVIDIA H100 NVL": (835e12, 418e12),
    "NVIDIA A100": (312e12, 156e12),
    "TPU v4": (275e12, 275e12),
    "TPU v5 lite": (197e12, 197e12),  # v5e
    "TPU v5": (459e12, 459e12),  # v5p
    "TPU v6 lite": (918e12, 918e12),  # v6e (Trillium)
}


@dataclasses.dataclass(frozen=True)
class Peak:
    flops_per_s: float  # all devices together
    source: str  # where the number comes from, for logs and results


def datasheet_peak(device_kind: str, precision: str) -> float | None:
    """One chip's datasheet peak for `precision` ("bf16": mixed or bf16 matmuls; "f32"), or None."""
    matches = [kind for kind in DATASHEET_PEAKS if device_kind.startswith(kind)]
    if not matches:
        return None
    bf16, f32 = DATASHEET_PEAKS[max(matches, key=len)]
    return bf16 if precision == "bf16" else f32


def precision_of(dtype: str) -> str:
    """A model config's dtype ("float32", "mixed", "bfloat16") -> the matmul precision it runs."""
    return "bf16" if dtype in ("mixed", "bfloat16") else "f32"


def device_peak(precision: str, measured_per_device: float, devices=None) -> Peak:
    """The datasheet peak of `devices` (default: all) for `precision`, or — for a chip not in the
    table (a CPU) — the measured matmul ceiling, labelled as such."""
    devices = jax.devices() if devices is None else devices
    kind = devices[0].device_kind
    per_device = datasheet_peak(kind, precision)
    if per_device is None:
        return Peak(measured_per_device * len(devices),
                    f"measured {precision} matmul ceiling ({kind}: no datasheet peak in throughput.DATASHEET_PEAKS)")
    return Peak(per_device * len(devices), f"datasheet {kind}, dense {precision}")


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

    def rates(self, peak: float, measured_peak: float | None = None) -> dict[str, float]:
        """`mfu` against `peak` (the datasheet's, `device_peak`); `mfu_vs_matmul` against the
        measured matmul ceiling, when given."""
        elapsed = time.perf_counter() - self.start
        rates = dict(steps_per_s=self.steps / elapsed, tokens_per_s=self.tokens / elapsed,
                     tflops_per_s=self.flops / elapsed / 1e12, mfu=self.flops / elapsed / peak)
        if measured_peak:
            rates["mfu_vs_matmul"] = self.flops / elapsed / measured_peak
        return rates
