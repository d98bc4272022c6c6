"""ClapFeatureExtractor (numpy): waveforms -> log-mel inputs, matching transformers' extractor.

48 kHz, 1024-point FFT, hop 480, 64 mel bins 0-14 kHz, 10 s clips. Shorter clips are padded
(``repeatpad``: repeated, then zero-padded); longer ones are randomly cropped (``rand_trunc``,
Slaney mels) or, with ``fusion`` (HTK mels), summarized as a shrunk full mel plus three random
crops with ``is_longer`` set. Output is our layout, ``(B, C, n_mels, frames)`` — transformers'
``input_features`` transposed — ready for :class:`CLAP`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from mlx_audio.data.audio import log_mel_spectrogram, mel_filterbank


def _shrink_time(mel: np.ndarray, frames: int) -> np.ndarray:
    """torch's bilinear interpolate (align_corners=False) along time, to ``frames`` rows."""
    n = mel.shape[0]
    # torch: a float32 scale and a fused multiply-add (one rounding to float32) for the source index
    scale = np.float64(np.float32(n / frames))
    src = np.maximum((scale * (np.arange(frames) + 0.5) - 0.5).astype(np.float32), np.float32(0))
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    weight = (src - low.astype(np.float32))[:, None]
    mel = mel.astype(np.float32)
    return mel[low] * (np.float32(1) - weight) + mel[high] * weight


class ClapFeatureExtractor:
    """Call with one waveform or a list of them (mono, at ``sampling_rate``)."""

    def __init__(
        self,
        feature_size: int = 64,
        sampling_rate: int = 48_000,
        hop_length: int = 480,
        max_length_s: int = 10,
        fft_window_size: int = 1024,
        frequency_min: float = 0.0,
        frequency_max: float = 14_000.0,
        truncation: str = "fusion",
        padding: str = "repeatpad",
        **_: Any,
    ) -> None:
        if truncation not in ("fusion", "rand_trunc"):
            raise ValueError(f"truncation must be 'fusion' or 'rand_trunc', got {truncation!r}")
        if padding not in ("repeatpad", "repeat", "pad"):
            raise ValueError(f"padding must be 'repeatpad', 'repeat' or 'pad', got {padding!r}")
        self.feature_size, self.sampling_rate, self.hop_length = (
            feature_size,
            sampling_rate,
            hop_length,
        )
        self.fft_window_size, self.max_length_s = fft_window_size, max_length_s
        self.nb_max_samples = max_length_s * sampling_rate
        self.truncation, self.padding = truncation, padding
        args = (sampling_rate, fft_window_size, feature_size, frequency_min, frequency_max)
        self.mel_filters = mel_filterbank(*args, norm=None, mel_scale="htk")  # fusion
        self.mel_filters_slaney = mel_filterbank(*args, norm="slaney", mel_scale="slaney")

    @classmethod
    def from_pretrained(cls, folder: str) -> ClapFeatureExtractor:
        """Read ``preprocessor_config.json`` from a Hugging Face model folder."""
        with open(os.path.join(folder, "preprocessor_config.json")) as f:
            return cls(**json.load(f))

    def _mel(self, wave: np.ndarray, filters: np.ndarray) -> np.ndarray:
        """(frames, n_mels) dB log-mel, as HF's ``_np_extract_fbank_features``."""
        return log_mel_spectrogram(
            wave.astype(np.float64),
            self.sampling_rate,
            self.fft_window_size,
            self.hop_length,
            filters=filters,
        ).T

    def _one(
        self,
        wave: np.ndarray,
        max_length: int,
        truncation: str,
        padding: str,
        rng: np.random.RandomState,
    ) -> tuple[np.ndarray, bool]:
        if wave.ndim != 1:
            raise ValueError(f"waveforms must be mono 1-D arrays, got shape {wave.shape}")
        if len(wave) == 0:
            raise ValueError("cannot extract features from an empty waveform")
        if len(wave) > max_length:
            if truncation == "rand_trunc":
                start = rng.randint(0, len(wave) - max_length + 1)
                return self._mel(wave[start : start + max_length], self.mel_filters_slaney)[
                    None
                ], True
            mel = self._mel(wave, self.mel_filters)
            chunk, total = max_length // self.hop_length + 1, mel.shape[0]
            if chunk == total:
                return np.stack([mel] * 4), False
            ranges = np.array_split(list(range(0, total - chunk + 1)), 3)
            ranges = [r if len(r) else [0] for r in ranges]
            starts = [rng.choice(r) for r in ranges]
            crops = [mel[s : s + chunk] for s in starts]
            return np.stack([_shrink_time(mel, chunk), *crops]), True
        if len(wave) < max_length:
            if padding == "repeat":
                wave = np.tile(wave, int(max_length / len(wave)) + 1)[:max_length]
            elif padding == "repeatpad":
                wave = np.tile(wave, int(max_length / len(wave)))
            wave = np.pad(wave, (0, max_length - len(wave)))
        if truncation == "fusion":
            return np.stack([self._mel(wave, self.mel_filters)] * 4), False
        return self._mel(wave, self.mel_filters_slaney)[None], False

    def __call__(
        self,
        audio: np.ndarray | list[np.ndarray],
        sampling_rate: int | None = None,
        truncation: str | None = None,
        padding: str | None = None,
        max_length: int | None = None,
        random_state: np.random.RandomState | int | None = None,
    ) -> dict[str, np.ndarray]:
        """``{"input_features": (B, C, n_mels, frames) float32, "is_longer": (B, 1) bool}``.

        ``random_state`` (a ``RandomState`` or a seed) drives crops; with none, numpy's global
        RNG is used, as transformers does, so the same seed gives the same crops there and here.
        """
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(
                f"expected audio at {self.sampling_rate} Hz, got {sampling_rate} Hz; resample it first (mlx_audio.data.audio.resample)"
            )
        truncation, padding = truncation or self.truncation, padding or self.padding
        rng = (
            random_state
            if isinstance(random_state, np.random.RandomState)
            else (
                np.random.RandomState(random_state)
                if random_state is not None
                else np.random.mtrand._rand
            )
        )
        waves = (
            [np.asarray(a, dtype=np.float64) for a in audio]
            if isinstance(audio, (list, tuple))
            or (isinstance(audio, np.ndarray) and audio.ndim == 2)
            else [np.asarray(audio, dtype=np.float64)]
        )
        mels, longer = zip(
            *(
                self._one(w, max_length or self.nb_max_samples, truncation, padding, rng)
                for w in waves
            )
        )
        longer = list(longer)
        if truncation == "fusion" and not any(longer):
            longer[rng.randint(0, len(mels))] = True
        features = np.stack(mels).astype(np.float32).transpose(0, 1, 3, 2)
        return {
            "input_features": np.ascontiguousarray(features),
            "is_longer": np.array(longer, dtype=bool)[:, None],
        }
