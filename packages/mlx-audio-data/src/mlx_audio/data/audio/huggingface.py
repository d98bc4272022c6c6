"""Hugging Face ``datasets`` audio columns, decoded by this package (no torch, no torchcodec).

NOTE [Hugging Face Audio]: since ``datasets`` 4 an ``Audio`` column decodes through torchcodec
(torch and ffmpeg), and what it yields (an ``AudioDecoder``) cannot be batched. Given a
map-style ``datasets.Dataset`` with decoding ``Audio`` columns, the DataLoader reads those
columns undecoded (``Audio(decode=False)``: the file's path or bytes) and decodes them in its
workers with :func:`~mlx_audio.data.load_audio`'s decoders into ``datasets`` 3's layout:
``{"array": float32 waveform, "sampling_rate": int, "path": str | None}``, resampled to the
column's ``sampling_rate`` (soxr). The array is ``(samples,)`` for a mono file or with
``num_channels=1`` (channels averaged), else ``(channels, samples)``. ``datasets`` is never
imported unless such a dataset is given.

NOTE [Hugging Face streams]: a ``datasets.IterableDataset`` splits itself across *torch's*
workers (it asks torch for the worker id), never ours, so each worker would stream all of it.
:class:`HuggingFaceAdapter` gives each worker its share with
``datasets.distributed.split_dataset_by_node`` (whole shards when they divide evenly, else every
``num_workers``-th example): nothing repeated, nothing lost. ``shard_loader`` splits it by rank
the same way.

Both are this module's :class:`HuggingFaceAdapter`, registered with the loader when this module
is imported (NOTE [dataset adapters]: the loader imports it on first sight of a ``datasets``
object, so users never need to).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._loader.adapters import register_adapter
from .io import load_audio, resample

__all__ = [
    "HuggingFaceAdapter",
    "decode_audio_value",
    "hugging_face_audio",
    "is_hugging_face_stream",
]


def _audio_columns(dataset: Any) -> dict[str, Any]:
    cls = type(dataset)
    if not (cls.__module__.startswith("datasets.") and cls.__name__ == "Dataset"):
        return {}
    features = getattr(dataset, "features", None) or {}
    return {
        name: feature
        for name, feature in features.items()
        if type(feature).__name__ == "Audio" and getattr(feature, "decode", False)
    }


def hugging_face_audio(dataset: Any) -> Any:
    """``dataset`` itself, or, for a ``datasets.Dataset`` with decoding ``Audio`` columns, a
    view of it that decodes them here (see NOTE [Hugging Face Audio])."""
    columns = _audio_columns(dataset)
    return HuggingFaceAudio(dataset, columns) if columns else dataset


class HuggingFaceAudio:
    """A ``datasets.Dataset`` whose ``Audio`` columns this package decodes."""

    def __init__(self, dataset: Any, columns: dict[str, Any]) -> None:
        from datasets import Audio

        raw = dataset
        for name in columns:
            raw = raw.cast_column(name, Audio(decode=False))
        self.raw = raw
        self.columns = {
            name: (feature.sampling_rate, getattr(feature, "num_channels", None))
            for name, feature in columns.items()
        }

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: int) -> Any:
        return self._decode(self.raw[index])

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        return [self._decode(row) for row in self.raw.__getitems__([int(i) for i in indices])]

    def _decode(self, row: Any) -> Any:
        row = dict(row)
        for name, (rate, channels) in self.columns.items():
            if row.get(name) is not None:
                row[name] = decode_audio_value(row[name], rate, channels)
        return row


def decode_audio_value(
    value: Any, sampling_rate: int | None = None, num_channels: int | None = None
) -> dict[str, Any]:
    """One undecoded ``Audio`` value (``{"bytes": ..., "path": ...}``, or a path) as
    ``{"array", "sampling_rate", "path"}`` (see NOTE [Hugging Face Audio])."""
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    path = value.get("path")
    data = value.get("bytes")
    if data is not None:
        import soundfile

        try:
            wave, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as error:
            raise ValueError(
                f"cannot decode the audio bytes of {path or 'a row'}: {error}"
            ) from error
        wave = wave.T
    elif path:
        wave, rate = load_audio(str(path), mono=False)
    else:
        raise ValueError(f"an Audio value without bytes or path: {value!r:.100}")
    if wave.shape[0] == 1 or num_channels == 1:
        wave = wave.mean(axis=0)
    if sampling_rate is not None and int(sampling_rate) != int(rate):
        wave = resample(wave, int(rate), int(sampling_rate))
        rate = int(sampling_rate)
    return {
        "array": np.ascontiguousarray(wave, dtype=np.float32),
        "sampling_rate": int(rate),
        "path": path,
    }


def is_hugging_face_stream(dataset: Any) -> bool:
    """A ``datasets.IterableDataset`` (recognized by name: ``datasets`` is never imported for it)."""
    cls = type(dataset)
    return cls.__name__ == "IterableDataset" and cls.__module__.startswith("datasets.")


class HuggingFaceAdapter:
    """The loader's adapter for Hugging Face ``datasets`` (NOTE [dataset adapters])."""

    def prepare(self, dataset: Any) -> Any:
        """NOTE [Hugging Face Audio]: decoding ``Audio`` columns read by this package."""
        return hugging_face_audio(dataset)

    def split(self, dataset: Any, index: int, count: int) -> Any | None:
        """NOTE [Hugging Face streams]: share ``index`` of ``count`` of a stream (None for
        anything else)."""
        if not is_hugging_face_stream(dataset):
            return None
        from datasets.distributed import split_dataset_by_node

        return split_dataset_by_node(dataset, rank=index, world_size=count)


register_adapter("datasets", HuggingFaceAdapter())
