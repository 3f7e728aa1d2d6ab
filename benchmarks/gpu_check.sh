#!/usr/bin/env bash
# Issue #28's GPU check: one prepared run on one lent GPU (H100 / H200), ~8 minutes.
#
#   bash benchmarks/gpu_check.sh wheels     # here, once: what the GPU image lacks -> .whl/ (~11 MB)
#   device run, carry [".whl"], timeout_s 600:
#       bash benchmarks/gpu_check.sh run     # results under $OUT (JSON + logs); commit them to
#                                            # experiments/results/gpu_<card>/ with this command
#   SORA_GPU_CHECK_DRY=1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh run
#                                            # the same steps at toy sizes on a CPU (the plumbing)
#
# In one run, most important first, each step capped (570 s in all, inside the tool's 600 s):
# (a) the trainer end to end: a short `small` VAE run, a `gpu`-preset rung on it, stopped by
# SIGTERM (a preemption: it saves) and resumed by the same command to its end and evaluation, and a
# sample from it; (b) the DiT training step at width 1,024 with the backend's attention (auto:
# cuDNN) in bf16 and mixed, MFU against the datasheet peak and the measured matmul rate; (c) one
# `small` VAE training step and its memory.
# The image has no imageio-ffmpeg (68 MB, over the carry limit) and no MiniLM weights (90 MB):
# samples are GIFs and the rung's captions use the byte encoder. Each step has its own timeout, so
# one failing step leaves the others' results.
set -uo pipefail
mode=${1:-run}
cd "$(dirname "$0")/.."
WHEELS="array-record==0.8.6 dm-tree==0.1.10 docstring-parser==0.18.0 googleapis-common-protos==1.76.0
grain==0.2.18 immutabledict==4.3.1 importlib-resources==7.1.0 ml-collections==1.1.0 portpicker==1.6.0
simple-parsing==0.1.9 tensorboardx==2.6.5 tensorflow-datasets==4.9.10 tensorflow-metadata==1.21.0
termcolor==3.3.0 toml==0.10.2"

if [ "$mode" = wheels ]; then
  mkdir -p .whl
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $WHEELS
  python3 -m pip wheel -q --no-deps -w .whl promise==2.3  # pure Python, published as a source archive
  du -sh .whl
  exit 0
fi

OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -d .whl ] && [ "${SORA_GPU_CHECK_DRY:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
RUNS=${RUNS:-/tmp/sora_gpu_check}
rm -rf "$RUNS"
mkdir -p "$RUNS"
if [ "${SORA_GPU_CHECK_DRY:-0}" = 1 ]; then  # toy sizes: every step in a few minutes on a CPU
  VAE=tiny VAE_COST=tiny DATASET=physworld/tiny VAE_STEPS=4 PREEMPT_AFTER=75 SLOWER=3
  DIT="--widths 64 --depth 2 --latent 5 --latent 8 --latent 14"
  RUNG_ARG="demo,budget=0.05x"
else
  # The rung: the gpu preset at half its 1x budget, planned at ~2 minutes of H100 at 40 % MFU;
  # SIGTERM (the `timeout`) after PREEMPT_AFTER seconds, then the same command resumes it.
  VAE=small VAE_COST=small DATASET=physworld/small VAE_STEPS=600 PREEMPT_AFTER=80 SLOWER=1
  DIT="--widths 1024 --depth 8 --latent 16 --latent 32 --latent 64"
  RUNG_ARG="gpu,budget=0.5x"
fi
LOGS=$RUNS/logs
mkdir -p "$LOGS"
step() {  # step NAME SECONDS COMMAND...: runs it with a timeout (x SLOWER), its output to $LOGS/NAME.log
  local name=$1 limit=$(($2 * SLOWER))
  shift 2
  local started=$SECONDS
  timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - started)) s" | tee -a "$OUT/summary.txt"
  tail -3 "$LOGS/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/summary.txt" 2>&1 || echo "no nvidia-smi" > "$OUT/summary.txt"
$PY -c "import jax; print('jax', jax.__version__, jax.devices())" >> "$OUT/summary.txt" 2>&1

