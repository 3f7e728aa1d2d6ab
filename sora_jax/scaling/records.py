"""Run records: the few small files that make a finished run of a sweep count as done.

A sweep's runs live in its workdir (checkpoints: megabytes each). A sweep longer than one
sitting on a machine that does not keep its disk (a preemptible VM, a fresh CI box, a laptop
cleared between sessions) would otherwise start over. So, as each run finishes, its record
(`RECORD_FILES`: config, final metrics, wall time, attempts; ~10 KB) is copied to
`<results>/runs/<name>/`, next to the sweep's published results, for committing; a sweep started
on an empty workdir restores the records it finds there, and those runs count as done. A record
is taken only when its config is the run the sweep would train now: anything that changes the
result differs, and the sweep is refused before any work.
"""

from __future__ import annotations

import functools
import json
import pathlib
import shutil

from sora_jax.checkpoints import config_fields

RECORD_FILES = ("config.json", "final_metrics.json", "wall_seconds.json", "attempts.json")
# Fields that say where things live, how the run was driven or how its sweep is scored, not what
# it computed (the shared latent cache's size, `data.cache_build_count`, depends on the sweep's
# other runs; the `ladder.` plan fields that matter are already in model, optimizer, total_steps).
WHERE = ("data.data_dir", "data.latent_cache_dir", "data.cache_build_count", "data.num_workers", "data.prefetch",
         "engine.", "checkpoint.", "log.", "ladder.")
KEPT = ("ladder.budget", "ladder.compute_flops")


class RecordMismatch(ValueError):
    """A published record is of another run than the one the sweep plans under its name."""


def save(run_dir: pathlib.Path, records: pathlib.Path) -> pathlib.Path:
    """Copies a finished run's record to `<records>/<run name>/`."""
    target = pathlib.Path(records) / run_dir.name
    target.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, target / name)
    return target


def differences(recorded: dict, config) -> list[str]:
    """`key: recorded A, planned B` for every field that changes what the run computes. A model
    field added after the record was written counts at the value the run had in effect
    (`checkpoints.ADDED_MODEL_FIELDS`)."""
    old, new = config_fields(recorded), config_fields(json.loads(config.to_json_best_effort()))
    return [f"{key}: recorded {old.get(key)!r}, planned {new.get(key)!r}"
            for key in sorted(set(old) | set(new))
            if (key in KEPT or not key.startswith(WHERE)) and old.get(key) != new.get(key)]


def restore(records: pathlib.Path, workdir: pathlib.Path, planned: dict) -> list[str]:
    """Copies into `workdir` the records of `planned` runs ({name: config}) that finished
    elsewhere and not here; returns their names. Every record is checked first: one that does
    not match its planned config refuses the lot (`RecordMismatch`), and nothing is copied."""
    records = pathlib.Path(records)
    found = {name: records / name for name in planned
             if (records / name / "final_metrics.json").exists()
             and not (workdir / name / "final_metrics.json").exists()}
    for name, record in found.items():
        wrong = differences(json.loads((record / "config.json").read_text()), planned[name])
        if wrong:
            raise RecordMismatch(f"{record} is a record of another run than the planned {name} ({'; '.join(wrong[:4])}"
                                 f"{f'; and {len(wrong) - 4} more' if len(wrong) > 4 else ''}): "
                                 f"publish to a new folder, or remove the record")
    for name, record in found.items():
        (workdir / name).mkdir(parents=True, exist_ok=True)
        for file in RECORD_FILES:
            if (record / file).exists():
                shutil.copy2(record / file, workdir / name / file)
    return sorted(found)


def save_missing(workdir: pathlib.Path, records: pathlib.Path, planned) -> list[str]:
    """Saves the records of runs finished in `workdir` and not yet in `records` (e.g. a run that
    finished as a stop signal arrived: its sweep stopped before the run's record was copied)."""
    missing = [name for name in planned if (workdir / name / "final_metrics.json").exists()
               and not (pathlib.Path(records) / name / "final_metrics.json").exists()]
    for name in missing:
        save(workdir / name, records)
    return missing


def attach(results: pathlib.Path, workdir: pathlib.Path, planned: dict, also=()):
    """A sweep's start with `results` (`--publish`): the records found in `<results>/runs/`
    restored to `workdir` (checked), those of runs finished here and not yet published copied
    there, the files named in `also` (e.g. its prediction) restored when missing here; returns
    the callback that publishes each run's record as it finishes."""
    results, workdir = pathlib.Path(results), pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    restored = restore(results / "runs", workdir, planned)
    if restored:
        print(f"sweep: {len(restored)} finished runs restored from {results / 'runs'}", flush=True)
    save_missing(workdir, results / "runs", planned)
    for name in also:
        if (results / name).exists() and not (workdir / name).exists():
            shutil.copy2(results / name, workdir / name)
    return functools.partial(save, records=results / "runs")
