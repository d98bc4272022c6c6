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
        self.classes = sorted(
            e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith(".")
        )
        if not self.classes:
            raise FileNotFoundError(
                f"AudioFolder: no class folders in {self.root} (expected root/<class>/<files>)"
            )
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        for name in self.classes:
            found = sorted(
                os.path.join(folder, file)
                for folder, _, files in os.walk(os.path.join(self.root, name), followlinks=True)
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


class AudioManifest(_AudioFiles):
    """Rows of a CSV (header line) or JSON-lines file: ``path`` (required; relative paths are
    resolved against the manifest's folder, or ``root``), optional ``label``, ``caption``,
    ``offset`` and ``duration`` (seconds).

    Items are tuples ``(waveform, label)``, ``(waveform, caption)`` or ``(waveform, label,
    caption)`` -- the columns present, in that order -- or dicts with ``as_dict=True``
    (``{"audio", "label", "caption"}``). String labels are mapped to indices by sorted name
    (``classes``, ``class_to_idx``); integer labels are kept.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int | None = None,
        mono: bool = True,
        root: str | os.PathLike[str] | None = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        as_dict: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.mono = mono
        self.transform = transform
        self.as_dict = as_dict
        base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(self.path))
        rows = _read_manifest(self.path)
        self.has_label = any("label" in r for r in rows)
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
            if self.has_label:
                if row.get("label") in (None, ""):
                    raise ValueError(f"AudioManifest: {where} has no label but other rows do")
                labels.append(row["label"])
            if self.has_caption:
                self.captions.append(str(row.get("caption") or ""))
        self.class_to_idx, self.labels = _index_labels(labels)
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
        if self.has_label:
            item["label"] = self.labels[index]
        if self.has_caption:
            item["caption"] = self.captions[index]
        return item if self.as_dict else tuple(item.values())


def _read_manifest(path: str) -> list[dict[str, Any]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"AudioManifest: no manifest at {path}")
    with open(path, newline="", encoding="utf-8") as f:
        if path.endswith((".csv", ".tsv")):
            reader = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise ValueError(
                    f"AudioManifest: {path} needs a header line with a 'path' column, got {reader.fieldnames}"
                )
            return [{k: v for k, v in row.items() if v not in (None, "")} for row in reader]
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


def _index_labels(labels: list[Any]) -> tuple[dict[str, int], list[int]]:
    """``(class_to_idx, label indices)``: integer labels kept as they are (``"3" -> 3``);
    names mapped to their index in sorted order."""
    if all(isinstance(v, int) or (isinstance(v, str) and v.lstrip("-").isdigit()) for v in labels):
        values = [int(v) for v in labels]
        return {str(v): v for v in sorted(set(values))}, values
    index = {name: i for i, name in enumerate(sorted({str(v) for v in labels}))}
    return index, [index[str(v)] for v in labels]
