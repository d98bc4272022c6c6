"""Waveform augmentation in numpy, per sample, in the DataLoader workers (audiomentations' names).

Each transform is a ``cpu_transform`` (``DataLoader(cpu_transforms=[...])``) or a dataset's
``transform=``: ``t(sample, rng=None)``. ``sample`` is a waveform ``(samples,)`` /
``(channels, samples)``, or a tuple/dict holding one (``key`` picks it, as ``RandomCrop``).

NOTE [seeded augmentation]: every random draw comes from the per-sample generator the loader
passes as ``rng`` (seeded by loader seed, epoch and index; :func:`mlx_audio.data.sample_rng`
inside a dataset's ``__getitem__``), never from global state: a sample is augmented the same
with 0 or N workers and after a mid-epoch resume. Each transform first draws whether it applies
(``rng.random() < p``), then its parameters -- :class:`Compose` and :class:`OneOf` likewise.

Argument names and defaults follow audiomentations (``Gain``, ``Shift``, ``AddBackgroundNoise``,
``ApplyImpulseResponse``, ``Compose``, ``OneOf``); speed perturbation follows torchaudio's
``SpeedPerturbation`` (resampling: tempo and pitch change together, as Kaldi's recipes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._loader.fetch import sample_rng
from ..padding import _audio_of
from .datasets import AUDIO_EXTENSIONS
from .io import load_audio, resample

__all__ = [
    "AudioTransform",
    "Compose",
    "OneOf",
    "Gain",
    "Shift",
    "SpeedPerturbation",
    "AddBackgroundNoise",
    "ApplyImpulseResponse",
]


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _check_range(name: str, low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"min_{name} must be <= max_{name}, got {low!r} > {high!r}")


class AudioTransform:
    """Base: applies with probability ``p`` to the waveform picked by ``key``."""

    def __init__(self, p: float = 0.5, key: int | str | None = None) -> None:
        self.p = _check_p(p)
        self.key = key

    def __call__(self, sample: Any, rng: np.random.Generator | None = None) -> Any:
        generator = sample_rng() if rng is None else rng
        if generator.random() >= self.p:
            return sample
        wave, put = _audio_of(sample, self.key)
        return put(self.apply(np.asarray(wave, dtype=np.float32), generator))

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class Compose:
    """Apply ``transforms`` in order (shuffled per sample when ``shuffle``), the whole with
    probability ``p`` (audiomentations' ``Compose``)."""

    def __init__(self, transforms: Sequence[Any], p: float = 1.0, shuffle: bool = False) -> None:
        self.transforms = list(transforms)
        self.p = _check_p(p)
        self.shuffle = shuffle

    def __call__(self, sample: Any, rng: np.random.Generator | None = None) -> Any:
        generator = sample_rng() if rng is None else rng
        if generator.random() >= self.p:
            return sample
        order = list(range(len(self.transforms)))
        if self.shuffle:
            order = [int(i) for i in generator.permutation(len(order))]
        for i in order:
            sample = self.transforms[i](sample, rng=generator)
        return sample


class OneOf:
    """Apply one of ``transforms``, picked with probabilities ``weights`` (uniform if None), with
    probability ``p`` (audiomentations' ``OneOf``; the picked transform's own ``p`` still
    applies)."""

    def __init__(
        self, transforms: Sequence[Any], p: float = 1.0, weights: Sequence[float] | None = None
    ) -> None:
        if not transforms:
            raise ValueError("OneOf needs at least one transform")
        self.transforms = list(transforms)
        self.p = _check_p(p)
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(self.transforms),) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(
                    f"weights must be {len(self.transforms)} non-negative numbers with a "
                    f"positive sum, got {list(weights)!r}"
                )
            self.weights: np.ndarray | None = w / w.sum()
        else:
            self.weights = None

    def __call__(self, sample: Any, rng: np.random.Generator | None = None) -> Any:
        generator = sample_rng() if rng is None else rng
        if generator.random() >= self.p:
            return sample
        index = int(generator.choice(len(self.transforms), p=self.weights))
        return self.transforms[index](sample, rng=generator)


