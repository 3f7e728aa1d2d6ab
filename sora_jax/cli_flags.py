"""The command line's flags and verbs: every flag defined once, each verb with the flags it reads
(`sora-jax VERB --help` lists them, one line each), and the help texts made from that table.
`sora_jax/cli.py` runs the verbs."""

from __future__ import annotations

import pathlib

from absl import flags
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file("config", None, "A config file and its argument, e.g. "
                                          "sora_jax/configs/vae.py:tiny; override fields with --config.a.b=v.",
                                          lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Directory of a run: checkpoints, metrics, samples.")
DATASET = flags.DEFINE_string("dataset", "physworld/tiny", "physworld/<tiny|small|base>, "
                              "physworld3d/<tiny|small|base>, blockworld/<tiny|small>, folder:<path> (prepare: "
                              "imported as video_folder/<name>) or video_folder/<name>.")
BEAM_OPTIONS = flags.DEFINE_string("beam_pipeline_options", "", "data prepare: run as an Apache Beam pipeline with "
                                   "these options, key=value,... (runner=DirectRunner,direct_num_workers=4; "
                                   "runner=DataflowRunner,project=...,region=...,temp_location=gs://...).")
BUCKETS = flags.DEFINE_string("buckets", "physworld/tiny", "data prepare folder:<path>: cut clips to this PhysWorld "
                              "variant's sizes and durations.")
DATA_DIR = flags.DEFINE_string("data_dir", "data/tfds", "Where prepared datasets live.")
SPLIT = flags.DEFINE_string("split", "validation", "Split to preview.")
OUT = flags.DEFINE_string("out", None, "Output directory (preview, export) or file (sample).")
COUNT = flags.DEFINE_integer("count", 12, "How many clips to preview.")
SUITE = flags.DEFINE_enum("suite", "vae", ["vae"], "Evaluation suite (eval).")
# sample
PROMPT = flags.DEFINE_string("prompt", "", "Text prompt (sample); enriched into a training-style caption.")
MODE = flags.DEFINE_string("mode", "t2v", "The prompting mode (listed below).")
FRAMES = flags.DEFINE_integer("frames", 17, "Output frames (t2v, i2v) or new frames (extend, loop, connect).")
HEIGHT = flags.DEFINE_integer("height", None, "Output height; default: the input's, or the training size.")
WIDTH = flags.DEFINE_integer("width", None, "Output width.")
IMAGE = flags.DEFINE_string("image", None, "First frame for image->video.")
VIDEO = flags.DEFINE_string("video", None, "Input video (extend, loop, connect, edit).")
VIDEO2 = flags.DEFINE_string("video2", None, "Second video (connect).")
STRENGTH = flags.DEFINE_float("strength", 0.6, "Edit strength: 0 keeps the input, 1 ignores it.")
SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
STEPS = flags.DEFINE_integer("steps", None, "Sampling steps; default: the run's config.sample.steps.")
GUIDANCE = flags.DEFINE_float("guidance", None, "Classifier-free guidance; default: config.sample.guidance.")
SHIFT = flags.DEFINE_float("shift", None, "Sampling grid shift (> 1: more steps at high noise); default: "
                           "config.sample.shift, else the training shift.")
SAMPLER = flags.DEFINE_string("sampler", "euler", "euler, heun, ab2 or ddim (ancestral: fresh noise each step).")
NO_ENRICH = flags.DEFINE_bool("no_enrich", False, "Use the prompt as given, without enrichment.")
ADAPTER = flags.DEFINE_string("adapter", None, "sample: a LoRA run (workdir or export) whose adapters apply to "
                              "--workdir's DiT, the base it was trained on.")
MERGE = flags.DEFINE_bool("merge", False, "export: --workdir is a LoRA run; write its adapters folded into its base "
                          "as one plain model.")
ALLOW_LONG = flags.DEFINE_bool("allow_long", False, "Go ahead with a generation estimated past 10 minutes or half "
                               "the machine's memory (the estimate is printed first).")
# ladder
PRINT = flags.DEFINE_bool("print", False, "ladder: print the plan (params, steps, expected time) and stop.")
BUDGETS = flags.DEFINE_list("budgets", None, "ladder: the rungs to run (default: the config's 1x, 4x, 32x); sweep: "
                            "the budgets, smallest first (the last is predicted before it runs when >= 3).")
SIZES = flags.DEFINE_list("sizes", ["5"], "sweep: a count of model sizes per budget centred on the rule's choice, or "
                          "the sizes themselves (L4d128,L6d192,...) at every budget.")
ENGINE = flags.DEFINE_enum("engine", None, ["local", "ray"], "ladder, sweep: where the runs execute: local (one "
                           "after another) or ray (side by side as Ray tasks; default: config.engine.name).")
RAY_ADDRESS = flags.DEFINE_string("ray_address", None, "ladder, sweep: the Ray cluster (auto, ray://host:10001); "
                                  "empty: a local Ray instance (default: config.engine.ray_address).")
PROMPTS_FILE = flags.DEFINE_string("prompts_file", None, "One prompt per line, sampled in batches; outputs "
                                   "are --out with _000, _001, ... appended.")
PUBLISH = flags.DEFINE_string("publish", None, "ladder, sweep: copy the small results (JSON, tables, figures) to this "
                              "directory for committing, e.g. experiments/results/ladder_demo. sweep: also each "
                              "run's record (runs/<name>/) as it finishes; the records found there count as done, "
                              "so a sweep resumes from its committed results on a machine that kept no workdir.")
DISTRIBUTED = flags.DEFINE_bool("distributed", False, "train, ladder: one process of a multi-process run (every TPU "
                                "pod worker, every GPU node): jax.distributed.initialize() finds its peers on Cloud "
                                "TPU, SLURM, Open MPI and Kubernetes; elsewhere add --coordinator, --num_processes "
                                "and --process_id.")
COORDINATOR = flags.DEFINE_string("coordinator", None, "train, ladder: host:port of process 0 (a multi-process run "
                                  "where the cluster is not detected).")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "train, ladder: processes in all (with --coordinator).")
