"""The input pipeline: Grain over a random-access source, bucketed by shape, sharded per process.

One batch holds one `(T, H, W)` shape; each bucket gets its own batch size so tokens per batch
stay roughly constant (images come many to a batch, long clips few; a task that crops passes
`crop` so the sizes follow what the step sees, not the stored clip). The order of batches is a
pure function of `(seed, epoch)`, every process reads only its slice of each global batch, and
the Grain iterator's state goes into the checkpoint, so a resumed run sees the same data.

    batches = make_iterator(config.data, seed=config.seed)
    batch = next(batches)   # {"video": float32 [b, T, H, W, 3] in [-1, 1], "caption": [b] str}
    state = batches.get_state()   # -> checkpoint; batches.set_state(state) resumes
"""

from __future__ import annotations

import functools
import json
import pathlib

import grain
import jax
import numpy as np

from sora_jax.data import video_folder, worlds

EPOCHS_AHEAD = 10**6  # a plan this long never runs out; batches are computed lazily


def open_source(dataset: str, data_dir: str, split: str, *, sizes=None, durations=None, fps=8.0, seed=0,
                count: int = 0):
    """A random-access source: a world (`physworld/<config>`, `blockworld/<config>`) or `video_folder/<name>` (tfds, prepared by
    `sora-jax data prepare`) or `folder:<path>` (the user's clips, decoded as they are read).

    `count` > 0 asks for exactly that many examples: a world renders those past the prepared
    records from their seeds (`worlds.ProceduralSplit`); a folder is read whole and must hold at
    least that many."""
    if dataset.startswith("folder:"):
        if sizes is None or durations is None:
            sizes, durations = physworld_buckets("physworld/tiny")
        source = video_folder.FolderSource(dataset.removeprefix("folder:"), sizes, durations, fps=fps, seed=seed)
        if count and count > len(source):
            raise ValueError(f"{dataset} holds {len(source)} usable clips; num_train={count} asks for more "
                             f"(only PhysWorld renders more clips on demand)")
        return source
    prepared = _prepared_source(dataset, data_dir, split)
    if not count:
        return prepared
    if dataset.startswith("video_folder/"):
        if count > len(prepared):
            raise ValueError(f"{dataset} holds {len(prepared)} clips in {split}; num_train={count} asks for more "
                             f"(only PhysWorld renders more clips on demand)")
        return prepared
    shapes = record_shapes(prepared, _dataset_dir(dataset, data_dir) / f"shapes-{split}.json")
    return worlds.ProceduralSplit(prepared, dataset, split, count, shapes)


def _prepared_source(dataset: str, data_dir: str, split: str):
    import tensorflow_datasets as tfds

    if worlds.is_world(dataset):
        worlds.builder_module(dataset)  # registers its builder

    prepared = _dataset_dir(dataset, data_dir)
    if prepared is None or not (prepared / "dataset_info.json").exists():
        raise FileNotFoundError(
            f"dataset {dataset} is not prepared in {data_dir}: run "
            f"`sora-jax data prepare --dataset={dataset} --data_dir={data_dir}`"
        )
    try:
        if dataset.startswith("video_folder/"):  # one builder config per user folder: read from its directory
            return tfds.builder_from_directory(str(prepared)).as_data_source(split=split)
        return tfds.data_source(dataset, data_dir=data_dir, split=split, download=False)
    except (KeyError, ValueError) as error:
        raise ValueError(f"dataset {dataset} in {data_dir} has no usable split {split!r}: {error}") from None


def physworld_buckets(dataset: str):
    """The (sizes, durations) of a PhysWorld variant, e.g. `physworld/tiny`."""
    from sora_jax.data.physworld_tfds import builder

    name = dataset.removeprefix("physworld/")
    if name not in [c.name for c in builder.BUILDER_CONFIGS]:
        raise ValueError(f"buckets={dataset!r}; valid: " + ", ".join(f"physworld/{c.name}" for c in builder.BUILDER_CONFIGS))
    config = builder.variant(name)
    return config.sizes, config.durations


def record_shapes(source, cache: pathlib.Path | None = None) -> np.ndarray:
    """int [N, 3]: each record's (T, H, W), cached as JSON next to the data when possible."""
    if hasattr(source, "shapes"):
        return source.shapes()
    if cache is not None and cache.exists():
        shapes = np.array(json.loads(cache.read_text()), np.int64).reshape(-1, 3)
        if len(shapes) == len(source):
            return shapes
    shapes = np.array([source[i]["shape"] for i in range(len(source))], np.int64).reshape(-1, 3)
    if cache is not None:
        try:
            cache.write_text(json.dumps(shapes.tolist()))
        except OSError:
            pass  # a read-only data dir: scan again next time
    return shapes