class Gain(AudioTransform):
    """Multiply by a gain drawn uniformly in ``[min_gain_db, max_gain_db]`` decibels."""

    def __init__(
        self,
        min_gain_db: float = -12.0,
        max_gain_db: float = 12.0,
        p: float = 0.5,
        key: int | str | None = None,
    ) -> None:
        super().__init__(p, key)
        _check_range("gain_db", min_gain_db, max_gain_db)
        self.min_gain_db, self.max_gain_db = float(min_gain_db), float(max_gain_db)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        db = rng.uniform(self.min_gain_db, self.max_gain_db)
        out: np.ndarray = wave * np.float32(10.0 ** (db / 20.0))
        return out.astype(np.float32)


class Shift(AudioTransform):
    """Shift along time by an amount drawn uniformly in ``[min_shift, max_shift]``:
    ``shift_unit`` ``"fraction"`` (of the length), ``"samples"`` (integers) or ``"seconds"``
    (needs ``sample_rate``). ``rollover`` wraps what falls off the end around, else the gap is
    zeros. (audiomentations' ``fade_duration`` is not offered: no fade is applied.)"""

    def __init__(
        self,
        min_shift: float = -0.5,
        max_shift: float = 0.5,
        shift_unit: str = "fraction",
        rollover: bool = True,
        p: float = 0.5,
        sample_rate: int | None = None,
        key: int | str | None = None,
    ) -> None:
        super().__init__(p, key)
        if shift_unit not in ("fraction", "samples", "seconds"):
            raise ValueError(
                f"shift_unit must be 'fraction', 'samples' or 'seconds', got {shift_unit!r}"
            )
        if shift_unit == "seconds" and not sample_rate:
            raise ValueError("Shift(shift_unit='seconds') needs sample_rate")
        _check_range("shift", min_shift, max_shift)
        if shift_unit == "fraction" and not -1 <= min_shift <= max_shift <= 1:
            raise ValueError(
                f"with shift_unit='fraction' the shifts must be in [-1, 1], got {min_shift!r}, "
                f"{max_shift!r}"
            )
        self.min_shift, self.max_shift = min_shift, max_shift
        self.shift_unit, self.rollover, self.sample_rate = shift_unit, rollover, sample_rate

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = wave.shape[-1]
        if self.shift_unit == "samples":
            shift = int(rng.integers(int(self.min_shift), int(self.max_shift) + 1))
        else:
            amount = rng.uniform(self.min_shift, self.max_shift)
            scale = size if self.shift_unit == "fraction" else self.sample_rate or 0
            shift = int(round(amount * scale))
        if self.rollover:
            return np.roll(wave, shift, axis=-1)
        out = np.zeros_like(wave)
        if 0 < shift < size:
            out[..., shift:] = wave[..., : size - shift]
        elif -size < shift < 0:
            out[..., :shift] = wave[..., -shift:]
        elif shift == 0:
            out[...] = wave
        return out


class SpeedPerturbation(AudioTransform):
    """Play at a speed picked uniformly from ``factors`` by resampling (torchaudio's
    ``SpeedPerturbation(orig_freq, factors)``): ``orig_freq * factor`` Hz read as ``orig_freq``,
    so a factor of 1.1 is 10 % faster and higher, and the length becomes ``ceil(n / factor)``.
    Uses soxr (the ``audio`` extra)."""

    def __init__(
        self,
        orig_freq: int,
        factors: Sequence[float] = (0.9, 1.0, 1.1),
        p: float = 1.0,
        key: int | str | None = None,
    ) -> None:
        super().__init__(p, key)
        if not factors or any(not float(f) > 0 for f in factors):
            raise ValueError(f"factors must be positive numbers, got {list(factors)!r}")
        if isinstance(orig_freq, bool) or not isinstance(orig_freq, int) or orig_freq <= 0:
            raise ValueError(f"orig_freq must be a positive int (Hz), got {orig_freq!r}")
        self.orig_freq, self.factors = orig_freq, [float(f) for f in factors]

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = self.factors[int(rng.integers(len(self.factors)))]
        source = int(factor * self.orig_freq)
        if source == self.orig_freq:
            return wave
        return resample(wave, source, self.orig_freq).astype(np.float32)


