"""Audio features in numpy (they run in DataLoader workers; no MLX import).

The mel filters and STFT follow librosa / Hugging Face conventions (Slaney or HTK mel scale,
centred frames with reflect padding) so features match what pretrained models saw. The same
log-mel on the accelerator, for ``mlx_transforms``: :class:`mlx_audio.data.audio.features_mlx.LogMel`.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "pcm_to_float",
    "stft",
    "spectrogram",
    "log_mel_spectrogram",
]


# Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _check_scale(mel_scale: str) -> bool:
    """True for HTK, False for Slaney; a ValueError for anything else."""
    if mel_scale not in ("slaney", "htk"):
        raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {mel_scale!r}")
    return mel_scale == "htk"


def hz_to_mel(hz: npt.ArrayLike, mel_scale: str = "slaney") -> npt.NDArray[np.float64]:
    """Frequency in Hz -> mels (``"slaney"``: linear below 1 kHz, log above; or ``"htk"``)."""
    hz = np.asarray(hz, dtype=np.float64)
    if _check_scale(mel_scale):
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    logarithmic = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, logarithmic, hz / _F_SP)


def mel_to_hz(mels: npt.ArrayLike, mel_scale: str = "slaney") -> npt.NDArray[np.float64]:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    if _check_scale(mel_scale):
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    return np.where(
        mels >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL)), _F_SP * mels
    )


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int = 64,
    f_min: float = 0.0,
    f_max: float | None = None,
    norm: str | None = "slaney",
    mel_scale: str = "slaney",
) -> npt.NDArray[np.float32]:
    """Triangular mel filters, shape ``(n_fft // 2 + 1, n_mels)`` (multiply a power spectrum).

    ``norm="slaney"`` scales each filter to unit area (constant energy per band), as librosa.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}, sample_rate={sample_rate}"
        )
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = np.linspace(hz_to_mel(f_min, mel_scale), hz_to_mel(f_max, mel_scale), n_mels + 2)
    hz_points = mel_to_hz(mel_points, mel_scale)
    widths = np.diff(hz_points)
    slopes = hz_points[:, None] - fft_freqs[None, :]
    down = -slopes[:-2] / widths[:-1, None]
    up = slopes[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        filters *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    return cast("npt.NDArray[np.float32]", filters.T.astype(np.float32))


def _window(name: str, length: int) -> npt.NDArray[np.float64]:
    if name == "hann":  # periodic, as torch.hann_window and librosa (float64; cast by the caller)
        return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    if name in ("ones", "rect", "boxcar"):
        return np.ones(length)
    raise ValueError(f"window must be 'hann' or 'ones', got {name!r}")


def pcm_to_float(wave: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Integer PCM (int16, int32, uint8, ...) as float32 in [-1, 1) -- what a float read of the
    file gives (int16 / 32768; unsigned 8-bit centred first); float arrays unchanged.

    NOTE [integer PCM]: a worker may ship int16 PCM (half the bytes of float32 through shared
    memory and to the accelerator); the features come out as from the float waveform."""
    if wave.dtype.kind not in "iu":
        return wave
    half, offset = pcm_range(wave.dtype.itemsize, wave.dtype.kind == "u")
    scaled: npt.NDArray[np.float32] = (wave.astype(np.float32) - offset) * np.float32(1 / half)
    return scaled


def pcm_range(itemsize: int, unsigned: bool) -> tuple[int, int]:
    """``(half, offset)`` of integer PCM with ``itemsize`` bytes: a sample ``x`` stands for
    ``(x - offset) / half`` in [-1, 1) (int16: 32768, 0; uint8: 128, 128). NOTE [integer PCM]."""
    half = 2 ** (8 * itemsize - 1)
    return half, half if unsigned else 0


def stft(
    wave: npt.NDArray[Any],
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
) -> npt.NDArray[np.complexfloating[Any, Any]]:
    """Short-time Fourier transform along the last axis: ``(..., frames, n_fft // 2 + 1)``.
    Integer PCM is scaled to [-1, 1) first (:func:`pcm_to_float`)."""
    win_length = n_fft if win_length is None else win_length
    if not 0 < win_length <= n_fft or hop_length <= 0:
        raise ValueError(
            f"need 0 < win_length <= n_fft and hop_length > 0, got {win_length}, {n_fft}, {hop_length}"
        )
    wave = pcm_to_float(np.asarray(wave))
    wave = wave if wave.dtype == np.float64 else wave.astype(np.float32)  # float64 in, float64 math
    if center:
        pad = [(0, 0)] * (wave.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        wave = np.pad(wave, pad, mode=pad_mode)  # type: ignore[call-overload]
    if wave.shape[-1] < n_fft:
        raise ValueError(f"signal of {wave.shape[-1]} samples is shorter than n_fft={n_fft}")
    win = np.zeros(n_fft, dtype=wave.dtype)
    start = (n_fft - win_length) // 2
    win[start : start + win_length] = _window(window, win_length)
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft, axis=-1)[..., ::hop_length, :]
    return np.fft.rfft(frames * win, n=n_fft, axis=-1)


def spectrogram(
    wave: npt.NDArray[Any], n_fft: int, hop_length: int, power: float = 2.0, **stft_args: Any
) -> npt.NDArray[np.floating[Any]]:
    """|STFT| ** power, ``(..., frames, n_fft // 2 + 1)``, float32."""
    spec = np.abs(stft(wave, n_fft, hop_length, **stft_args)) ** power
    return cast(
        "npt.NDArray[np.floating[Any]]",
        spec if spec.dtype == np.float64 else spec.astype(np.float32),
    )


def log_mel_spectrogram(
    wave: npt.NDArray[Any],
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 480,
    n_mels: int = 64,
    f_min: float = 0.0,
    f_max: float | None = None,
    top_db: float | None = None,
    filters: npt.NDArray[np.floating[Any]] | None = None,
    channels_last: bool = False,
    **stft_args: Any,
) -> npt.NDArray[np.float32]:
    """Log-mel power spectrogram in dB, ``(..., n_mels, frames)``, or ``(..., frames, n_mels)``
    with ``channels_last=True`` (what MLX convolutions take: ``nn.Conv1d`` is NLC, and
    ``[..., None]`` makes it NHWC for ``nn.Conv2d``).

    Pass precomputed ``filters`` (from :func:`mel_filterbank`) to skip rebuilding them per call.
    ``top_db`` clips values more than that many dB below the maximum.
    """
    if filters is None:
        filters = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
    power = spectrogram(wave, n_fft, hop_length, **stft_args)
    mel = np.maximum(power @ filters.astype(power.dtype), 1e-10)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return cast(
        "npt.NDArray[np.float32]",
        (db if channels_last else np.swapaxes(db, -1, -2)).astype(np.float32),
    )
