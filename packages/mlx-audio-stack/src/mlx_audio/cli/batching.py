"""How the command batches its training clips: ``data.batching: fixed`` (``data.batch_size``
clips cut to ``data.clip_seconds``) or ``duration`` (whole clips, as many a batch as fit
``data.max_duration`` seconds padded: Lhotse's ``DynamicBucketingSampler``), and several
training sources drawn by weight (``data.train: [a.csv, b.csv]``, ``data.weights``).

NOTE [batch shapes]: each new batch shape retraces the compiled train step (seconds on a CPU).
Under duration batching a batch is padded, by default, to the upper boundary of its duration
bucket (``data.pad_to_multiple_of: null``; an int pads to a multiple of that many samples
instead): its length is one of ``num_buckets`` values, and the sampler, which costs each clip
at its padded length, fills a full batch of a bucket with the same number of clips
(``max_duration`` / that length), so an epoch has about one shape a bucket plus its partial
batches, not one a batch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlx_audio.data import (
    DataLoader,
    DynamicBucketingSampler,
    PadCollate,
    estimate_duration_buckets,
)
from mlx_audio.data.interleave import WeightedOrder
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import Callback

from . import clips
from .config import ConfigError, DataSettings, Settings
from .data import DataError

DURATION_KEYS = ("max_duration", "num_buckets", "quadratic_duration", "max_batch_size")


def sources(train: str | list[str]) -> list[str]:
    """``data.train`` as a list of paths: a YAML list, or one string of paths separated by
    commas (``--data.train a.csv,b.csv``; a path that exists as written stays whole)."""
    if isinstance(train, list):
        return [str(p).strip() for p in train]
    if "," in train and not os.path.exists(train):
        return [p.strip() for p in train.split(",")]
    return [train]


def weights(settings: Settings) -> list[float] | None:
    """``data.weights`` checked against the sources (None: one source, or equal weights)."""
    d = settings.data
    paths = sources(d.train)
    if d.weights is None:
        return None if len(paths) == 1 else [1.0] * len(paths)
    values = [float(w) for w in d.weights]
    if len(values) != len(paths):
        raise ConfigError(
            f"data.weights: {len(values)} weight{'' if len(values) == 1 else 's'} for {len(paths)} training sources "
            f"({', '.join(paths)}); give one weight a source"
        )
    if any(not np.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ConfigError(f"data.weights: must be finite, >= 0 and not all 0, got {values}")
    return values


def check(settings: Settings) -> None:
    """The batching settings, before any file is read: one ``ConfigError`` a mistake."""
    d, defaults = settings.data, DataSettings()
    paths = sources(d.train)
    if any(not p for p in paths):
        raise ConfigError(f"data.train: an empty path in {d.train!r}")
    for path in paths:  # before any file is read
        if not os.path.exists(path):
            which = " (one of data.train's sources)" if len(paths) > 1 else ""
            raise ConfigError(f"--data {path}: no such file or folder{which}")
    if d.val is not None and not os.path.exists(d.val):
        raise ConfigError(f"--val-data {d.val}: no such file or folder")
    weights(settings)
    if len(paths) > 1 and d.in_memory:
        raise ConfigError(
            "data.train: several sources are drawn by weight from the files; data.in_memory "
            "batches one array: drop one of them"
        )
    if d.val is None and not 0 < d.val_fraction < 1:
        raise ConfigError(
            f"data.val_fraction: the share of each class held out for validation, between 0 and "
            f"1 (at least one clip of every class with two), got {d.val_fraction}; or --val-data"
        )
    if d.in_memory:
        in_workers = [
            ("gain_db", d.gain_db > 0),
            ("noise_dir", d.noise_dir),
            ("rir_dir", d.rir_dir),
        ]
        dropped = [f"data.{key}" for key, given in in_workers if given]
        if dropped:
            raise ConfigError(
                f"data.in_memory decodes every clip once, before training, so {', '.join(dropped)} "
                "(drawn per clip in the loader's workers) would never run: drop one or the other"
            )
        if settings.model.name != "cnn":
            raise ConfigError(
                f"data.in_memory: model.name cnn only, not {settings.model.name} (its feature "
                "extractor makes every batch clip by clip); drop --data.in_memory"
            )
    if len(paths) > 1 and settings.model.name != "cnn":
        raise ConfigError(
            f"data.train: several sources are mixed for model.name cnn only, not "
            f"{settings.model.name}; merge them into one manifest"
        )
    if d.weights is not None and len(paths) == 1:
        raise ConfigError(
            "data.weights: one training source; give several (--data.train a.csv,b.csv) to mix"
        )
    for key in ("max_duration", "quadratic_duration"):
        value = getattr(d, key)
        if value is not None and not value > 0:
            raise ConfigError(f"data.{key}: must be > 0 seconds, got {value}")
    for key in ("max_batch_size", "pad_to_multiple_of"):
        value = getattr(d, key)
        if value is not None and value < 1:
            raise ConfigError(f"data.{key}: must be >= 1, got {value}")
    if d.num_buckets < 2:
        raise ConfigError(f"data.num_buckets: must be >= 2, got {d.num_buckets}")
    if d.batching == "fixed":
        extra = [f"data.{k}" for k in DURATION_KEYS if getattr(d, k) != getattr(defaults, k)]
        if extra:
            one = len(extra) == 1
            raise ConfigError(
                f"{', '.join(extra)} {'applies' if one else 'apply'} to data.batching duration "
                f"only (batches of whole clips by seconds); add --data.batching duration, or "
                f"leave {'it' if one else 'them'} out for batches of data.batch_size clips"
            )
        return
    if d.max_duration is None and d.max_batch_size is None:
        raise ConfigError(
            "data.batching duration needs data.max_duration: the seconds of audio a batch holds, "
            "padding included (e.g. --data.max_duration 60)"
        )
    clashes = [
        ("data.batch_size", d.batch_size != defaults.batch_size, "the budget is data.max_duration "
         "(data.max_batch_size caps the clips a batch)"),
        ("data.in_memory", d.in_memory, "in_memory keeps clips of one length"),
        (f"model.name {settings.model.name}", settings.model.name != "cnn",
         "its feature extractor cuts every clip to one length"),
    ]  # fmt: skip
    for name, clash, why in clashes:
        if clash:
            raise ConfigError(
                f"data.batching duration cannot go with {name}: {why}; use data.batching fixed"
            )


def padding(settings: Settings) -> int:
    """The multiple of samples ``evaluate``/``predict`` pad batches to (a tenth of a second,
    or ``data.pad_to_multiple_of``)."""
    d = settings.data
    return d.pad_to_multiple_of or max(1, d.sample_rate // 10)


def pad_lengths(seconds: np.ndarray, longest: float, settings: Settings) -> list[int] | None:
    """NOTE [batch shapes]: with ``data.pad_to_multiple_of: null``, the lengths (samples) a
    batch is padded to: the duration buckets' upper boundaries (estimated from ``seconds``, as
    the sampler's) and ``longest``; None when batches are padded to a multiple instead."""
    d = settings.data
    if d.pad_to_multiple_of is not None:
        return None
    count = min(d.num_buckets, len(seconds))
    bins = estimate_duration_buckets(seconds, count) if count >= 2 else []
    ceil = lambda t: int(np.ceil(round(t * d.sample_rate, 6)))  # noqa: E731
    return sorted({ceil(b) for b in bins if b < longest} | {ceil(longest)})