def _audio_files(path: str | os.PathLike[str], what: str) -> list[str]:
    root = os.fspath(path)
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{what}: {root} is neither an audio file nor a folder")
    found = [
        os.path.join(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith(".")
    ]
    if not found:
        raise FileNotFoundError(
            f"{what}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}"
        )
    return sorted(found)


class _FromFiles(AudioTransform):
    """Picks one of a folder's files per sample; decoded files are cached per process."""

    _CACHE_ITEMS = 64

    def __init__(
        self, path: str | os.PathLike[str], sample_rate: int, p: float, key: int | str | None
    ) -> None:
        super().__init__(p, key)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(
                f"sample_rate must be a positive int (the waveforms' rate), got {sample_rate!r}"
            )
        self.paths = _audio_files(path, type(self).__name__)
        self.sample_rate = sample_rate
        self._cache: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:  # sent to spawned workers without the cache
        return {**self.__dict__, "_cache": {}}

    def _pick(self, rng: np.random.Generator) -> np.ndarray:
        path = self.paths[int(rng.integers(len(self.paths)))]
        if path not in self._cache:
            if len(self._cache) >= self._CACHE_ITEMS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = load_audio(path, self.sample_rate, mono=True)[0]
        return self._cache[path]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


class AddBackgroundNoise(_FromFiles):
    """Add a file from ``sounds_path`` (a folder, searched recursively, or one file) at an SNR
    drawn uniformly in ``[min_snr_db, max_snr_db]`` dB: the noise is scaled so that
    ``20 log10(rms(signal) / rms(noise)) == snr``. A noise shorter than the signal is repeated,
    a longer one cropped at a random offset. A silent signal or noise is left as it is."""

    def __init__(
        self,
        sounds_path: str | os.PathLike[str],
        min_snr_db: float = 3.0,
        max_snr_db: float = 30.0,
        p: float = 0.5,
        sample_rate: int = 16000,
        key: int | str | None = None,
    ) -> None:
        _check_range("snr_db", min_snr_db, max_snr_db)
        super().__init__(sounds_path, sample_rate, p, key)
        self.min_snr_db, self.max_snr_db = float(min_snr_db), float(max_snr_db)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = self._pick(rng)
        snr = rng.uniform(self.min_snr_db, self.max_snr_db)
        size = wave.shape[-1]
        if noise.size == 0 or size == 0:
            return wave
        if noise.shape[-1] > size:
            start = int(rng.integers(0, noise.shape[-1] - size + 1))
            noise = noise[start : start + size]
        elif noise.shape[-1] < size:
            noise = np.tile(noise, -(-size // noise.shape[-1]))[:size]
        signal_rms, noise_rms = _rms(wave), _rms(noise)
        if signal_rms == 0.0 or noise_rms == 0.0:
            return wave
        scale = signal_rms / (10.0 ** (snr / 20.0)) / noise_rms
        out: np.ndarray = wave + np.float32(scale) * noise
        return out.astype(np.float32)


class ApplyImpulseResponse(_FromFiles):
    """Convolve with a room impulse response from ``ir_path`` (a folder or one file): the
    reverberant signal ``signal * ir``, cut to the input's length when
    ``leave_length_unchanged`` (else ``n + len(ir) - 1`` samples). As audiomentations, the
    whole convolution is scaled to a peak of 0.5 (before the cut), whatever the input's level."""

    def __init__(
        self,
        ir_path: str | os.PathLike[str],
        p: float = 0.5,
        leave_length_unchanged: bool = True,
        sample_rate: int = 16000,
        key: int | str | None = None,
    ) -> None:
        super().__init__(ir_path, sample_rate, p, key)
        self.leave_length_unchanged = leave_length_unchanged

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ir = self._pick(rng)
        size = wave.shape[-1]
        if ir.size == 0 or size == 0:
            return wave
        full = size + ir.shape[-1] - 1
        n = 1 << (full - 1).bit_length()
        out = np.fft.irfft(np.fft.rfft(wave, n, axis=-1) * np.fft.rfft(ir, n), n, axis=-1)
        out = out[..., :full]
        peak = float(np.max(np.abs(out)))
        if peak > 0.0:
            out = out * (0.5 / peak)
        return out[..., : size if self.leave_length_unchanged else full].astype(np.float32)
