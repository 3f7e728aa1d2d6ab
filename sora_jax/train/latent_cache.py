"""Latents and text embeddings computed once, so a DiT training step runs neither the VAE nor a
frozen text encoder.

    source = latent_cache.ensure(directory, vae_workdir, data_config, "train", text_encoder="minilm")
    source[i]  # {"latent": float32 [t, h, w, c] (normalized), "caption": str, "text_*": ...}

One directory per split: `latents.npy` (every clip's posterior mean, flattened and concatenated,
normalized with the VAE's stored per-channel statistics), `index.json` (shapes, offsets,
captions, and a fingerprint of what produced it), and for a frozen text encoder
`text_tokens.npy` (float16 [N, L, D]), `text_mask.npy`, `text_pooled.npy`; for a world with
actions (BlockWorld) `actions.npy` (int8 [N, t_max]: each latent frame's action + 1, 0 for none
given — the first latent frame, and padding; `blockworld.latent_actions`). A cache whose
fingerprint (VAE run and step, dataset, split, encoder) differs is rebuilt; writes go to a
temporary directory renamed into place, so a killed build leaves nothing half-written. In a
multi-process run every process encodes its share of the records into the same files (storage
they all see), so a pod builds its cache as fast as its hosts together can.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import jax
import numpy as np

from sora_jax.data import blockworld, pipeline
from sora_jax.models import text as text_lib
from sora_jax.models.vae import VideoVAE

VERSION = 2  # 2: records counted (a prefix of a bigger cache serves a smaller run), streamed to disk
TEXT_CHUNK = 512  # captions encoded (and forgotten by the encoder) at a time
ENCODE_CHUNK = 16  # clips encoded by the VAE at a time


class LatentSource:
    """Random access over a built cache; `shapes()` gives latent (t, h, w) for batching."""

    def __init__(self, directory: str | pathlib.Path, count: int | None = None):
        """`count`: read only the first `count` records (a run that needs fewer than were built)."""
        self.directory = pathlib.Path(directory)
        self.index = json.loads((self.directory / "index.json").read_text())
        self.latents = np.load(self.directory / "latents.npy", mmap_mode="r")
        # Reflow pairs (train/reflow_pairs.py): the noise each latent was sampled from, same layout.
        noise = self.directory / "noise.npy"
        self.noise = np.load(noise, mmap_mode="r") if noise.exists() else None
        stored = len(self.index["captions"])
        if count is not None and count > stored:
            raise ValueError(f"{self.directory} holds {stored} records, fewer than the {count} asked for")
        count = stored if count is None else count
        self.captions = self.index["captions"][:count]
        self._shapes = np.array(self.index["shapes"], np.int64).reshape(-1, 4)[:count]
        self._offsets = np.array(self.index["offsets"], np.int64)[:count]
        self.text = {}
        for key in ("text_tokens", "text_mask", "text_pooled"):
            path = self.directory / f"{key}.npy"
            if path.exists():
                self.text[key] = np.load(path, mmap_mode="r")
        actions = self.directory / "actions.npy"
        self.actions = np.load(actions, mmap_mode="r") if actions.exists() else None
        self.batch_keys = ("latent", *self.text, *(("noise",) if self.noise is not None else ()),
                           *(("actions",) if self.actions is not None else ()))

    @property
    def fingerprint(self) -> dict:
        return self.index["fingerprint"]

    @property
    def latent_stats(self) -> dict:
        return self.index["latent_stats"]

    def __len__(self) -> int:
        return len(self.captions)

    def shapes(self) -> np.ndarray:
        return self._shapes[:, :3]

    def latent_shape(self, i: int) -> tuple[int, int, int, int]:
        """Record `i`'s latent shape (t, h, w, c)."""
        return tuple(int(d) for d in self._shapes[i])

    def report(self) -> dict | None:
        """The user folder's scan report (usable, skipped files and why) the cache was built from."""
        return self.index.get("source_report")

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self.captions):
            raise IndexError(f"record {i} is outside this cache's {len(self.captions)}")
        shape = tuple(self._shapes[i])
        start = self._offsets[i]
        latent = np.asarray(self.latents[start : start + int(np.prod(shape))], np.float32).reshape(shape)
        item = {"latent": latent, "caption": self.captions[i], "index": i}
        if self.noise is not None:
            item["noise"] = np.asarray(self.noise[start : start + int(np.prod(shape))], np.float32).reshape(shape)
        for key, array in self.text.items():
            item[key] = np.asarray(array[i], np.float32 if key != "text_mask" else bool)
        if self.actions is not None:
            item["actions"] = np.asarray(self.actions[i, :shape[0]], np.int32)
        return item