def padded_samples(
    seconds: np.ndarray, lengths: list[int] | None, settings: Settings
) -> np.ndarray:
    """Each clip's length in samples once padded (to ``lengths``, or to the multiple)."""
    d = settings.data
    samples = np.ceil(np.round(np.asarray(seconds, np.float64) * d.sample_rate, 6))
    if lengths is None:
        multiple = padding(settings)
        return np.ceil(samples / multiple) * multiple
    targets = np.asarray(lengths, np.float64)
    return targets[np.minimum(np.searchsorted(targets, samples), len(targets) - 1)]


def collate(lengths: list[int] | None, settings: Settings) -> PadDropUnreadable:
    if lengths is None:
        return PadDropUnreadable(pad_to_multiple_of=padding(settings))
    return PadDropUnreadable(pad_to_lengths=lengths)


def check_longest(seconds: np.ndarray, paths: Sequence[str], settings: Settings) -> None:
    """Every clip fits the budget on its own (``max_duration``, quadratic penalty included)."""
    d = settings.data
    if d.max_duration is None or not len(seconds):
        return
    longest = int(np.argmax(seconds))
    step = (d.pad_to_multiple_of or 1) / d.sample_rate  # null: the longest pads to itself
    padded = float(np.ceil(round(seconds[longest] / step, 6)) * step)
    cost = padded + (padded**2 / d.quadratic_duration if d.quadratic_duration else 0.0)
    if cost > d.max_duration:
        raise DataError(
            f"data.max_duration {d.max_duration:g} s is shorter than the longest clip "
            f"({paths[longest]}: {seconds[longest]:.2f} s"
            + (f", {cost:.2f} s with data.quadratic_duration" if d.quadratic_duration else "")
            + f"); raise data.max_duration to at least {cost:.2f} (a few times that gives "
            "batches of several clips) or cut the long clips"
        )


