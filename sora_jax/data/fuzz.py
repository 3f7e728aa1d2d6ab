"""Bad-data fuzzing of the user-folder source: writes >= 100 broken and awkward files
(`bad_inputs.py`), scans them, loads every usable clip, pulls batches through the training
pipeline, and reports what was skipped and why. Any exception is a crash (it propagates).
Run by `experiments/fuzz_folder.py` and `tests/test_video_folder.py`.
"""

from __future__ import annotations

import collections
import pathlib
import re
import time

import ml_collections

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
