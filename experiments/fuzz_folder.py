r"""Bad-data fuzzing of the user-folder source: writes >= 100 broken and awkward files
(`sora_jax/data/bad_inputs.py`), scans them, loads every usable clip, pulls batches through the
training pipeline, and reports what was skipped and why. Any exception is a crash and fails.

    .venv/bin/python experiments/fuzz_folder.py --out=out/fuzz_folder.json
"""

import collections
import json
import pathlib
import re
import tempfile
import time

from absl import app, flags

from sora_jax.data import bad_inputs, pipeline, video_folder

SIZES = ((32, 56), (32, 32), (56, 32))
DURATIONS = (1, 9, 17)


def fuzz(folder: pathlib.Path, seed: int = 0, batches: int = 8) -> dict:
    started = time.perf_counter()
    cases = bad_inputs.write_bad_folder(folder, seed)
    source = video_folder.FolderSource(folder, SIZES, DURATIONS)
    for index in range(len(source)):
        clip = source[index]
        assert clip["video"].dtype.name == "uint8" and clip["video"].shape[1:3] == tuple(source.items[index].shape[1:])
    import ml_collections

    config = ml_collections.ConfigDict(dict(dataset=f"folder:{folder}", data_dir="", train_split="train",
                                            batch_size=2, max_batch_size=8, num_workers=0, prefetch=0, fps=8.0))
    iterator = iter(pipeline.make_dataset(config, seed=seed, process_index=0, process_count=1, sizes=SIZES,
                                          durations=DURATIONS)[0])
    for _ in range(batches):
        next(iterator)
    usable = {str(item.path.relative_to(folder)) for item in source.items}
    skipped = {str(pathlib.Path(path).relative_to(folder)): reason for path, reason in source.skipped}
    unaccounted = [c.name for c in cases if c.name not in usable and c.name not in skipped
                   and not c.kind.startswith("directory")]
    reasons = collections.Counter(re.sub(r"\(.*|'.*|/\S+", "", reason.split(": ", 1)[-1]).strip()[:60]
                                  for reason in skipped.values())
    return {"cases": len(cases), "usable": len(usable), "skipped": len(skipped), "crashes": 0,
            "unaccounted": unaccounted, "batches_read": batches, "skip_reasons": dict(reasons.most_common()),
            "cases_by_kind": dict(collections.Counter(c.kind for c in cases)),
            "seconds": round(time.perf_counter() - started, 1)}


flags.DEFINE_integer("seed", 0, 'seed')
flags.DEFINE_string("out", "out/fuzz_folder.json", 'out')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    with tempfile.TemporaryDirectory() as directory:
        report = fuzz(pathlib.Path(directory) / "folder", args.seed)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"{report['cases']} bad or awkward files: {report['usable']} usable, {report['skipped']} skipped "
          f"(counted, with reasons), crashes: {report['crashes']}, unaccounted: {len(report['unaccounted'])}")
    for reason, count in report["skip_reasons"].items():
        print(f"  {count:3d}  {reason}")


if __name__ == "__main__":
    app.run(main)