class PadDropUnreadable(PadCollate):
    """``PadCollate`` (into shared memory in process workers) without skipped samples: batches
    ``(waves, labels, lengths)``."""

    def collate_into(self, batch: list[Any], alloc: Any) -> Any:
        return super().collate_into(clips.DropUnreadable()._kept(batch), alloc)


def sampler(
    train: clips.Clips, settings: Settings, shuffle: bool, lengths: list[int] | None = None
) -> DynamicBucketingSampler:
    """The sampler of ``train`` (a mux of its sources when it has several): duration batching's
    (durations in samples, padded: NOTE [batch shapes]), or, for fixed batching of several
    sources, batches of ``data.batch_size`` in the mux's order."""
    d = settings.data
    mixed = weights(settings)
    order = None
    if mixed is not None and shuffle:
        order = WeightedOrder(train.sources, mixed)
    seconds = np.asarray(train.seconds, dtype=np.float64)
    seed = settings.trainer.seed  # NOTE: set here, not drawn when first asked (len, stats)
    if d.batching == "fixed":  # one bucket: batches of batch_size in the mux's order
        return DynamicBucketingSampler(
            seconds, max_batch_size=d.batch_size, duration_bins=[], order=order, seed=seed
        )
    padded = padded_samples(seconds, lengths, settings)
    rate = d.sample_rate
    buckets = min(d.num_buckets, len(padded))  # a small set: fewer buckets (one: no bins)
    bins: list[float] | None = None if buckets >= 2 else []
    if lengths is not None:
        bins = [float(n) for n in lengths[:-1]]  # one bucket a padded length
    return DynamicBucketingSampler(
        padded,
        max_duration=None if d.max_duration is None else d.max_duration * rate,
        max_batch_size=d.max_batch_size,
        num_buckets=max(2, buckets),
        duration_bins=bins,
        quadratic_duration=None if d.quadratic_duration is None else d.quadratic_duration * rate,
        shuffle=shuffle,
        order=order,
        seed=seed,
    )


