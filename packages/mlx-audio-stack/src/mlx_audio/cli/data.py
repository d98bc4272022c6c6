"""The command's data: finding the files (class folders, a manifest, a flat folder or one file),
numbering labels by the run's classes, checking every file's header before any work, the
stratified validation split and the summary printed before training.

Every mistake in the data's files is a :class:`DataError`: one message, exit status 1; a path
that does not exist or a column a setting names that is not there is the command line's mistake,
a ``ConfigError``, exit status 2 (docs/cli.md, "Exit status").
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlx_audio.data.audio.datasets import AUDIO_EXTENSIONS, AudioFolder, AudioManifest

from .values import ConfigError

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
# Extensions a decoder reads (libsndfile, or PyAV with the ffmpeg extra) that are not looked for:
# reported, never taken silently nor dropped silently.
UNLISTED_AUDIO = (".wave", ".wma", ".mp4", ".webm", ".mka", ".amr", ".caf", ".w64", ".aifc")
SHOWN_CLASSES = 30  # rows of the summary's class table
FEW_VALIDATION_CLIPS = 50  # below this, one clip moves val_accuracy by more than 2 points


class DataError(ValueError):
    """A mistake in the user's data, said in one message (exit status 1, no traceback)."""

    def __init__(self, message: str) -> None:
        # NOTE: raised in a DataLoader worker, it comes back as DataError(<the worker's
        # traceback>) (WorkerError.reraise): keep the message only, its last line.
        if "Original traceback (from the worker):" in message:
            message = message.rstrip().splitlines()[-1].split("DataError: ", 1)[-1]
        super().__init__(message)


def hidden(name: str) -> bool:
    """Not data (as AudioFolder): hidden files and folders, macOS's ``._*`` and ``__MACOSX``."""
    return name.startswith(".") or name == "__MACOSX"


def _kind(name: str) -> str:
    low = name.lower()
    if low.endswith(AUDIO_EXTENSIONS):
        return "audio"
    return "unlisted" if low.endswith(UNLISTED_AUDIO) else "other"


@dataclass
class Table:
    """The rows of some data: each file's window and, where labelled, its class index."""

    source: str
    paths: list[str]
    offsets: list[float]
    durations: list[float | None]
    targets: np.ndarray | None = None  # indices into classes; multi-label: (rows, classes) 0/1
    classes: list[str] = field(default_factory=list)
    captions: list[str] | None = None
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason kind)
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per row, from the headers
    sources: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # data.train's

    @property
    def multilabel(self) -> bool:
        return self.targets is not None and self.targets.ndim == 2

    def of_class(self, index: int) -> np.ndarray:
        """Which rows are of class ``index`` (multi-label: which have it among theirs)."""
        assert self.targets is not None
        return self.targets[:, index] > 0 if self.multilabel else self.targets == index

    def take(self, keep: Sequence[int]) -> Table:
        index = list(keep)
        return Table(
            self.source,
            [self.paths[i] for i in index],
            [self.offsets[i] for i in index],
            [self.durations[i] for i in index],
            None if self.targets is None else self.targets[index],
            self.classes,
            None if self.captions is None else [self.captions[i] for i in index],
            self.ignored,
            self.seconds[index] if len(self.seconds) else self.seconds,
            self.sources[index] if len(self.sources) else self.sources,
        )


def survey(root: str, class_folders: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """Every audio file under ``root`` (sorted) and the files left out with why: in the root of
    a class-folder layout (``root``), an audio extension not looked for (``unlisted``),
    anything else (``other``). Hidden files and ``__MACOSX`` are neither."""
    found, ignored = [], []
    for parent, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not hidden(d))
        for name in sorted(f for f in files if not hidden(f)):
            path = os.path.join(parent, name)
            kind = _kind(name)
            if class_folders and parent == root:
                ignored.append((path, "root"))
            elif kind == "audio":
                found.append(path)
            else:
                ignored.append((path, kind))
    return found, ignored


