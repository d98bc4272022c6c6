"""The command's dataset over a checked :class:`~.data.Table`: clips read at the sample rate,
training clips cut by seeking to a random window (a 1-s crop of a 10-minute file decodes 1 s),
and the ``data.on_error`` policy for files that fail while training (``skip``: the sample is
dropped from its batch, warned once per file, listed at the end of the run)."""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
from typing import Any, cast

import numpy as np

from mlx_audio.data import ArrayDataset, DataLoader, Dataset, PadOrCrop, load_audio, sample_rng
from mlx_audio.data.collate import collate_into

from . import data
from .config import Settings
from .data import DataError, Table, count, example, reason
from .values import ConfigError


class SkipLog:
    """Files dropped under ``data.on_error: skip``: a file that worker processes append to
    (one line per drop: path, tab, why), so the main process can count and list them."""

    def __init__(self) -> None:
        handle, self.path = tempfile.mkstemp(prefix="mlx-audio-skipped-", suffix=".tsv")
        os.close(handle)
        atexit.register(self.remove)

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)

    def add(self, path: str, why: str) -> bool:
        """Record a drop; True the first time this file is dropped (warn then, once)."""
        first = path not in {line.split("\t", 1)[0] for line in self.lines()}
        with open(self.path, "a") as f:  # one short write: appends from processes stay whole
            f.write(f"{path}\t{why}\n")
        return first

    def lines(self) -> list[str]:
        try:
            with open(self.path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def report(self, folder: str | None) -> str | None:
        """The run's summary line of dropped files (written to ``folder/skipped.txt``), or None."""
        lines = self.lines()
        self.remove()
        if not lines:
            return None
        files = sorted({line.split("\t", 1)[0] for line in lines})
        at_check = [line for line in lines if line.endswith("(header)")]
        while_training = len(lines) - len(at_check)
        where = ""
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "skipped.txt"), "w") as f:
                f.writelines(line + "\n" for line in lines)
            where = f", listed in {os.path.join(folder, 'skipped.txt')}"
        parts = [f"{count(len(at_check), 'unreadable file')} left out"] if at_check else []
        if while_training:
            failed = len(files) - len(at_check)
            parts.append(
                f"{count(while_training, 'sample')} of {count(failed, 'file')} dropped "
                "while training"
            )
        return f"mlx-audio: data.on_error: skip: {' and '.join(parts)}{where}: {example(files)}"


class Unreadable:
    """What :class:`Clips` yields for a file it skipped; :class:`DropUnreadable` drops it."""

    def __init__(self, path: str) -> None:
        self.path = path


class Clips(Dataset[Any]):
    """Items ``(wave, class index)``, ``(wave, caption)``, ``(wave, index, caption)`` or
    ``(wave,)`` (what the table holds) of ``length`` samples at ``sample_rate``: with ``crop``
    a random window (seeded per sample, seeking into the file; shorter clips padded at the end),
    else the start, padded or cut. ``length=None``: whole windows (CLAP's features cut them)."""

    def __init__(
        self,
        table: Table,
        sample_rate: int,
        length: int | None,
        crop: bool = False,
        on_error: str = "raise",
        skipped: SkipLog | None = None,
        training: bool = True,
    ) -> None:
        # numpy arrays, not lists of str: a worker reading a list of objects copies its pages
        self.paths = np.asarray(table.paths, dtype=str)
        self.offsets = np.asarray(table.offsets, dtype=np.float64)
        self.seconds = np.asarray(table.seconds, dtype=np.float64)  # available from the offset
        self.durations = np.asarray(
            [np.nan if d is None else d for d in table.durations], dtype=np.float64
        )
        self.sources = table.sources if len(table.sources) else np.zeros(len(self.paths), np.int64)
        self.targets = table.targets
        self.captions = table.captions
        self.classes = table.classes
        self.sample_rate = sample_rate
        self.length = length
        self.crop = crop
        self.on_error = on_error
        self.skipped = skipped
        self.training = training  # evaluate/predict: no data.on_error advice

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        path, offset, seconds = str(self.paths[index]), self.offsets[index], self.seconds[index]
        rate = self.sample_rate
        if self.length is not None and self.crop and seconds * rate > self.length:
            clip = self.length / rate
            start = offset + float(sample_rng().uniform(0.0, seconds - clip))
            wave, _ = load_audio(path, rate, offset=start, duration=clip)  # seeks: decodes `clip`
        else:
            window = self.durations[index]
            wave, _ = load_audio(
                path, rate, offset=offset, duration=None if np.isnan(window) else window
            )
        return wave if self.length is None else PadOrCrop(self.length)(wave)

    def __getitem__(self, index: int) -> Any:
        try:
            wave = self.read(index)
        except Exception as error:  # any decoder's error: the data.on_error policy decides
            path = str(self.paths[index])
            if self.on_error != "skip":
                advice = "; set data.on_error: skip to drop files that fail while training"
                raise DataError(
                    f"cannot read {path} ({reason(error)}){advice if self.training else ''}"
                ) from None
            if self.skipped is None or self.skipped.add(path, reason(error)):
                print(f"mlx-audio: warning: skipping {path}: {reason(error)}", file=sys.stderr)
            return Unreadable(path)
        item: tuple[Any, ...] = (wave,)
        if self.targets is not None:  # a class index, or multi-hot (several classes per clip)
            target = self.targets[index]
            item += (target.astype(np.float32) if target.ndim else int(target),)
        if self.captions is not None:
            item += (self.captions[index],)
        return item