def report(
    batches: DynamicBucketingSampler, seconds: np.ndarray, settings: Settings, root: str
) -> str:
    """The first epoch's batches: their count, sizes, padding (of the audio as padded in the
    batches) and shapes, said and kept in ``<run>/batching.json``."""
    import json

    index = batches.index_batches()
    fraction = padding_fraction(batches, seconds, settings.data.sample_rate)
    sizes: dict[int, int] = {}
    for b in index:
        sizes[len(b)] = sizes.get(len(b), 0) + 1
    sizes = dict(sorted(sizes.items()))
    shapes = len({(len(b), float(batches.durations[b].max())) for b in index})
    stats: dict[str, Any] = {"batches": len(index), "samples": int(sum(len(b) for b in index))}
    stats |= {"padding_fraction": fraction, "batch_sizes": sizes, "batch_shapes": shapes}
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "batching.json"), "w") as f:
        json.dump({**stats, "epoch": int(batches.epoch)}, f, indent=1)
    histogram = " ".join(f"{k}:{v}" for k, v in sizes.items())
    # NOTE [batch shapes]: bounded by design and said here; the compiled step's warning about
    # many shapes (meant for unbounded ones) would only repeat it (the command's own filter)
    warnings.filterwarnings("ignore", message=".*different batch shapes")
    return (
        f"mlx-audio: duration batching: {stats['batches']} batches an epoch, "
        f"{min(sizes)}-{max(sizes)} clips each (mean {stats['samples'] / len(index):.1f}), "
        f"padding {100 * fraction:.1f}%, {shapes} batch shapes; batch sizes (size:count) "
        f"{histogram}"
    )


def padding_fraction(batches: DynamicBucketingSampler, seconds: np.ndarray, rate: int) -> float:
    """The share of the sampler's epoch (its current one) that is padding: 1 - the clips' audio
    over the audio of the batches as padded (each to its longest clip's padded length)."""
    real = np.round(np.asarray(seconds, np.float64) * rate)
    index = batches.index_batches()
    padded = [len(b) * float(batches.durations[b].max()) for b in index]
    return 1.0 - float(sum(real[b].sum() for b in index)) / max(1.0, sum(padded))


class PaddingMonitor(Callback):
    """Logs each training epoch's padding fraction as ``train/padding_fraction`` through the
    run's loggers (CSV, TensorBoard, ...), at the epoch's end, as a metric of that epoch."""

    def __init__(self, batches: DynamicBucketingSampler, seconds: np.ndarray, rate: int) -> None:
        self.batches, self.seconds, self.rate = batches, seconds, rate

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        fraction = padding_fraction(self.batches, self.seconds, self.rate)
        module.log("train/padding_fraction", fraction, on_step=False, on_epoch=True)


def report_sources(train: clips.Clips, settings: Settings, per_source: list[Any]) -> str:
    """Each training source's clips, weight and classes of its own."""
    mixed = weights(settings) or [1.0]
    total = sum(mixed)
    lines = [f"mlx-audio: data.train: {len(per_source)} sources, drawn by weight"]
    for index, (table, weight) in enumerate(zip(per_source, mixed)):
        kept = int((train.sources == index).sum())
        others = {c for j, t in enumerate(per_source) if j != index for c in t.classes}
        own = [c for c in table.classes if c not in others]
        lines.append(
            f"  {table.source}: {kept} training clips, weight {weight:g} "
            f"({100 * weight / total:.0f}% of draws), {len(table.classes)} classes"
            + (f"; only here: {', '.join(own[:10])}" if own else "")
        )
    return "\n".join(lines)


def loaders(
    train: clips.Clips, val: clips.Clips, settings: Settings, transforms: Any
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Duration batching's training and validation loaders (validation unshuffled), both padded
    to the training set's bucket lengths (NOTE [batch shapes])."""
    d = settings.data
    longest = float(max(train.seconds.max(initial=0), val.seconds.max(initial=0)))
    lengths = pad_lengths(train.seconds, longest, settings)
    collated = collate(lengths, settings)
    return (
        DataLoader(
            train,
            batch_sampler=sampler(train, settings, True, lengths),
            num_workers=d.num_workers,
            collate_fn=collated,
            cpu_transforms=transforms,
        ),
        DataLoader(
            val,
            batch_sampler=sampler(val, settings, False, lengths),
            num_workers=d.num_workers,
            collate_fn=collated,
        ),
    )
