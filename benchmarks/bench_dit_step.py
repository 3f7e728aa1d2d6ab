r"""DiT training-step and sampling-step throughput: JAX (f32, mixed and bf16 compute, any attention
kernel) against a plain PyTorch eager reference of the same network, interleaved A/B in one run,
MFU against matmul ceilings measured in the same process on the same device.

    .venv/bin/python benchmarks/bench_dit_step.py --out=out/bench_dit_step.json
    # with the PyTorch reference (a separate venv: `python3.12 -m venv /tmp/refvenv &&
    #   /tmp/refvenv/bin/pip install torch==2.13.0 numpy`):
    .venv/bin/python benchmarks/bench_dit_step.py --torch_python=/tmp/refvenv/bin/python
    # at DiT-S/2's and Latte-S/2's shapes, each precision against its PyTorch counterpart
    # (f32 vs f32, mixed vs bf16 autocast), Latte's in both attention layouts:
    .venv/bin/python benchmarks/bench_dit_step.py --widths=384 --depth=12 --latent=1 --latent=32 --latent=32 \
        --batch=8 --dtypes=float32 --dtypes=mixed --attention=flash --torch_python=/tmp/refvenv/bin/python \
        --torch_precisions=f32 --torch_precisions=bf16 --out=benchmarks/results/cpu/bench_dit_s2.json
    .venv/bin/python benchmarks/bench_dit_step.py --widths=384 --depth=12 --latent=16 --latent=32 --latent=32 \
        --batch=2 --layout=factorized --dtypes=mixed --attention=flash --torch_python=/tmp/refvenv/bin/python \
        --torch_precisions=bf16 --repeats=2 --out=benchmarks/results/cpu/bench_latte_s2_factorized_mixed.json
    # (one precision a process: both at this shape took 14 GB and were killed on a 23 GB host)
    # on a GPU (bf16, cuDNN's flash attention against XLA's):
    python3 benchmarks/bench_dit_step.py --widths=1024 --depth 8 --heads_dim 64 --latent=16 --latent=32 --latent=64 \
        --batch 4 --dtypes=bfloat16 --dtypes=mixed --attention=cudnn --attention=xla

JAX runs the precisions of `model.dtype`: float32; mixed (bf16 matmul operands, f32 accumulation,
output and everything else); bfloat16 (all compute). Parameters stay f32. The network:
`sora_jax/models/dit.py` (full attention, QK-norm, 3D RoPE, cross-attention to 33 text tokens,
per-frame adaLN-Zero, GELU MLP) and its mirror in `benchmarks/torch_dit_block.py`; one AdamW
step on one batch (the PyTorch process stays alive and steps on request, so both frameworks
alternate on a warm machine). A sampling step is one forward call on the doubled batch of
classifier-free guidance. Model FLOPs come from `sora_jax/scaling/flops.py`; MFU is against the
f32 matmul ceiling for float32 and the bf16-operand ceiling otherwise. Memory is XLA's buffer
assignment for the compiled step (temporaries; parameters and optimizer state are extra).
Each configuration is compiled / warmed up once, then timed `--repeats` times, alternating
configurations and the matmul ceilings (measured again each round); medians are reported.
Nothing here is a test: numbers depend on the machine.
"""

import json
import os
import pathlib
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from harness import TEXT, jax_steps
from sora_jax import host_memory
from sora_jax.models.dit import DTYPES
from sora_jax.train import throughput