class DropUnreadable:
    """The default collate (into shared memory in process workers) without skipped samples."""

    def _kept(self, samples: list[Any]) -> list[Any]:
        kept = [s for s in samples if not isinstance(s, Unreadable)]
        if not kept:
            raise DataError(
                f"every file of a batch failed to read ({example([s.path for s in samples])}): "
                "check the files listed above"
            )
        return kept

    def __call__(self, samples: list[Any]) -> Any:
        return collate_into(self._kept(samples), None)

    def collate_into(self, samples: list[Any], alloc: Any) -> Any:
        return collate_into(self._kept(samples), alloc)


def check_labels(labels: Any, num_classes: int) -> None:
    """A batch's class indices are all in ``range(num_classes)`` (past the end, MLX's
    ``take``/``cross_entropy`` read out of bounds: undefined behaviour, not an error)."""
    values = np.asarray(labels)
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = int(values.min()) if values.min() < 0 else int(values.max())
        raise DataError(
            f"label index {bad} is not a class of this model (it has {num_classes} classes: "
            f"0..{num_classes - 1})"
        )


def report_skipped(dataset: Any, folder: str) -> None:
    """At the end of training: the files ``data.on_error: skip`` dropped, if any."""
    skipped = getattr(dataset, "skipped", None)
    line = skipped.report(folder) if skipped is not None else None
    if line:
        print(line)


def training(settings: Settings, sample_rate: int) -> tuple[Clips, Clips, list[str]]:
    """The training and validation sets -- ``data.val``, or ``data.val_fraction`` of each class
    held out -- with every header checked and a summary printed, and the run's classes."""
    from .batching import check_longest, report_sources, sources

    d = settings.data
    classifier = settings.model.name != "clap"
    paths = sources(d.train)
    tables = [data.labelled(p, None, d.label_column, need_labels=classifier) for p in paths]
    train = tables[0] if len(tables) == 1 else merged(tables)
    task = settings.model.task
    if classifier and task == "multilabel" and not train.multilabel:
        raise DataError(
            f"--data {train.source}: model.task multilabel needs a manifest with a 'labels' column "
            "(each clip's class names separated by ';'); this data has one class per clip"
        )
    if classifier and task == "multiclass" and train.multilabel:
        raise DataError(
            f"--data {train.source} has a 'labels' column (several classes per clip): train it with "
            "model.task multilabel (or auto)"
        )
    if classifier and len(train.classes) < 2 and not train.multilabel:
        raise DataError(
            f"--data {train.source}: one class ({', '.join(map(repr, train.classes))}); a classifier "
            "needs two or more classes of clips"
        )
    data.report_ignored(train)
    skipped = SkipLog() if d.on_error == "skip" else None
    train = data.check_headers(train, d.on_error, skipped)
    held: float | None = None
    if d.val is not None:
        known = train.classes if train.targets is not None else None
        val = data.labelled(d.val, known, d.label_column, classifier, "--val-data")
        data.report_ignored(val)
        val = data.check_headers(val, d.on_error, skipped)
    else:
        keep, out = data.stratified_split(
            train.targets, len(train.paths), d.val_fraction, settings.trainer.seed
        )
        train, val, held = train.take(keep), train.take(out), d.val_fraction
    print(data.summary(train, val, held))
    overlap(train, val, d.val is not None)
    whole = not classifier or d.batching == "duration"  # duration batching: whole clips
    length = None if whole else int(round(d.clip_seconds * sample_rate))
    if d.batching == "duration":
        check_longest(train.seconds, train.paths, settings)
    fit = Clips(train, sample_rate, length, crop=True, on_error=d.on_error, skipped=skipped)
    if len(tables) > 1:
        print(report_sources(fit, settings, tables))
    return (
        fit,
        Clips(val, sample_rate, length, on_error=d.on_error, skipped=skipped),
        train.classes,
    )


def overlap(train: Table, val: Table, separate: bool) -> None:
    """Warn (never refuse) where a validation file is also a training file, or where several
    ``data.train`` sources hold the same file: the validation score is then not a held-out one."""
    where = {os.path.realpath(p): p for p in train.paths}
    shared = sorted({where[r] for r in map(os.path.realpath, val.paths) if r in where})
    if separate and shared:
        print(
            f"mlx-audio: warning: {count(len(shared), 'validation file')} of {len(set(val.paths))}"
            f" {'is' if len(shared) == 1 else 'are'} also training files ({example(shared)}): "
            "the validation score is not measured on held-out clips"
        )
    if len(train.sources):
        seen: dict[str, int] = {}
        twice = set()
        for path, source in zip(train.paths, train.sources.tolist()):
            real = os.path.realpath(path)
            if seen.setdefault(real, source) != source:
                twice.add(path)
        if twice:
            print(
                f"mlx-audio: warning: {count(len(twice), 'file')} in more than one data.train "
                f"source ({example(sorted(twice))}): drawn from each"
            )