def latest_vae_step(vae_workdir) -> int:
    from sora_jax.checkpoints import run_step

    if not pathlib.Path(vae_workdir).exists():
        raise FileNotFoundError(f"vae_workdir {vae_workdir} does not exist: train the VAE first, e.g. "
                                f"`sora-jax train --config=sora_jax/configs/vae.py:tiny --workdir={vae_workdir}`")
    step = run_step(vae_workdir)
    if step is None:
        raise FileNotFoundError(f"vae_workdir {vae_workdir} holds no checkpoint: train the VAE first")
    return step


def fingerprint(vae_workdir, data_config, split: str, text_encoder: str) -> dict:
    """What the cache's records are a function of; how many were built is stored beside it."""
    return {"version": VERSION, "vae_workdir": str(pathlib.Path(vae_workdir).resolve()),
            "vae_step": latest_vae_step(vae_workdir), "dataset": data_config.dataset, "split": split,
            "text_encoder": text_encoder}


def wanted_count(data_config, split: str, limit: int | None) -> int:
    """Records a run reads from `split`: `limit` (tests' `cache_limit`), else `data.num_train` for
    the train split, else the split as prepared (opened to count it)."""
    count = limit or pipeline.train_count(data_config, split)
    if count:
        return int(count)
    return len(pipeline.open_source(data_config.dataset, data_config.data_dir, split))