class TorchStep:
    """The PyTorch mirror in its own venv, kept alive: each `()` runs and times one step there."""

    def __init__(self, python: str, width: int, depth: int, latent, retain_malloc: bool = False, batch: int = 1,
                 precision: str = "f32", layout: str = "full"):
        script = pathlib.Path(__file__).with_name("torch_dit_block.py")
        env = dict(os.environ)
        if retain_malloc:  # glibc configured as sora_jax.host_memory configures it, from the start
            env["GLIBC_TUNABLES"] = host_memory.GLIBC_TUNABLES
        self.process = subprocess.Popen([python, str(script), str(width), str(depth), *map(str, latent), str(TEXT),
                                         str(batch), precision, layout],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.faults = []

    def __call__(self) -> float:
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        self.faults.append(reply["minor_faults"])
        return reply["seconds"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def _timed(run, faults: list | None = None, keep: int | None = None) -> float:
    before, started = host_memory.minor_faults(), time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    if faults is not None:
        faults.append(host_memory.minor_faults() - before)
    host_memory.release_excess(keep)  # as the trainer does after each step (steps of other shapes leave holes)
    return seconds


flags.DEFINE_multi_integer("widths", [192, 384], 'Model widths to measure (repeat for several).')
flags.DEFINE_integer("depth", 4, 'Transformer blocks.')
flags.DEFINE_integer("heads_dim", 64, "head dimension (heads = width / this)")
flags.DEFINE_multi_integer("latent", [8, 16, 64], 'Latent t, h, w (repeat the flag three times).')
flags.DEFINE_integer("batch", 1, 'Sequences (clips) per batch.')
flags.DEFINE_multi_enum("dtypes", ["float32", "mixed", "bfloat16"], list(DTYPES),
                        'model.dtype values to measure (repeat for several).')
flags.DEFINE_multi_string("attention", ["xla"], 'Attention implementation(s) (model.attention_implementation).')
flags.DEFINE_integer("repeats", 5, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("torch_python", None, 'A Python with PyTorch, for the mirror step.')
flags.DEFINE_multi_enum("torch_precisions", ["f32"], ["f32", "bf16"],
                        "the mirror's precisions: f32, and bf16 autocast (compared with mixed / bfloat16)")
flags.DEFINE_enum("layout", "full", ["full", "factorized"], "attention layout of both networks")
flags.DEFINE_bool("torch_retain_malloc", False,
                  'run the PyTorch process with glibc configured as sora_jax.host_memory configures it')
flags.DEFINE_string("out", "out/bench_dit_step.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    # Before XLA's threads allocate (the ceilings below): a thread that already made its own arena
    # keeps it, and frees there are trimmed — ~500k page faults a DiT-S/2 step until 2026-12-07.
    retained = host_memory.retain_freed_memory()
    device = jax.devices()[0]
    start_ceilings = {"float32": throughput.matmul_peak_flops(dtype=jnp.float32),
                "bfloat16": throughput.matmul_peak_flops(dtype=jnp.bfloat16)}
    print(f"{device.device_kind} ({jax.default_backend()}): matmul ceiling in this process: "
          f"f32 {start_ceilings['float32'] / 1e12:.3f} TFLOP/s, bf16 operands {start_ceilings['bfloat16'] / 1e12:.3f} "
          "TFLOP/s "
          "(at the start; MFU uses the ones measured between the steps)", flush=True)
    print(f"host malloc keeps freed memory (sora_jax.host_memory): {retained}", flush=True)
    rows = []
    for width in args.widths:
        heads = max(1, width // args.heads_dim)
        runs, failures = {}, {}
        for dtype in args.dtypes:
            for attention in args.attention:
                try:
                    runs[(dtype, attention)] = jax_steps(width, args.depth, heads, tuple(args.latent), args.batch,
                                                         dtype, attention, layout=args.layout)
                except Exception as error:  # e.g. cuDNN refusing f32 or a head size: report it
                    failures[f"{dtype}/{attention}"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                    print(f"width {width} {dtype}/{attention}: {failures[f'{dtype}/{attention}']}", flush=True)
        train_times = {key: [] for key in runs}
        # Free memory kept between calls: what the configurations interleaved here need together
        # (a trainer runs one), up to a quarter of the host; beyond it, trimmed as the trainer trims.
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        keep = max(host_memory.excess_limit(), min(physical // 4, sum(
            info["temp_bytes"] + info["sample_temp_bytes"] for _, _, info in runs.values())))
        sample_times = {key: [] for key in runs}
        train_faults = {key: [] for key in runs}
        torch_runs = {precision: TorchStep(args.torch_python, width, args.depth, args.latent, args.torch_retain_malloc,
                                           args.batch, precision, args.layout)
                      for precision in (args.torch_precisions if args.torch_python else ())}
        torch_times = {precision: [] for precision in torch_runs}
        round_ceilings = {"float32": [], "bfloat16": []}
        for _ in range(args.repeats):  # interleaved A/B: every configuration sees the same machine state
            for name in round_ceilings:  # ...and so do the matmul ceilings (a shared host drifts by 20 %)
                round_ceilings[name].append(throughput.matmul_peak_flops(dtype=jnp.dtype(name), repeats=2))
            for key, (train, sampling, _) in runs.items():
                train_times[key].append(_timed(train, train_faults[key], keep))
                sample_times[key].append(_timed(sampling, keep=keep))
            for precision, torch_run in torch_runs.items():
                torch_times[precision].append(torch_run())
        for torch_run in torch_runs.values():
            torch_run.close()
        ceilings = {name: statistics.median(values) for name, values in round_ceilings.items()}
        row = {"width": width, "depth": args.depth, "heads": heads, "batch": args.batch, "latent": args.latent,
               "layout": args.layout,
               "failures": failures, "ceiling_f32": ceilings["float32"], "ceiling_bf16": ceilings["bfloat16"],
               "configs": {}}
        datasheet = {dtype: throughput.datasheet_peak(device.device_kind, throughput.precision_of(dtype))
                     for dtype in args.dtypes}
        for (dtype, attention), (_, _, info) in runs.items():
            ceiling = ceilings["float32" if dtype == "float32" else "bfloat16"]
            train_s, sample_s = statistics.median(train_times[(dtype,
                                                               attention)]), statistics.median(sample_times[(dtype,
                                                                                                             attention)])
            row.update(params=info["params"], tokens=info["tokens"], train_flops=info["train_flops"])
            row["configs"][f"{dtype}/{attention}"] = {
                "dtype": dtype, "attention": attention, "step_seconds": train_s,
                "tokens_per_s": info["tokens"] / train_s,
                "tflops_per_s": info["train_flops"] / train_s / 1e12, "mfu": info["train_flops"] / train_s / ceiling,
                "mfu_vs_f32_matmul": info["train_flops"] / train_s / ceilings["float32"],
                # against the chip's datasheet peak for this precision (None off the table, e.g. a CPU)
                "mfu_vs_datasheet": (info["train_flops"] / train_s / datasheet[dtype] if datasheet[dtype] else None),
                "sample_step_seconds": sample_s, "sample_tflops_per_s": info["sample_flops"] / sample_s / 1e12,
                "sample_mfu": info["sample_flops"] / sample_s / ceiling, "compile_seconds": info["compile_seconds"],
                "temp_bytes": info["temp_bytes"], "sample_temp_bytes": info["sample_temp_bytes"],
                "minor_faults_per_step": statistics.median(train_faults[(dtype, attention)])}
        for precision, times in torch_times.items():
            seconds = statistics.median(times)
            row[f"torch_{precision}"] = {"step_seconds": seconds, "tokens_per_s": row["tokens"] / seconds,
                                         "tflops_per_s": row["train_flops"] / seconds / 1e12,
                                         "mfu_vs_f32_matmul": row["train_flops"] / seconds / ceilings["float32"],
                                         "minor_faults_per_step": statistics.median(torch_runs[precision].faults),
                                         "retain_malloc": args.torch_retain_malloc}
            for config in row["configs"].values():
                config[f"speedup_over_torch_{precision}"] = seconds / config["step_seconds"]
                if (precision == "f32") == (config["dtype"] == "float32"):  # f32 vs f32, mixed / bf16 vs autocast
                    config["speedup_over_torch_same_precision"] = seconds / config["step_seconds"]
        rows.append(row)
        for key, config in row["configs"].items():
            line = (f"width {width} {key:>18}: step {config['step_seconds'] * 1e3:8.1f} ms, "
                    f"{config['tflops_per_s']:7.3f} TFLOP/s, MFU {config['mfu']:.2f} (f32-ceiling "
                    f"{config['mfu_vs_f32_matmul']:.2f}), "
                    f"sample step {config['sample_step_seconds'] * 1e3:7.1f} ms (MFU {config['sample_mfu']:.2f}), "
                    f"temp {config['temp_bytes'] / 2**30:.2f} GiB, compile {config['compile_seconds']:.0f} s, "
                    f"{config['minor_faults_per_step']:.0f} page faults a step")
            if config["mfu_vs_datasheet"] is not None:
                line += f", MFU {config['mfu_vs_datasheet']:.2f} of the datasheet peak"
            for precision in torch_times:
                line += f", {config[f'speedup_over_torch_{precision}']:.2f}x torch {precision}"
            print(line, flush=True)
        print(f"width {width}: matmul ceilings interleaved with the steps (median): f32 "
              f"{ceilings['float32'] / 1e12:.3f}, "
              f"bf16 operands {ceilings['bfloat16'] / 1e12:.3f} TFLOP/s", flush=True)
        for precision in torch_times:
            mirror = row[f"torch_{precision}"]
            print(f"width {width} torch {precision} eager: step {mirror['step_seconds'] * 1e3:.1f} ms, "
                  f"{mirror['tflops_per_s']:.3f} TFLOP/s (MFU {mirror['mfu_vs_f32_matmul']:.2f} of f32, "
                  f"{mirror['minor_faults_per_step']:.0f} page faults a step)", flush=True)
        write_json(args.out, {"device": device.device_kind, "backend": jax.default_backend(), "jax": jax.__version__,
                              "host_malloc_retains_freed_memory": retained,
                              "start_ceiling_f32": start_ceilings["float32"],
                              "start_ceiling_bf16": start_ceilings["bfloat16"],
                              "rows": rows})


def write_json(path: str, payload: dict) -> None:
    """After every width, so a run stopped by a time limit keeps what it measured."""
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    app.run(main)
