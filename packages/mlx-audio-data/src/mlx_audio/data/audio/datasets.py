"""Datasets over audio files: a folder per class (torchvision's ``ImageFolder`` for audio) and
a manifest of rows (CSV or JSON lines). Items are decoded in ``__getitem__``, so with
``num_workers > 0`` decoding runs in the workers; only paths cross process boundaries."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..dataset import Dataset
from .io import audio_info, load_audio

__all__ = ["AUDIO_EXTENSIONS", "AudioFolder", "AudioManifest"]

AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aiff",
    ".aif",
    ".au",
    ".m4a",
    ".aac",
)


class _AudioFiles(Dataset[Any]):
    """Shared decoding and length bookkeeping of the two datasets."""

    sample_rate: int | None
    mono: bool
    _lengths: np.ndarray | None = None

    def _rows(self) -> list[tuple[str, float, float | None]]:  # (path, offset, duration)
        raise NotImplementedError

    def files(self) -> list[tuple[str, float, float | None]]:
        """``(path, offset, duration)`` of every item, in index order."""
        return self._rows()

    def load(self, index: int) -> np.ndarray:
        path, offset, duration = self._rows()[index]
        wave, _ = load_audio(path, self.sample_rate, self.mono, offset, duration)
        return wave

    def lengths(self) -> np.ndarray:
        """Each item's length in samples at ``sample_rate`` (from file headers, no decoding;
        cached): what :class:`BucketBatchSampler` groups by."""
        if self._lengths is None:
            out = []
            for path, offset, duration in self._rows():
                frames, rate, _ = audio_info(path)
                seconds = (
                    frames / rate - offset
                    if duration is None
                    else min(duration, frames / rate - offset)
                )
                out.append(max(0, int(round(max(seconds, 0.0) * (self.sample_rate or rate)))))
            self._lengths = np.asarray(out, dtype=np.int64)
        return self._lengths


class AudioFolder(_AudioFiles):
    """``root/<class>/**/<file>``: items ``(waveform, class_index)``.

    Classes are the sorted names of ``root``'s sub-folders (``classes``, ``class_to_idx`` as in
    torchvision's ``ImageFolder``); files with one of ``extensions`` (case-insensitive) are
    found recursively and sorted, so indices are stable. ``waveform`` is float32 ``(samples,)``
    (``(channels, samples)`` with ``mono=False``) at ``sample_rate`` (the file's own if None);
    ``offset``/``duration`` (seconds) read a window of every file. ``transform`` and
    ``target_transform`` run on the waveform and the index.

    ``classes`` fixes the class list (e.g. the one a model was trained with, to evaluate on a
    folder that lacks some classes): indices follow it, a class missing from ``root`` is fine,
    a sub-folder not in it is an error naming it. Hidden files and folders (``.DS_Store``,
    macOS's ``._*`` companions) and ``__MACOSX`` folders are not data and are skipped.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        sample_rate: int | None = None,
        extensions: Sequence[str] = AUDIO_EXTENSIONS,
        mono: bool = True,
        offset: float = 0.0,
        duration: float | None = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        allow_empty: bool = False,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"AudioFolder: {self.root} is not a directory")
        self.sample_rate = sample_rate
        self.mono = mono
        self.offset = float(offset)
        self.duration = duration
        self.transform = transform
        self.target_transform = target_transform
        self.extensions = tuple(
            e.lower() if e.startswith(".") else "." + e.lower() for e in extensions
        )
        found_classes = sorted(
            e.name for e in os.scandir(self.root) if e.is_dir() and not _hidden(e.name)
        )
        if not found_classes:
            raise FileNotFoundError(
                f"AudioFolder: no class folders in {self.root} (expected root/<class>/<files>)"
            )
        self.classes = list(found_classes if classes is None else classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        unknown = [name for name in found_classes if name not in self.class_to_idx]
        if unknown:
            raise ValueError(
                f"AudioFolder: {self.root}: class folders {unknown} are not among the classes "
                f"{self.classes}"
            )
        self.samples: list[tuple[str, int]] = []
        for name in found_classes:
            found = sorted(
                os.path.join(folder, file)
                for folder, dirs, files in _walk(os.path.join(self.root, name))
                for file in files
                if file.lower().endswith(self.extensions)
            )
            if not found and not allow_empty:
                raise FileNotFoundError(
                    f"AudioFolder: no files with extensions {self.extensions} in class folder "
                    f"{os.path.join(self.root, name)!r} (allow_empty=True to accept empty classes)"
                )
            self.samples.extend((path, self.class_to_idx[name]) for path in found)
        self.targets = [label for _, label in self.samples]

    def _rows(self) -> list[tuple[str, float, float | None]]:
        return [(path, self.offset, self.duration) for path, _ in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        wave = self.load(index)
        label: Any = self.samples[index][1]
        if self.transform is not None:
            wave = self.transform(wave)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return wave, label


def _hidden(name: str) -> bool:
    """Not data: hidden files and folders (``.DS_Store``, ``._*``) and ``__MACOSX``."""
    return name.startswith(".") or name == "__MACOSX"


def _walk(folder: str) -> Any:
    """``os.walk`` (following links) without hidden files and folders (:func:`_hidden`)."""
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        yield parent, dirs, [f for f in files if not _hidden(f)]


class AudioManifest(_AudioFiles):
    """Rows of a CSV/TSV (header line; an Excel byte-order mark is fine), JSON-lines or JSON
    array file: ``path`` (required; relative paths are resolved against the manifest's folder,
    or ``root``), optional ``label`` (another column with ``label_column``), ``caption``,
    ``offset`` and ``duration`` (seconds). ``columns`` lists the columns found.

    Items are tuples ``(waveform, label)``, ``(waveform, caption)`` or ``(waveform, label,
    caption)`` -- the columns present, in that order -- or dicts with ``as_dict=True``
    (``{"audio", "label", "caption"}``). String labels are mapped to indices by sorted name
    (``classes``, ``class_to_idx``); integer labels are kept as class indices (they must be
    >= 0), and ``classes`` is then ``"0"`` .. the largest, so ``len(classes)`` outputs cover
    every label. ``classes`` given (e.g. a trained model's) maps every label, string or integer,
    by its name in that list; a label not in it is an error naming it and the known ones.

    Multi-label (AudioSet-style): a ``labels`` column (``labels_column``) of class names
    separated by ``;`` (``label_separator``; an empty cell: no label) makes ``multilabel``
    True; each item's label is then a multi-hot ``float32`` vector over ``classes`` (sorted
    names, or the given ``classes``) and ``labels`` holds each row's class indices.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int | None = None,
        mono: bool = True,
        root: str | os.PathLike[str] | None = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        as_dict: bool = False,
        classes: Sequence[str] | None = None,
        label_column: str = "label",
        labels_column: str = "labels",
        label_separator: str = ";",
    ) -> None:
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.mono = mono
        self.transform = transform
        self.as_dict = as_dict
        base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(self.path))
        rows = _read_manifest(self.path)
        self.columns = sorted({key for row in rows for key in row})
        self.label_column = label_column
        self.multilabel = any(labels_column in r for r in rows)
        if self.multilabel and any(label_column in r for r in rows):
            raise ValueError(
                f"AudioManifest: {self.path} has both a {label_column!r} column (one class per "
                f"clip) and a {labels_column!r} column (several, {label_separator!r}-separated):"
                " keep the one you mean"
            )
        if self.multilabel:
            label_column = labels_column
        self.has_label = any(label_column in r for r in rows)
        self.has_caption = any("caption" in r for r in rows)
        self.rows: list[tuple[str, float, float | None]] = []
        labels: list[Any] = []
        self.captions: list[str] = []
        for line, row in enumerate(rows, start=2 if self.path.endswith((".csv", ".tsv")) else 1):
            where = f"{self.path}, row {line}"
            file = row.get("path")
            if not file:
                raise ValueError(f"AudioManifest: {where} has no 'path' (columns: {sorted(row)})")
            file = file if os.path.isabs(file) else os.path.join(base, file)
            if not os.path.exists(file):
                raise FileNotFoundError(f"AudioManifest: {where}: {file} does not exist")
            offset = _seconds(row.get("offset"), "offset", where) or 0.0
            duration = _seconds(row.get("duration"), "duration", where)
            self.rows.append((file, offset, duration))
            if self.multilabel:
                cell = row.get(label_column)
                names = [] if cell is None else str(cell).split(label_separator)
                labels.append([n.strip() for n in names if n.strip()])
            elif self.has_label:
                if row.get(label_column) in (None, ""):
                    raise ValueError(
                        f"AudioManifest: {where} has no {label_column!r} but other rows do"
                    )
                labels.append(row[label_column])
            if self.has_caption:
                self.captions.append(str(row.get("caption") or ""))
        if self.multilabel:
            self.class_to_idx, self.labels = _index_label_sets(labels, classes, self.path)
        else:
            self.class_to_idx, self.labels = _index_labels(labels, classes, self.path)
        self.classes = list(self.class_to_idx)

    def _rows(self) -> list[tuple[str, float, float | None]]:
        return self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Any:
        wave = self.load(index)
        if self.transform is not None:
            wave = self.transform(wave)
        item: dict[str, Any] = {"audio": wave}
        if self.multilabel:
            hot = np.zeros(len(self.classes), np.float32)
            hot[self.labels[index]] = 1.0
            item["label"] = hot
        elif self.has_label:
            item["label"] = self.labels[index]
        if self.has_caption:
            item["caption"] = self.captions[index]
        return item if self.as_dict else tuple(item.values())


def _separator_hint(path: str, header: Sequence[str] | None) -> str:
    """Where a one-column header holds another separator: say which one the suffix expects."""
    names = {";": "';'", "\t": "tabs", ",": "','"}
    expected = "\t" if path.endswith(".tsv") else ","
    found = [sep for sep in names if header and len(header) == 1 and sep in header[0]]
    if not found or expected in found:
        return ""
    suffix = os.path.splitext(path)[1]
    return (
        f" (one column: its header is separated by {names[found[0]]}, a {suffix} manifest by "
        f"{names[expected]})"
    )


def _read_manifest(path: str) -> list[dict[str, Any]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"AudioManifest: no manifest at {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
        if path.endswith((".csv", ".tsv")):
            reader = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise ValueError(
                    f"AudioManifest: {path} needs a header line with a 'path' column, got "
                    f"{reader.fieldnames}{_separator_hint(path, reader.fieldnames)}"
                )
            return [{k: v for k, v in row.items() if v not in (None, "")} for row in reader]
        if path.endswith(".json") and f.read(1024).lstrip().startswith("["):
            f.seek(0)
            return _json_array(path, f)
        f.seek(0)
        if path.endswith((".jsonl", ".json", ".ndjson")):
            rows = []
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(
                            f"AudioManifest: {path}, line {number} is not JSON: {error}"
                        ) from None
                    if not isinstance(row, dict):
                        raise ValueError(
                            f"AudioManifest: {path}, line {number} must be a JSON object"
                        )
                    rows.append(row)
            return rows
    raise ValueError(f"AudioManifest: {path}: use a .csv, .tsv or .jsonl manifest")


def _seconds(value: Any, name: str, where: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"AudioManifest: {where}: {name} must be seconds, got {value!r}") from None
    if seconds < 0:
        raise ValueError(f"AudioManifest: {where}: {name} must be >= 0, got {seconds}")
    return seconds


def _json_array(path: str, f: Any) -> list[dict[str, Any]]:
    """A ``.json`` manifest holding one array of row objects."""
    try:
        rows = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"AudioManifest: {path} is not JSON: {error}") from None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ValueError(f"AudioManifest: {path}, item {number} must be a JSON object")
    return list(rows)


def _index_label_sets(
    labels: list[list[str]], classes: Sequence[str] | None, path: str
) -> tuple[dict[str, int], list[Any]]:
    """Multi-label rows: ``(class_to_idx, each row's class indices)``, names sorted unless
    ``classes`` is given (then a name not in it is an error naming it)."""
    names = sorted({n for row in labels for n in row}) if classes is None else list(classes)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({n for row in labels for n in row} - set(index))
    if unknown:
        raise ValueError(
            f"AudioManifest: {path}: labels {unknown} are not among the classes {list(index)}"
        )
    return index, [sorted({index[n] for n in row}) for row in labels]


def _index_labels(
    labels: list[Any], classes: Sequence[str] | None, path: str
) -> tuple[dict[str, int], list[int]]:
    """``(class_to_idx, label indices)``. With ``classes``: every label by its name there.
    Else integer labels kept as indices (``"3" -> 3``; ``classes`` "0".."max"), names mapped
    to their index in sorted order. Never an index outside ``range(len(class_to_idx))``."""
    if classes is not None:
        index = {str(name): i for i, name in enumerate(classes)}
        unknown = sorted({str(v) for v in labels} - set(index))
        if unknown:
            raise ValueError(
                f"AudioManifest: {path}: labels {unknown} are not among the classes {list(index)}"
            )
        return index, [index[str(v)] for v in labels]
    if labels and all(
        isinstance(v, int) or (isinstance(v, str) and v.lstrip("-").isdigit()) for v in labels
    ):
        values = [int(v) for v in labels]
        if min(values) < 0:
            raise ValueError(
                f"AudioManifest: {path}: integer label {min(values)} is not a class index (>= 0)"
            )
        return {str(v): v for v in range(max(values) + 1)}, values
    index = {name: i for i, name in enumerate(sorted({str(v) for v in labels}))}
    return index, [index[str(v)] for v in labels]