def group_by_shape(shapes) -> list[list[int]]:
    """Record indices grouped by equal shape (each group batches), in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(int(d) for d in shape), []).append(i)
    return list(groups.values())


class Writer:
    """Writes a cache in the layout `LatentSource` reads: one flat float32 array per name
    (`latents`, and e.g. reflow's `noise`) holding record i's latent [t, h, w, c] at its offset,
    plus `index.json`. Everything goes to `<directory>.partial`, renamed into place by `finish`,
    so a killed build leaves nothing half-written. `create=False` opens the files another process
    created (a multi-process build: each writes its own records into the same files)."""

    def __init__(self, directory: str | pathlib.Path, latent_shapes, arrays: tuple[str, ...] = ("latents",),
                 create: bool = True):
        from numpy.lib.format import open_memmap

        self.directory = pathlib.Path(directory)
        self.staging = self.directory.with_name(self.directory.name + ".partial")
        if create:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True)
        self.latent_shapes = [[int(d) for d in s] for s in latent_shapes]
        self.sizes = np.array([int(np.prod(s)) for s in self.latent_shapes], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        total = int(self.sizes.sum())
        self.arrays = {name: open_memmap(self.staging / f"{name}.npy", "w+", np.float32, (total,)) if create
                       else np.load(self.staging / f"{name}.npy", mmap_mode="r+") for name in arrays}

    def put(self, name: str, i: int, value: np.ndarray) -> None:
        self.arrays[name][self.offsets[i]:self.offsets[i] + self.sizes[i]] = np.asarray(value).reshape(-1)

    def finish(self, fingerprint: dict, latent_stats: dict, captions: list[str], **extra) -> LatentSource:
        """Flushes the arrays, writes index.json (`extra`: further keys) and moves the cache into place."""
        for array in self.arrays.values():
            array.flush()
        self.arrays.clear()
        (self.staging / "index.json").write_text(json.dumps({
            "fingerprint": fingerprint, "latent_stats": latent_stats, "captions": captions,
            "shapes": self.latent_shapes, "offsets": self.offsets.tolist(),
            "records": list(range(len(captions))), **extra}))
        shutil.rmtree(self.directory, ignore_errors=True)
        self.staging.rename(self.directory)
        return LatentSource(self.directory)


def _encode_latents(model: VideoVAE, params, stats: dict, source, shapes: np.ndarray, writer: Writer, bar,
                    records: list[int], actions=None) -> dict[int, str]:
    """Writes the normalized latents (posterior means) of `records`, batched by video shape (and
    into `actions`, when given, each record's latent actions); returns their captions."""
    from sora_jax.pipelines.vae import normalize_latents

    encode = jax.jit(lambda p, v: model.apply({"params": p}, v, method=VideoVAE.encode_mean))
    captions: dict[int, str] = {}
    mine = set(records)
    chunks: list[list[int]] = []
    for group in group_by_shape(shapes):
        indices = [i for i in group if i in mine]
        chunks += [indices[start:start + ENCODE_CHUNK] for start in range(0, len(indices), ENCODE_CHUNK)]
    for chunk, examples in zip(chunks, read_ahead(source, chunks)):
        videos = np.stack([e["video"] for e in examples]).astype(np.float32) / 127.5 - 1.0
        latents = normalize_latents(np.asarray(encode(params, videos)), stats)
        for i, example, latent in zip(chunk, examples, latents):
            writer.put("latents", i, latent)
            if actions is not None:
                actions[i, :len(latent)] = blockworld.latent_actions(example["actions"], len(latent))
            captions[i] = pipeline._text(example["caption"])
        bar.update(len(chunk))
    return captions


def read_ahead(source, chunks: list[list[int]]):
    """Yields each chunk's examples (`source[i]`), the next chunk read in a thread while the caller
    encodes this one. Only the thread touches `source`, one chunk at a time, in order. Measured
    gain on 2 cores: 1.10x clips/s over reading in turn (`benchmarks/bench_latent_cache.py`)."""
    import concurrent.futures

    def read(chunk):
        return [source[i] for i in chunk]

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="latent-cache-read") as reader:
        pending = reader.submit(read, chunks[0]) if chunks else None
        for n in range(len(chunks)):
            examples = pending.result()
            if n + 1 < len(chunks):
                pending = reader.submit(read, chunks[n + 1])
            yield examples


TEXT_FILES = ("text_tokens", "text_mask", "text_pooled")


def _caption_lengths(frozen, captions: list[str]) -> np.ndarray:
    return np.concatenate([frozen.tokenize(captions[i:i + 4096])[1].sum(1) for i in range(0, len(captions), 4096)])


def _create_text_files(frozen, lengths: np.ndarray, staging: pathlib.Path) -> None:
    """text_tokens float16 [N, L, D] (L: the longest caption's tokens), text_mask, text_pooled."""
    from numpy.lib.format import open_memmap

    count, length = len(lengths), min(int(lengths.max()), frozen.max_length)
    shapes = {"text_tokens": (np.float16, (count, length, frozen.width)),
              "text_mask": (bool, (count, length)), "text_pooled": (np.float32, (count, frozen.width))}
    for name, (dtype, shape) in shapes.items():
        open_memmap(staging / f"{name}.npy", "w+", dtype, shape).flush()


def _encode_text(frozen, captions: list[str], lengths: np.ndarray, staging: pathlib.Path, bar,
                 records: list[int]) -> None:
    """Fills the text files' rows of `records` (created by `_create_text_files`; `lengths`: every
    caption's tokens), a chunk at a time so memory stays flat however many captions there are."""
    tokens, mask, pooled = (np.load(staging / f"{name}.npy", mmap_mode="r+") for name in TEXT_FILES)
    mine = np.asarray(records, np.int64)
    # Shortest first: each encoder batch pads to its longest caption, so similar lengths waste least.
    order = mine[np.argsort(lengths[mine], kind="stable")]
    for start in range(0, len(order), TEXT_CHUNK):
        rows = order[start:start + TEXT_CHUNK]
        embedded = frozen.encode([captions[i] for i in rows])
        frozen.forget()
        width = embedded.tokens.shape[1]
        tokens[rows, :width] = embedded.tokens.astype(np.float16)
        mask[rows, :width] = embedded.mask
        pooled[rows] = embedded.pooled
        bar.update(len(rows))
    for array in (tokens, mask, pooled):
        array.flush()


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"latent_cache:{name}")