PORT = flags.DEFINE_integer("port", 8808, "play: the local port the page is served on.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "train, ladder: this process's index, 0 .. num_processes - 1.")
MULTI_PROCESS_FLAGS = ("distributed", "coordinator", "num_processes", "process_id")

# Each verb: what it does, and the flags it reads (`sora-jax VERB --help` lists them, one line each).
VERBS = {
    "train": ("train a model from a config; rerun to resume", ("config", "workdir", *MULTI_PROCESS_FLAGS)),
    "sample": ("generate videos or images from a trained text-to-video run",
               ("workdir", "out", "prompt", "prompts_file", "mode", "frames", "height", "width", "image", "video",
                "video2", "strength", "seed", "steps", "guidance", "shift", "sampler", "no_enrich", "allow_long",
                "adapter")),
    "eval": ("evaluate a trained VAE (reconstruction in and out of domain, throughput)", ("workdir", "suite")),
    "data": ("data prepare: build a tfds dataset (PhysWorld, or import a folder; Beam with --beam_pipeline_options); "
             "data preview: a gallery of clips",
             ("dataset", "data_dir", "split", "out", "count", "beam_pipeline_options", "buckets")),
    "export": ("write a run's EMA parameters without optimizer state (small enough to commit)",
               ("workdir", "out", "merge")),
    "verify": ("check every checkpoint of a run (or an export) against its manifest of checksums", ("workdir",)),
    "ladder": ("train the compute ladder's rungs (1x, 4x, 32x) and compare them",
               ("config", "workdir", "print", "budgets", "publish", "engine", "ray_address", *MULTI_PROCESS_FLAGS)),
    "sweep": ("an IsoFLOP sweep: model sizes at each budget, the fits (N*, L*, Chinchilla) and plots; resumable",
              ("config", "workdir", "budgets", "sizes", "publish", "engine", "ray_address")),
    "play": ("play a BlockWorld run in the browser: each key press is an action the model renders",
             ("workdir", "port", "seed", "steps", "guidance")),
}
USAGE = "usage: sora-jax {" + "|".join(VERBS) + "} ... (data: prepare|preview); sora-jax VERB --help"
HELP_FLAGS = ("-h", "--help", "-help", "--helpfull", "--helpshort")
CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"




def usage() -> str:
    """Bare `sora-jax` and `sora-jax --help`: the verbs, one line each."""
    lines = ["sora-jax: reproduce Sora's recipe in JAX and measure what compute buys.", "", USAGE, "", "verbs:"]
    lines += [f"  {verb:<8} {summary}" for verb, (summary, _) in VERBS.items()]
    lines += ["", "e.g. sora-jax train --config=sora_jax/configs/t2v.py:tiny --workdir=runs/t2v_tiny"]
    return "\n".join(lines)


def verb_help(verb: str, full: bool = False) -> str:
    """`sora-jax VERB --help`: the verb's flags with one line each (`--helpfull`: every flag)."""
    summary, names = VERBS[verb]
    lines = [f"sora-jax {verb}: {summary}", "", "flags:"]
    for name in (sorted(VERB_FLAG_NAMES) if full else names):
        flag = flags.FLAGS[name]
        default = "" if flag.default in (None, "", False) or name == "config" else f" (default: {flag.default})"
        lines.append(f"  --{name:<14} {flag.help}{default}")
    if verb == "sample":
        from sora_jax.generate import MODE_NEEDS

        lines += ["", "modes (--mode):"] + [f"  {mode:<16} {needs}" for mode, needs in MODE_NEEDS.items()]
    if "config" in names:
        lines += ["", "configs: " + ", ".join(f"sora_jax/configs/{p.name}" for p in sorted(CONFIG_DIR.glob("[!_]*.py"))
                                              if p.name != "common.py"),
                  "any config field: --config.a.b=v (a mistyped field fails, naming the closest)"]
    return "\n".join(lines)


VERB_FLAG_NAMES = sorted({name for _, names in VERBS.values() for name in names})


def verbose_flag(argv: list[str]) -> list[str]:
    """A bare `-v` (absl's verbosity flag wants a number) means `--verbosity=0`: INFO, which
    shows the enriched caption of `sample` and the trainer's log lines."""
    return ["--verbosity=0" if arg == "-v" else arg for arg in argv]


def resolve_config_paths(argv: list[str]) -> list[str]:
    """`--config=configs/t2v.py:tiny` (or any config path that does not exist as given) -> the
    package's `sora_jax/configs/t2v.py:tiny`, so commands written before the move keep working."""
    resolved = []
    for arg in argv:
        if arg.startswith("--config="):
            path, sep, rest = arg[len("--config="):].partition(":")
            candidate = CONFIG_DIR / pathlib.Path(path).name
            if not pathlib.Path(path).exists() and candidate.exists():
                arg = f"--config={candidate}{sep}{rest}"
        resolved.append(arg)
    return resolved