def exists(path: str, where: str) -> None:
    """A path the command line gives that is not there: the command line's mistake (status 2);
    a manifest that is empty or has a header only: the data's (status 1)."""
    if not os.path.exists(path):
        raise ConfigError(f"{where}: no such file or folder")
    if os.path.isfile(path) and path.lower().endswith(MANIFEST_SUFFIXES):
        with open(path, "rb") as f:
            lines = [line for line in f.read(1 << 16).splitlines() if line.strip()]
        if not lines:
            raise DataError(
                f"{where}: the file is empty (expected a header line with a 'path' column, then "
                "a row per clip)"
            )
        if len(lines) == 1 and not path.lower().endswith((".jsonl", ".json")):
            raise DataError(
                f"{where}: no rows, only the header line ({lines[0].decode(errors='replace')})"
            )


def _library(make: Any, where: str) -> Any:
    try:
        return make()
    except (ValueError, FileNotFoundError) as error:
        text = str(error).removeprefix("AudioManifest: ").removeprefix("AudioFolder: ")
        text = text.replace("(allow_empty=True to accept empty classes)", "(remove the folder)")
        path = where.removeprefix("--data ")
        raise DataError(f"{where}: {text.removeprefix(path + ': ')}") from None


def labelled(
    path: str,
    classes: Sequence[str] | None,
    label_column: str,
    need_labels: bool = True,
    flag: str = "--data",
) -> Table:
    """Class folders or a manifest; labels numbered by ``classes`` (a run's) or, without, by the
    sorted class names (a manifest's integer labels are names too: 1..4 are four classes).
    ``flag``: the option the messages name."""
    where = f"{flag} {path}"
    exists(path, where)
    if os.path.isdir(path):
        _, ignored = survey(path, class_folders=True)
        if not any(e.is_dir() and not hidden(e.name) for e in os.scandir(path)):
            loose = sum(kind == "root" and _kind(p) == "audio" for p, kind in ignored)
            raise DataError(
                f"{where}: no class folders (expected {path}/<class>/<files>)"
                + (f"; {loose} audio files lie directly in it" if loose else "")
                + ": put each class's files in a folder named after it, or list path,label in a manifest"
            )
        folder = _library(
            lambda: AudioFolder(path, classes=classes, allow_empty=classes is not None), where
        )
        rows = folder.files()
        return Table(
            path,
            [p for p, _, _ in rows],
            [o for _, o, _ in rows],
            [d for _, _, d in rows],
            np.asarray(folder.targets, np.int64),
            list(folder.classes),
            ignored=ignored,
        )
    if not (os.path.isfile(path) and path.lower().endswith(MANIFEST_SUFFIXES)):
        raise DataError(
            f"{where}: expected a folder of class folders or a manifest ({', '.join(MANIFEST_SUFFIXES)})"
        )

    def read(names: Sequence[str] | None) -> AudioManifest:
        return AudioManifest(path, classes=names, label_column=label_column)

    manifest = _library(lambda: read(classes), where)
    if need_labels and not manifest.has_label:
        raise ConfigError(
            f"{where} has no {label_column!r} column (columns: {', '.join(manifest.columns)}); "
            "name the column of class names with --data.label_column"
        )
    if manifest.has_label and classes is None and not manifest.multilabel:
        names = sorted({manifest.classes[i] for i in manifest.labels})  # integers are names too
        if names != manifest.classes:
            manifest = _library(lambda: read(names), where)
    targets = None
    if manifest.has_label and not manifest.multilabel:
        targets = np.asarray(manifest.labels, np.int64)
    elif manifest.multilabel:  # AudioSet-style: several classes per clip (a `labels` column)
        targets = np.zeros((len(manifest.labels), len(manifest.classes)), np.int8)
        for row, indices in enumerate(manifest.labels):
            targets[row, indices] = 1
    return Table(
        path,
        [p for p, _, _ in manifest.rows],
        [o for _, o, _ in manifest.rows],
        [d for _, _, d in manifest.rows],
        targets,
        list(manifest.classes),
        list(manifest.captions) if manifest.has_caption else None,
    )