def build(directory: str | pathlib.Path, vae_workdir, data_config, split: str, text_encoder: str,
          text_length: int = 128, count: int | None = None, vae=None, stamp: dict | None = None) -> LatentSource:
    """Encodes the first `count` records of the split (all when None) into `directory`, streaming
    to disk. Every process of a run calls it and encodes its share — records p, p + P, ... of P
    processes, latents and captions — into one set of files on storage they all see; process 0
    creates the files and moves the finished cache into place. `vae` (model, params, stats, config)
    and `stamp` (the fingerprint) come from `ensure`, which reads them on every process."""
    import tqdm

    from sora_jax.pipelines.vae import load_trained_vae

    directory = pathlib.Path(directory)
    model, params, stats, _ = vae or load_trained_vae(vae_workdir)
    if not stats:
        raise ValueError(f"{vae_workdir} has no latent statistics: its run did not finish; train it to the end first")
    source = pipeline.open_source(data_config.dataset, data_config.data_dir, split, count=count or 0)
    count = len(source) if count is None else count
    shapes = pipeline.record_shapes(source)[:count]  # a ProceduralSplit or a folder: shapes without decoding
    latent_shapes = [model.latent_shape((1, *map(int, s), 3))[1:] for s in shapes]
    process, processes = jax.process_index(), jax.process_count()
    records = list(range(process, count, processes))
    first = process == 0
    writer = Writer(directory, latent_shapes) if first else None  # creates <directory>.partial and its arrays
    _sync(f"{split}:created")
    writer = writer or Writer(directory, latent_shapes, create=False)
    actions = None
    if "actions" in source[0]:  # a world with actions: one per latent frame beside each latent
        from numpy.lib.format import open_memmap

        actions_file = writer.staging / "actions.npy"
        if first:
            open_memmap(actions_file, "w+", np.int8, (count, max(s[0] for s in latent_shapes))).flush()
        _sync(f"{split}:actions_created")
        actions = np.load(actions_file, mmap_mode="r+")
    with tqdm.tqdm(total=len(records), desc=f"latent cache {split}: clips", unit="clip", dynamic_ncols=True,
                   disable=not first) as bar:
        mine = _encode_latents(model, params, stats, source, shapes, writer, bar, records, actions)
    for array in [*writer.arrays.values(), *([actions] if actions is not None else [])]:
        array.flush()
    (writer.staging / f"captions.{process}.json").write_text(json.dumps(mine))
    _sync(f"{split}:latents")
    captions: list[str] = [""] * count
    for shard in range(processes):
        for i, caption in json.loads((writer.staging / f"captions.{shard}.json").read_text()).items():
            captions[int(i)] = caption
    frozen = text_lib.make_frozen_encoder(text_encoder, max_length=text_length)
    if frozen is not None:
        lengths = _caption_lengths(frozen, captions)  # the files' width is the longest of all
        if first:
            _create_text_files(frozen, lengths, writer.staging)
        _sync(f"{split}:text_created")
        with tqdm.tqdm(total=len(records), desc=f"latent cache {split}: captions", unit="caption",
                       dynamic_ncols=True, disable=not first) as bar:
            _encode_text(frozen, captions, lengths, writer.staging, bar, records)
    _sync(f"{split}:encoded")
    if first:
        for shard in range(processes):
            (writer.staging / f"captions.{shard}.json").unlink()
        writer.finish(stamp or fingerprint(vae_workdir, data_config, split, text_encoder), stats, captions,
                      source_report=source.report() if hasattr(source, "report") else None)
    _sync(f"{split}:finished")
    return LatentSource(directory)


def ensure(directory: str | pathlib.Path, vae_workdir, data_config, split: str, text_encoder: str,
           text_length: int = 128, limit: int | None = None, build_count: int = 0) -> LatentSource:
    """The cache in `directory`, built (every process encoding its share, `build`) when missing,
    stale or holding fewer records than the run reads (`wanted_count`); a bigger one serves its
    prefix. `build_count`: when building, encode at least this many (the ladder builds once for
    its largest rung). Every process reads the fingerprint and, when stale, the VAE: Orbax's
    readers are collective."""
    from sora_jax.pipelines.vae import load_trained_vae

    directory = pathlib.Path(directory)
    wanted = fingerprint(vae_workdir, data_config, split, text_encoder)
    count = wanted_count(data_config, split, limit)
    current, stored = None, 0
    if (directory / "index.json").exists():
        index = json.loads((directory / "index.json").read_text())
        current, stored = index.get("fingerprint"), len(index.get("captions", ()))
    if current != wanted or stored < count:  # every process encodes its share (`build`)
        build(directory, vae_workdir, data_config, split, text_encoder, text_length,
              count if limit else max(count, build_count), vae=load_trained_vae(vae_workdir), stamp=wanted)
    _sync(split)
    return LatentSource(directory, count)