def for_run(path: str, settings: Settings, classes: list[str] | None) -> Clips:
    """``evaluate`` (``classes``: the run's, labels numbered by them) or ``predict`` (None:
    every audio file of a file, folder or manifest) data, checked, clips padded or cut as the
    run's validation clips. Files that fail are errors here: a dropped clip would shift rows."""
    d = settings.data
    table = data.labelled(path, classes, d.label_column) if classes else data.unlabelled(path)
    data.report_ignored(table)
    table = data.check_headers(table, "raise", training=False)
    length = None if d.batching == "duration" else int(round(d.clip_seconds * d.sample_rate))
    return Clips(table, d.sample_rate, length, training=False)


def in_memory(clips_set: Any, settings: Settings, name: str) -> ArrayDataset:
    """``data.in_memory``: every clip decoded once (by ``data.num_workers`` workers) into one
    device-resident array (NOTE [device-resident data] in mlx_audio.data): batches are then one
    ``mx.take`` on the accelerator, with no decode or copy per step. Training clips keep the
    window drawn for the first epoch (seeded) instead of a fresh one each epoch; files that fail
    under ``data.on_error: skip`` are left out. The memory taken is printed."""
    import mlx.core as mx  # here: this module also runs in the loader's workers

    d = settings.data
    fits(len(clips_set) * clips_set.length * 4, f"{len(clips_set):,} {name} clips", d.clip_seconds)
    loader: DataLoader[Any] = DataLoader(
        clips_set,
        batch_size=max(d.batch_size, 64),
        num_workers=d.num_workers,
        collate_fn=DropUnreadable(),
        seed=settings.trainer.seed if settings.trainer.seed is not None else 0,
    )
    batches = [cast("tuple[mx.array, mx.array]", tuple(b)) for b in loader]
    dataset = ArrayDataset(
        mx.concatenate([w for w, _ in batches]), mx.concatenate([y for _, y in batches])
    )
    for field in ("skipped", "targets"):  # what the command reads of its dataset
        setattr(dataset, field, getattr(clips_set, field, None))
    print(
        f"mlx-audio: data.in_memory: {len(dataset):,} {name} clips on the device, "
        f"{dataset.nbytes / 2**20:,.1f} MiB"
    )
    return dataset


def fits(nbytes: int, what: str, seconds: float) -> None:
    """``data.in_memory``'s arrays must fit, twice (decoded batches and the array they make),
    in the machine's memory (and the accelerator's, where MLX reports it): checked before any
    clip is decoded."""
    import mlx.core as mx

    host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    device = mx.device_info().get("memory_size")
    limit = min(host, int(device)) if isinstance(device, int) and device > 0 else host
    if 2 * nbytes > limit:
        raise ConfigError(
            f"data.in_memory: {what} of {seconds:g} s take {nbytes / 2**30:,.1f} GiB as float32 "
            f"(twice that while they are gathered), more than this machine's "
            f"{limit / 2**30:,.1f} GiB allows: drop --data.in_memory (the workers then decode "
            "clips per batch) or shorten data.clip_seconds"
        )


def merged(tables: list[Table]) -> Table:
    """Several labelled sources as one table: the union of their classes (sorted), each row's
    labels renumbered by it, ``sources`` the row's source."""
    kinds = {t.multilabel for t in tables}
    if len(kinds) > 1:
        which = ", ".join(t.source for t in tables if t.multilabel)
        raise DataError(
            f"data.train: {which} has several labels a clip (a 'labels' column) and the others "
            "one: mix sources of one kind"
        )
    if any(t.targets is None for t in tables):
        raise DataError(
            f"data.train: {', '.join(t.source for t in tables if t.targets is None)} has no labels"
        )
    classes = sorted({c for t in tables for c in t.classes})
    parts = []
    for t in tables:
        mapping = np.asarray([classes.index(c) for c in t.classes], np.int64)
        assert t.targets is not None
        if t.multilabel:
            hot = np.zeros((len(t.targets), len(classes)), np.int8)
            hot[:, mapping] = t.targets
            parts.append(hot)
        else:
            parts.append(mapping[t.targets])
    captions = [c for t in tables for c in t.captions or []]
    return Table(
        ", ".join(t.source for t in tables),
        [p for t in tables for p in t.paths],
        [o for t in tables for o in t.offsets],
        [d for t in tables for d in t.durations],
        np.concatenate(parts),
        classes,
        captions if all(t.captions is not None for t in tables) else None,
        [i for t in tables for i in t.ignored],
        sources=np.concatenate([np.full(len(t.paths), i, np.int64) for i, t in enumerate(tables)]),
    )
