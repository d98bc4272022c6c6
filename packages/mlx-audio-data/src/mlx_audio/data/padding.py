"""Variable-length audio: pad a batch to its longest sample (with lengths and a mask), or crop
and pad each sample to one length. All numpy: these run in the DataLoader's workers.

``PadCollate`` writes the padded batch straight into the worker's shared-memory slot (like
the default collate), so padding costs no extra copy.
"""

from __future__ import annotations

import collections.abc as abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from .collate import Allocator, CollateError, collate_into

__all__ = ["PadCollate", "pad_collate", "RandomCrop", "PadOrCrop"]


class PadCollate:
    """``collate_fn`` for samples whose arrays differ in length along ``axis``.

    Every array of at least one dimension in a sample is padded with ``pad_value`` to the
    batch's longest (rounded up to ``pad_to_multiple_of``, or to the smallest of
    ``pad_to_lengths`` that fits: a bounded set of shapes, so a compiled step traces a bounded
    number of times); everything else is collated as by ``default_collate``. Restrict padding
    to some fields with ``keys`` (dict keys or tuple positions).

    Output: the collated sample structure plus the lengths (int32, ``(batch,)``) of each padded
    field, and with ``return_mask=True`` a bool mask ``(batch, padded length)``, True on data:

    - an array sample: ``(padded, lengths)`` or ``(padded, lengths, mask)``;
    - a tuple/list sample: its collated fields, then lengths (and masks) of the padded fields
      in order, e.g. ``(wave, label)`` -> ``(waves, labels, lengths)``;
    - a dict sample: its keys plus ``"<key>_lengths"`` (and ``"<key>_mask"``) per padded key.
    """

    def __init__(
        self,
        pad_value: float = 0.0,
        pad_to_multiple_of: int | None = None,
        axis: int = -1,
        return_mask: bool = False,
        keys: Sequence[int | str] | None = None,
        pad_to_lengths: Sequence[int] | None = None,
    ) -> None:
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool)
            or not isinstance(pad_to_multiple_of, int)
            or pad_to_multiple_of <= 0
        ):
            raise ValueError(
                f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}"
            )
        if pad_to_lengths is not None:
            pad_to_lengths = sorted(int(n) for n in pad_to_lengths)
            if not pad_to_lengths or pad_to_lengths[0] <= 0:
                raise ValueError(f"pad_to_lengths must be positive lengths, got {pad_to_lengths!r}")
        self.pad_value = pad_value
        self.pad_to_multiple_of = pad_to_multiple_of
        self.axis = axis
        self.return_mask = return_mask
        self.keys = None if keys is None else list(keys)
        self.pad_to_lengths = pad_to_lengths

    def __repr__(self) -> str:
        return (
            f"PadCollate(pad_value={self.pad_value}, pad_to_multiple_of={self.pad_to_multiple_of}, "
            f"axis={self.axis}, return_mask={self.return_mask}, keys={self.keys}, "
            f"pad_to_lengths={self.pad_to_lengths})"
        )

    def __call__(self, batch: list[Any]) -> Any:
        return self.collate_into(batch, None)

    # -- the DataLoader's workers call this with a shared-memory allocator --------------------
    def collate_into(self, batch: list[Any], alloc: Allocator | None) -> Any:
        if not batch:
            raise CollateError("cannot collate an empty batch ({first})")
        elem = batch[0]
        if isinstance(elem, np.ndarray) or _is_array(elem):
            padded, lengths = self._pad([np.asarray(s) for s in batch], alloc, "")
            return (
                (padded, lengths, self._mask(lengths, padded, alloc))
                if self.return_mask
                else (padded, lengths)
            )
        if isinstance(elem, abc.Mapping):
            out: dict[str, Any] = {}
            for key in elem:
                column = [s[key] for s in batch]
                if self._pads(key, column[0]):
                    padded, lengths = self._pad(
                        [np.asarray(v) for v in column], alloc, f"[{key!r}]"
                    )
                    out[key] = padded
                    out[f"{key}_lengths"] = lengths
                    if self.return_mask:
                        out[f"{key}_mask"] = self._mask(lengths, padded, alloc)
                else:
                    out[key] = collate_into(column, alloc, f"[{key!r}]")
            return out
        if isinstance(elem, (tuple, list)):
            fields: list[Any] = []
            extras: list[Any] = []
            for position, values in enumerate(zip(*batch)):
                if self._pads(position, values[0]):
                    padded, lengths = self._pad(
                        [np.asarray(v) for v in values], alloc, f"[{position}]"
                    )
                    fields.append(padded)
                    extras.append(lengths)
                    if self.return_mask:
                        extras.append(self._mask(lengths, padded, alloc))
                else:
                    fields.append(collate_into(list(values), alloc, f"[{position}]"))
            return (*fields, *extras)
        raise CollateError(
            f"PadCollate pads arrays, or tuples/lists/dicts holding them; got {type(elem).__name__} ({{first}})"
        )

    def _pads(self, key: int | str, value: Any) -> bool:
        if self.keys is not None:
            return key in self.keys
        return _is_array(value) and np.ndim(value) >= 1

    def target_length(self, longest: int) -> int:
        """The padded length for a batch whose longest sample has ``longest`` steps."""
        if self.pad_to_lengths is not None:
            fitting = [n for n in self.pad_to_lengths if n >= longest]
            if not fitting:
                raise CollateError(
                    f"a sample of length {longest} is longer than the largest of pad_to_lengths "
                    f"({self.pad_to_lengths[-1]}) ({{first}}); crop samples or add a length"
                )
            longest = fitting[0]
        multiple = self.pad_to_multiple_of
        return longest if multiple is None else -(-longest // multiple) * multiple

    def _pad(
        self, arrays: list[np.ndarray], alloc: Allocator | None, path: str
    ) -> tuple[np.ndarray, np.ndarray]:
        first = arrays[0]
        if first.ndim == 0:
            raise CollateError(
                f"PadCollate cannot pad a 0-d value{' at ' + path if path else ''} ({{first}}); pass keys="
            )
        axis = self.axis % first.ndim
        for position, array in enumerate(arrays):
            other = array.shape[:axis] + array.shape[axis + 1 :]
            if array.ndim != first.ndim or other != first.shape[:axis] + first.shape[axis + 1 :]:
                raise CollateError(
                    f"cannot pad{' ' + path if path else ''}: {{other}} has shape {array.shape} and {{first}} "
                    f"{first.shape}; only axis {self.axis} may differ",
                    positions=(0, position),
                    path=path,
                )
        lengths = np.asarray([a.shape[axis] for a in arrays], dtype=np.int32)
        target = self.target_length(int(lengths.max()))
        shape = (len(arrays), *first.shape[:axis], target, *first.shape[axis + 1 :])
        dtype = np.result_type(*arrays)
        out = alloc(shape, dtype) if alloc is not None else np.empty(shape, dtype)
        for row, (array, length) in enumerate(zip(arrays, lengths)):
            region = out[row]
            index: list[Any] = [slice(None)] * first.ndim
            index[axis] = slice(0, int(length))
            region[tuple(index)] = array
            index[axis] = slice(int(length), None)
            region[tuple(index)] = self.pad_value
        return out, lengths

    def _mask(self, lengths: np.ndarray, padded: np.ndarray, alloc: Allocator | None) -> np.ndarray:
        width = int(padded.shape[1 + self.axis % (padded.ndim - 1)])
        steps = np.arange(width)
        mask = (
            alloc((len(lengths), width), np.bool_)
            if alloc is not None
            else np.empty((len(lengths), width), np.bool_)
        )
        np.less(steps[None, :], lengths[:, None], out=mask)
        return mask


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (
        hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, np.generic)
    )