def bucket_batch_sizes(buckets: np.ndarray, batch_size: int, max_batch_size: int, multiple: int) -> np.ndarray:
    """Per-bucket batch size: `batch_size` for the most pixels, more for fewer, a multiple of
    `multiple` (devices x processes), capped at `max_batch_size`."""
    if batch_size % multiple:
        raise ValueError(f"data.batch_size={batch_size} must be divisible by {multiple} (data x fsdp shards)")
    pixels = buckets.prod(axis=1).astype(np.float64)
    sizes = np.floor(batch_size * pixels.max() / pixels / multiple).astype(np.int64) * multiple
    cap = max(multiple, max_batch_size // multiple * multiple)
    return np.clip(sizes, multiple, cap)


def cropped_shapes(shapes: np.ndarray, crop_frames: int = 0, crop_side: int = 0) -> np.ndarray:
    """The (T, H, W) a task trains on after random crops (0 = that axis uncropped)."""
    shapes = np.array(shapes, np.int64).reshape(-1, 3)
    if crop_frames:
        shapes[:, 0] = np.minimum(shapes[:, 0], crop_frames)
    if crop_side:
        shapes[:, 1:] = np.minimum(shapes[:, 1:], crop_side)
    return shapes


class BatchPlan:
    """Random access to global batches: item i is (epoch, bucket index, record indices).

    Each epoch shuffles records within buckets, cuts full batches (remainders wait for the next
    epoch's reshuffle), and shuffles the batches; all from `(seed, epoch)`.
    """

    def __init__(self, shapes: np.ndarray, batch_size: int, max_batch_size: int, multiple: int, seed: int,
                 shuffle: bool = True, epochs: int = EPOCHS_AHEAD, crop: tuple[int, int] | None = None):
        self.buckets, self.bucket_of = np.unique(shapes, axis=0, return_inverse=True)
        self.bucket_of = self.bucket_of.reshape(-1)
        # `crop` (frames, side): size batches by what the step sees after cropping, not by the clip.
        sized = self.buckets if crop is None else cropped_shapes(self.buckets, *crop)
        self.batch_sizes = bucket_batch_sizes(sized, batch_size, max_batch_size, multiple)
        self.seed, self.shuffle, self.epochs = seed, shuffle, epochs
        counts = np.bincount(self.bucket_of, minlength=len(self.buckets))
        self.batches_per_epoch = int((counts // self.batch_sizes).sum())
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"no bucket has enough records for one batch: counts {counts.tolist()} vs batch sizes "
                f"{self.batch_sizes.tolist()} for buckets {self.buckets.tolist()}"
            )

    def __len__(self) -> int:
        return self.batches_per_epoch * self.epochs

    @functools.lru_cache(maxsize=4)
    def epoch(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for bucket, size in enumerate(self.batch_sizes):
            members = np.flatnonzero(self.bucket_of == bucket)
            if self.shuffle:
                members = rng.permutation(members)
            usable = len(members) // size * size
            batches += [(bucket, chunk) for chunk in members[:usable].reshape(-1, size)]
        order = rng.permutation(len(batches)) if self.shuffle else np.arange(len(batches))
        return [batches[i] for i in order]

    def __getitem__(self, index: int) -> tuple[int, int, np.ndarray]:
        epoch, position = divmod(int(index), self.batches_per_epoch)
        bucket, records = self.epoch(epoch)[position]
        return epoch, bucket, records


class LoadLocalBatch(grain.transforms.Map):
    """Global batch plan -> this process's slice, decoded to float32 [-1, 1]."""

    def __init__(self, source, process_index: int, process_count: int):
        self.source, self.process_index, self.process_count = source, process_index, process_count

    def map(self, planned):
        epoch, bucket, records = planned
        local = np.array_split(records, self.process_count)[self.process_index]
        examples = [
            self.source.load(int(i), epoch) if hasattr(self.source, "load") else self.source[int(i)] for i in local
        ]
        batch = {"caption": np.array([_text(e["caption"]) for e in examples], dtype=object),
                 "record": np.asarray(local, np.int64), "bucket": np.int64(bucket), "epoch": np.int64(epoch)}
        if "video" in examples[0]:
            batch["video"] = np.stack([e["video"] for e in examples]).astype(np.float32) / 127.5 - 1.0
        for key in getattr(self.source, "batch_keys", ()):  # e.g. cached latents and text embeddings
            batch[key] = np.stack([e[key] for e in examples])
        return batch


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def make_dataset(data_config, *, split: str | None = None, seed: int = 0, shuffle: bool = True,
                 process_index: int | None = None, process_count: int | None = None,
                 shard_multiple: int = 1, epochs: int = EPOCHS_AHEAD, sizes=None, durations=None, source=None,
                 crop: tuple[int, int] | None = None):
    """A Grain `IterDataset` of local batches. `shard_multiple`: global batches divide by it.

    `source`: read this instead of `data_config.dataset` (e.g. a latent cache; it must have
    `shapes()`, and lists the array fields to batch in `batch_keys`). `crop`: (frames, side) the
    task crops clips to; batch sizes then follow the cropped shapes (`BatchPlan`)."""
    split = split or data_config.train_split
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if source is None:
        source = open_source(data_config.dataset, data_config.data_dir, split, sizes=sizes,
                             durations=durations, fps=data_config.fps, seed=seed, count=train_count(data_config, split))
    cache = None
    if not data_config.dataset.startswith("folder:") and not hasattr(source, "shapes"):
        base = _dataset_dir(data_config.dataset, data_config.data_dir)
        cache = base / f"shapes-{split}.json" if base is not None else None
    shapes = record_shapes(source, cache)
    plan = BatchPlan(shapes, data_config.batch_size, data_config.max_batch_size,
                     max(shard_multiple, process_count), seed, shuffle=shuffle, epochs=epochs, crop=crop)
    dataset = grain.MapDataset.source(plan).map(LoadLocalBatch(source, process_index, process_count))
    iter_dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=data_config.prefetch))
    if data_config.num_workers > 0:
        iter_dataset = iter_dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_config.num_workers))
    return iter_dataset, plan, source


def train_count(data_config, split: str) -> int:
    """How many examples a run reads from `split`: `data.num_train` for the train split (0 = as
    prepared); every other split as prepared."""
    return int(data_config.get("num_train", 0)) if split == data_config.train_split else 0


def _dataset_dir(dataset: str, data_dir: str) -> pathlib.Path | None:
    root = pathlib.Path(data_dir).expanduser() / dataset
    versions = sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []
    return versions[-1] if versions else None


def make_iterator(data_config, **kwargs):
    """`iter(make_dataset(...))`: a Grain iterator with `get_state()` / `set_state()`."""
    dataset, _, _ = make_dataset(data_config, **kwargs)
    return iter(dataset)
