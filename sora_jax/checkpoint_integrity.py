"""Checkpoints that can be trusted: a manifest of every file's size and SHA-256, written once Orbax
has finalized a step; verification before a resume; damaged steps moved aside; free disk space
checked before a save; Orbax's leftover temporary directories cleared.

    write_manifest(step_dir)        # checkpoints/<step>/sora_manifest.json
    verify(step_dir)                # Verdict("intact" | "damaged" | "unverified", problems)
    quarantine(step_dir, workdir)   # -> <workdir>/damaged_checkpoints/<step>-<time>/

A step without a manifest (written before manifests existed, or killed between Orbax's finalize
and the manifest) is "unverified": it is used, and said so. The check reads every byte, so it runs
on the step a run resumes from and in `sora-jax verify`, not on every step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import time

MANIFEST = "sora_manifest.json"
QUARANTINE = "damaged_checkpoints"
# Orbax writes a step into `<step>.orbax-checkpoint-tmp-<n>` and renames it when done.
TEMPORARY_MARK = ".orbax-checkpoint-tmp"
HEADROOM = 1.1  # a save needs the last checkpoint's size, plus this margin, free


class CheckpointDamaged(RuntimeError):
    """The step a run would resume from failed verification (and the config says to stop)."""


class DiskFull(OSError):
    """Not enough free space for the next checkpoint: the message names path, need and the last one."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: str  # "intact", "damaged" or "unverified" (no manifest)
    problems: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.status + (": " + "; ".join(self.problems[:3]) + (" ..." if len(self.problems) > 3 else "")
                              if self.problems else "")


def _files(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: str | pathlib.Path) -> dict:
    """Writes (atomically) and returns {"files": {relative path: {"bytes", "sha256"}}, "bytes"}."""
    directory = pathlib.Path(directory)
    files = {str(p.relative_to(directory)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in _files(directory)}
    manifest = {"files": files, "bytes": sum(f["bytes"] for f in files.values()), "written_at": time.time()}
    staging = directory / (MANIFEST + ".partial")
    staging.write_text(json.dumps(manifest, indent=1))
    os.replace(staging, directory / MANIFEST)
    return manifest


def has_manifest(directory: str | pathlib.Path) -> bool:
    return (pathlib.Path(directory) / MANIFEST).exists()


def verify(directory: str | pathlib.Path) -> Verdict:
    """Every file of the manifest present with its size and hash, and no file it does not list."""
    directory = pathlib.Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        return Verdict("unverified", ("no manifest",))
    try:
        expected = json.loads(path.read_text())["files"]
    except (ValueError, KeyError) as error:
        return Verdict("damaged", (f"manifest unreadable ({error})",))
    problems = []
    present = {str(p.relative_to(directory)): p for p in _files(directory)}
    for name, entry in expected.items():
        file = present.get(name)
        if file is None:
            problems.append(f"{name} missing")
        elif file.stat().st_size != entry["bytes"]:
            problems.append(f"{name} is {file.stat().st_size} bytes, {entry['bytes']} written")
        elif _sha256(file) != entry["sha256"]:
            problems.append(f"{name} changed since it was written (checksum)")
    problems += [f"{name} not written with the checkpoint" for name in sorted(set(present) - set(expected))]
    return Verdict("damaged" if problems else "intact", tuple(problems))


def quarantine(directory: str | pathlib.Path, workdir: str | pathlib.Path) -> pathlib.Path:
    """Moves a damaged step out of `checkpoints/` (kept for inspection, never read again)."""
    directory = pathlib.Path(directory)
    target = pathlib.Path(workdir) / QUARANTINE / f"{directory.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(directory), str(target))
    return target


def clear_leftovers(checkpoints: str | pathlib.Path) -> list[str]:
    """Removes the temporary directories of saves that never finished; returns their names."""
    checkpoints = pathlib.Path(checkpoints)
    if not checkpoints.exists():
        return []
    leftovers = [p for p in checkpoints.iterdir() if TEMPORARY_MARK in p.name]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in leftovers]


def checkpoint_bytes(directory: str | pathlib.Path) -> int:
    """A step's size: its manifest's count, or the files' sizes."""
    directory = pathlib.Path(directory)
    if has_manifest(directory):
        return int(json.loads((directory / MANIFEST).read_text())["bytes"])
    return sum(p.stat().st_size for p in _files(directory))


def check_free_space(checkpoints: pathlib.Path, last_step: int | None, last_bytes: int) -> None:
    """Raises DiskFull when the next checkpoint (as big as the last, plus headroom) will not fit."""
    needed = int(last_bytes * HEADROOM)
    free = shutil.disk_usage(checkpoints).free
    if needed and free < needed:
        last = f"step {last_step} in {checkpoints / str(last_step)}" if last_step is not None else "none"
        raise DiskFull(f"not enough space to save a checkpoint in {checkpoints}: {needed / 2**20:.0f} MiB needed, "
                       f"{free / 2**20:.0f} MiB free; the last complete checkpoint is {last}")