def unlabelled(path: str) -> Table:
    """What ``predict`` reads: one file, a folder (flat or a tree: every audio file in it) or a
    manifest's rows."""
    where = f"--data {path}"
    exists(path, where)
    if os.path.isfile(path) and path.lower().endswith(MANIFEST_SUFFIXES):
        rows = _library(lambda: AudioManifest(path), where).rows
        return Table(
            path, [p for p, _, _ in rows], [o for _, o, _ in rows], [d for _, _, d in rows]
        )
    if os.path.isfile(path):
        return Table(path, [path], [0.0], [None])
    audio, ignored = survey(path, class_folders=False)
    if not audio:
        raise DataError(f"{where}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in it")
    return Table(path, audio, [0.0] * len(audio), [None] * len(audio), ignored=ignored)


def example(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def report_ignored(table: Table) -> None:
    """Say which files are not used, and why (never a silent skip)."""
    groups: dict[str, list[str]] = {}
    for path, kind in table.ignored:
        groups.setdefault(kind, []).append(path)
    why = {
        "root": "in the data folder itself, outside the class folders",
        "unlisted": "an audio extension that is not read (convert to .wav/.flac; .wave: rename to .wav)",
        "other": "not audio",
    }
    for kind, paths in groups.items():
        print(
            f"mlx-audio: warning: {count(len(paths), 'file')} not used, {why[kind]}: {example(paths)}"
        )


def reason(error: BaseException) -> str:
    cause = error.__cause__
    text = getattr(cause, "error_string", None) or str(error)
    return str(text).strip().removeprefix("Error : ").rstrip(".") or type(error).__name__


def _info(path: str) -> tuple[float, str | None]:
    """``(seconds, None)`` from the file's header, or ``(nan, why it cannot be used)``."""
    from mlx_audio.data import audio_info

    try:
        frames, rate, _ = audio_info(path)
    except Exception as error:  # any decoder's error: the file is unreadable, said below
        return float("nan"), reason(error)
    if frames <= 0:
        return float("nan"), "no audio samples"
    return frames / rate, None


def check_headers(table: Table, on_error: str, skipped: Any = None, training: bool = True) -> Table:
    """Read every file's header (threads; a progress line for large sets) and set
    ``table.seconds``. Unreadable or empty files: a :class:`DataError` listing them all, or,
    with ``on_error == "skip"``, a warning and rows without them (recorded in ``skipped``)."""
    unique = sorted(set(table.paths))
    done, started, shown = 0, time.monotonic(), 0.0
    results: dict[str, tuple[float, str | None]] = {}
    with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
        for path, result in zip(unique, pool.map(_info, unique)):
            results[path] = result
            done += 1
            now = time.monotonic() - started
            if len(unique) >= 500 and (now - shown > 1.0 or done == len(unique)):
                shown = now
                end = "\n" if done == len(unique) else "\r"
                print(f"mlx-audio: checking files: {done}/{len(unique)}", end=end, file=sys.stderr)
    bad = [(path, why) for path, (_, why) in results.items() if why is not None]
    if bad and on_error != "skip":
        listing = "".join(f"\n  {path}: {why}" for path, why in bad)
        advice = ", or set data.on_error: skip to train without them" if training else ""
        raise DataError(
            f"{len(bad)} of {len(unique)} files cannot be read (fix or remove them{advice}):{listing}"
        )
    if bad:
        print(
            f"mlx-audio: warning: leaving out {count(len(bad), 'unreadable file')} "
            f"(data.on_error: skip): {example([p for p, _ in bad])}"
        )
        if skipped is not None:
            for path, why in bad:
                skipped.add(path, f"{why} (header)")
    starts = np.asarray(table.offsets, dtype=np.float64)
    total = np.asarray([results[p][0] for p in table.paths], dtype=np.float64) - starts
    limits = np.asarray([np.inf if d is None else d for d in table.durations], dtype=np.float64)
    table.seconds = np.clip(np.minimum(total, limits), 0.0, None)
    keep = [i for i, p in enumerate(table.paths) if results[p][1] is None]
    return table if len(keep) == len(table.paths) else table.take(keep)


def stratified_split(
    targets: np.ndarray | None, size: int, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """``(train, validation)`` indices: ``fraction`` of each class held out (at least one clip
    of every class with two or more), seeded; without labels (or with several per clip) a
    plain seeded draw."""
    rng = np.random.default_rng(seed)
    if targets is None or targets.ndim == 2:
        order = rng.permutation(size)
        held = max(1, int(round(size * fraction)))
        return sorted(order[held:].tolist()), sorted(order[:held].tolist())
    val: list[int] = []
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        take = 0 if len(members) < 2 else max(1, int(round(len(members) * fraction)))
        val.extend(rng.permutation(members)[: min(take, len(members) - 1)].tolist())
    if not val:
        raise DataError(
            "too few files to hold out a validation set (one per class): pass --val-data"
        )
    chosen = set(val)
    return [i for i in range(size) if i not in chosen], sorted(val)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("s") else "s")


def lookalike_classes(classes: Sequence[str]) -> list[list[str]]:
    """Groups of class names equal but for case or surrounding spaces ("Dog", "dog", "dog ")."""
    groups: dict[str, list[str]] = {}
    for name in classes:
        groups.setdefault(str(name).strip().casefold(), []).append(str(name))
    return [names for names in groups.values() if len(names) > 1]


def summary(train: Table, val: Table, held_out: float | None) -> str:
    """What was found, per class, and the validation set, with a warning when it is too small
    to choose a checkpoint by."""
    seconds = float(train.seconds.sum() + val.seconds.sum())
    files = len(train.paths) + len(val.paths)
    head = f"mlx-audio: data {train.source}" + ("" if held_out is not None else f" + {val.source}")
    lines = [
        f"{head}: {count(len(train.classes), 'class')}, {count(files, 'file')}, {duration(seconds)}"
    ]
    if train.targets is not None and val.targets is not None:
        width = max(5, *(len(c) for c in train.classes))
        lines.append(f"  {'class':<{width}}  training  validation  duration")
        for index, name in enumerate(train.classes[:SHOWN_CLASSES]):
            fit, held = train.of_class(index), val.of_class(index)
            spent = float(train.seconds[fit].sum() + val.seconds[held].sum())
            lines.append(
                f"  {name:<{width}}  {int(fit.sum()):>8}  {int(held.sum()):>10}  {duration(spent):>8}"
            )
        if len(train.classes) > SHOWN_CLASSES:
            lines.append(f"  ... and {len(train.classes) - SHOWN_CLASSES} more classes")
        missing = [c for i, c in enumerate(train.classes) if not val.of_class(i).any()]
        if missing:
            lines.append(f"mlx-audio: warning: no validation clips of {example(missing)}")
    lookalikes = lookalike_classes(train.classes)
    if lookalikes:
        lines.append(
            "mlx-audio: warning: class names that differ only in case or surrounding spaces are "
            f"different classes: {'; '.join(', '.join(map(repr, g)) for g in lookalikes[:3])} "
            "(make them one name in the data if they are one class)"
        )
    lines.append(
        f"  validation: {count(len(val.paths), 'file')} "
        + (
            f"held out, {'at random' if train.multilabel else 'stratified by class'} "
            f"(data.val_fraction {held_out})"
            if held_out is not None
            else f"from {val.source}"
        )
    )
    if len(val.paths) < FEW_VALIDATION_CLIPS:
        metric = "val_mAP" if train.multilabel else "val_accuracy"
        lines.append(
            f"mlx-audio: warning: {len(val.paths)} validation clips are too few to choose a "
            f"checkpoint reliably (one clip moves {metric} by up to "
            f"{100 / max(1, len(val.paths)):.1f} points); add data, raise data.val_fraction or "
            "pass --val-data"
        )
    return "\n".join(lines)