pad_collate = PadCollate()
"""``PadCollate()`` with its defaults: pad with 0 along the last axis, return lengths."""


def _audio_of(sample: Any, key: int | str | None) -> tuple[np.ndarray, Any]:
    """The array a per-sample transform works on, and a function putting a new one back."""
    if isinstance(sample, abc.Mapping):
        name = "audio" if key is None else key
        return np.asarray(sample[name]), lambda new: {**sample, name: new}
    if isinstance(sample, (tuple, list)):
        position = 0 if key is None else int(key)
        items = list(sample)

        def put(new: np.ndarray) -> Any:
            items[position] = new
            return type(sample)(*items) if hasattr(sample, "_fields") else type(sample)(items)

        return np.asarray(items[position]), put
    return np.asarray(sample), lambda new: new


class _FixedLength:
    def __init__(
        self, length: int, axis: int = -1, pad_value: float = 0.0, key: int | str | None = None
    ) -> None:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length <= 0:
            raise ValueError(f"length must be a positive int (samples or frames), got {length!r}")
        self.length = int(length)
        self.axis = axis
        self.pad_value = pad_value
        self.key = key

    def _fit(self, array: np.ndarray, start: int) -> np.ndarray:
        axis = self.axis % array.ndim
        size = array.shape[axis]
        window = np.take(array, np.arange(start, min(start + self.length, size)), axis=axis)
        if window.shape[axis] < self.length:
            pad = [(0, 0)] * array.ndim
            pad[axis] = (0, self.length - window.shape[axis])
            window = np.pad(window, pad, constant_values=self.pad_value)
        return window


class RandomCrop(_FixedLength):
    """A random window of ``length`` along ``axis`` (padded at the end when shorter, unless
    ``pad=False``: then shorter samples pass as they are, for a ``PadCollate`` that pads each
    batch once): a ``cpu_transform`` drawing from the DataLoader's per-sample generator, so it
    is seeded and resumes exactly. ``key`` picks the array in a tuple (position, default 0) or
    dict (name, default ``"audio"``)."""

    def __init__(
        self,
        length: int,
        axis: int = -1,
        pad_value: float = 0.0,
        key: int | str | None = None,
        pad: bool = True,
    ) -> None:
        super().__init__(length, axis, pad_value, key)
        self.pad = pad

    def __call__(self, sample: Any, rng: np.random.Generator | None = None) -> Any:
        array, put = _audio_of(sample, self.key)
        size = array.shape[self.axis % array.ndim] if array.ndim else 0
        if size <= self.length and not self.pad:
            return sample
        generator = rng if rng is not None else np.random.default_rng()
        start = int(generator.integers(0, size - self.length + 1)) if size > self.length else 0
        return put(self._fit(array, start))


class PadOrCrop(_FixedLength):
    """Exactly ``length`` along ``axis``: longer samples cropped (``align="start"`` keeps the
    beginning, ``"center"`` the middle), shorter ones padded at the end with ``pad_value``."""

    def __init__(
        self,
        length: int,
        axis: int = -1,
        pad_value: float = 0.0,
        key: int | str | None = None,
        align: str = "start",
    ) -> None:
        super().__init__(length, axis, pad_value, key)
        if align not in ("start", "center"):
            raise ValueError(f"align must be 'start' or 'center', got {align!r}")
        self.align = align

    def __call__(self, sample: Any) -> Any:
        array, put = _audio_of(sample, self.key)
        size = array.shape[self.axis % array.ndim] if array.ndim else 0
        start = (size - self.length) // 2 if self.align == "center" and size > self.length else 0
        return put(self._fit(array, start))