# (a) the trainer end to end
CLI="$PY -m sora_jax.cli"
step data 60 $CLI data prepare --dataset=$DATASET --data_dir="$RUNS/tfds"
step vae_train 80 $CLI train --config=sora_jax/configs/vae.py:$VAE --workdir="$RUNS/vae" \
  --config.data.data_dir="$RUNS/tfds" --config.total_steps=$VAE_STEPS --config.checkpoint.every_steps=$VAE_STEPS \
  --config.log.eval_every_steps=$VAE_STEPS --config.eval.num_clips=8 --config.eval.num_samples=0
OVERRIDES="--config.vae_workdir=$RUNS/vae --config.data.data_dir=$RUNS/tfds --config.model.text_encoder=bytes
  --config.data.num_train=2048 --config.eval.num_samples=0 --config.eval.num_clips=8"
# The byte encoder (MiniLM's 90 MB of weights cannot travel) changes the FLOPs per step, so the rung
# is re-planned with it as `sora-jax ladder` would (model size, LR, steps that spend the budget).
PLAN=$($PY -c "
from sora_jax.configs import scaling
from sora_jax.scaling import ladder
config = scaling.get_config('$RUNG_ARG')
with config.unlocked():
    config.model.text_encoder = 'bytes'
rung = ladder.rung_config(config, config.ladder.budget)
before, after = ladder.flatten(config), ladder.flatten(rung)
print(' '.join(f'--config.{k}={v}' for k, v in after.items() if before.get(k) != v and not isinstance(v, tuple)))")
echo "rung: $RUNG_ARG, re-planned: $PLAN" | tee -a "$OUT/summary.txt"
RUN_RUNG="$CLI train --config=sora_jax/configs/scaling.py:$RUNG_ARG --workdir=$RUNS/rung $OVERRIDES $PLAN"
# shellcheck disable=SC2086
step rung_preempted "$PREEMPT_AFTER" $RUN_RUNG
# shellcheck disable=SC2086
step rung_resumed 120 $RUN_RUNG
grep -h "preempt\|resum\|SIGTERM" "$LOGS/rung_preempted.log" "$LOGS/rung_resumed.log" "$RUNS/rung/train.log" \
  2>/dev/null | head -5 >> "$OUT/summary.txt"
# A sample through the Python API, as a GIF (the image has no ffmpeg for MP4)
step sample 50 $PY -c "
import json, sys
from sora_jax import generate
from sora_jax.data import video_io
result = generate.Generator('$RUNS/rung').generate(generate.Request(prompt='a red ball bouncing', steps=20))
video_io.write_video('$OUT/sample.gif', result.video, scale=4)
print(json.dumps({k: v for k, v in result.meta.items() if isinstance(v, (int, float, str))}))"
# (c) one `small` VAE training step: seconds, FLOPs, temporaries
step vae_step 60 $PY benchmarks/vae_step_cost.py --variants "$VAE_COST" --steps 3 --out "$OUT/vae_step_cost.json"
# (b) the DiT training step, bf16 and mixed, the backend's attention kernel; MFU vs the datasheet
# shellcheck disable=SC2086
step dit_step 120 $PY benchmarks/bench_dit_step.py $DIT --batch 2 --dtypes bfloat16 --dtypes mixed --attention auto \
  --repeats 3 --out "$OUT/bench_dit_step.json"
grep -h "attention_implementation=auto\|MFU against" "$RUNS/rung/train.log" >> "$OUT/summary.txt" 2>/dev/null
cp "$RUNS/rung/final_metrics.json" "$OUT/rung_final_metrics.json" 2>/dev/null
# At most 8 files come back from the device: the rest travels as one archive.
cp "$RUNS/rung/metrics.jsonl" "$LOGS/rung_metrics.jsonl" 2>/dev/null
cp "$RUNS/vae/final_metrics.json" "$LOGS/vae_final_metrics.json" 2>/dev/null
tar czf "$OUT/logs.tar.gz" -C "$RUNS" logs
cat "$OUT/summary.txt"
