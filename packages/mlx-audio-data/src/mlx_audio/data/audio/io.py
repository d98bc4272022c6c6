"""Audio I/O in numpy (runs in DataLoader workers): decode a window of a file, resample.

Needs the ``audio`` extra (``pip install "mlx-audio-data[audio]"``: soundfile for decoding,
soxr for resampling); ``[ffmpeg]`` adds PyAV for m4a/aac. The feature functions live in
:mod:`mlx_audio.data.audio.features` (both are re-exported by :mod:`mlx_audio.data.audio`).
"""

from __future__ import annotations

import os
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..support import require
from . import features

__all__ = ["AudioDecodeError", "audio_info", "load_audio", "resample"]


_INSTALL = "pip install 'mlx-audio-data[audio]'"


class AudioDecodeError(RuntimeError):
    """A file that could not be decoded; the message names the file and what to do."""


# Containers libsndfile cannot read; an optional decoder (PyAV) reads them.
_FFMPEG_ONLY = (".m4a", ".aac", ".mp4", ".wma", ".webm", ".mka", ".amr")


def audio_info(path: str) -> tuple[int, int, int]:
    """``(frames, sample_rate, channels)`` from the file's header, without decoding."""
    soundfile = require("soundfile", f"audio_info needs soundfile: {_INSTALL}")
    try:
        info = soundfile.info(str(path))
    except Exception as error:
        if str(path).lower().endswith(_FFMPEG_ONLY):
            return _av_info(str(path))
        raise AudioDecodeError(f"cannot read {path}: {error}") from error
    return int(info.frames), int(info.samplerate), int(info.channels)


def load_audio(
    path: str,
    sample_rate: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` (or the window ``[offset, offset + duration)`` seconds of it) to
    ``(channels, samples)``, or ``(samples,)`` when ``mono`` (channels averaged).

    Only the requested window is read: the decoder seeks to ``offset`` and reads ``duration``
    seconds, so a 3-second crop of an hour-long file costs 3 seconds of decoding. Any format
    libsndfile reads (wav, flac, ogg/vorbis, opus, mp3, aiff, ...); m4a/aac and other ffmpeg
    containers need ``pip install "mlx-audio-data[ffmpeg]"`` (PyAV). Resamples to
    ``sample_rate`` with soxr when given. Returns ``(waveform, sample_rate)``; a window past the
    end of the file returns what is there (possibly zero samples). ``dtype``: float32 in [-1, 1)
    by default; an integer dtype gives PCM (``np.int16``: the file's samples of a 16-bit file,
    half the bytes to move; ``LogMel`` and the numpy features scale it back).
    """
    if offset < 0 or (duration is not None and duration < 0):
        raise ValueError(
            f"offset and duration must be >= 0 seconds, got offset={offset}, duration={duration}"
        )
    if sample_rate is not None and (isinstance(sample_rate, bool) or int(sample_rate) <= 0):
        raise ValueError(f"sample_rate must be a positive int or None, got {sample_rate!r}")
    path = str(path)
    soundfile = require("soundfile", f"load_audio needs soundfile: {_INSTALL}")
    try:
        with soundfile.SoundFile(path) as f:
            rate = int(f.samplerate)
            start = int(round(offset * rate))
            frames = -1 if duration is None else int(round(duration * rate))
            if start:
                f.seek(min(start, f.frames) if f.frames > 0 else start)
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except Exception as error:
        if isinstance(error, FileNotFoundError) or not os.path.exists(path):
            raise FileNotFoundError(f"load_audio: no such file: {path}") from error
        if path.lower().endswith(_FFMPEG_ONLY):
            data, rate = _av_read(path, offset, duration)
        else:
            raise AudioDecodeError(f"load_audio cannot decode {path}: {error}") from error
    wave = data.T  # (channels, samples)
    if mono:
        wave = wave.mean(axis=0)
    if sample_rate is not None and sample_rate != rate:
        wave = resample(wave, rate, int(sample_rate))
        rate = int(sample_rate)
    return np.ascontiguousarray(_from_float(wave, np.dtype(dtype))), int(rate)


def _from_float(wave: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``wave`` in [-1, 1) as ``dtype``: integer dtypes get PCM (int16: x 32768, rounded and
    clipped; unsigned centred), the inverse of ``features.pcm_to_float`` (NOTE [integer PCM])."""
    if dtype.kind not in "iu":
        return wave.astype(dtype, copy=False)
    half, offset = features.pcm_range(dtype.itemsize, dtype.kind == "u")
    return (np.clip(np.round(wave.astype(np.float64) * half), -half, half - 1) + offset).astype(
        dtype
    )


def _import_av(path: str) -> Any:
    try:
        import av
    except ImportError:
        raise AudioDecodeError(
            f"load_audio cannot decode {path}: libsndfile does not read this container; "
            "install the decoder extra: pip install 'mlx-audio-data[ffmpeg]' (PyAV)"
        ) from None
    return av


def _av_info(path: str) -> tuple[int, int, int]:
    data, rate = _av_read(path, 0.0, None)
    return data.shape[0], rate, data.shape[1]


def _av_read(path: str, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    """``(samples, channels)`` float32 of a window, decoded with PyAV (ffmpeg): seek to the
    frame at or before ``offset``, then trim to the exact sample."""
    av = _import_av(path)
    try:
        with av.open(path) as container:
            stream = container.streams.audio[0]
            rate = int(stream.rate)
            if offset:
                container.seek(int(offset / stream.time_base), stream=stream, backward=True)
            chunks = []
            first_time = None
            wanted = None if duration is None else int(round((offset + duration) * rate))
            for frame in container.decode(stream):
                array = frame.to_ndarray()
                channels = len(frame.layout.channels)
                array = (
                    array.reshape(channels, -1)
                    if frame.format.is_planar
                    else array.reshape(-1, channels).T
                )
                if first_time is None:
                    first_time = float(frame.time or 0.0)
                chunks.append(
                    features.pcm_to_float(array).astype(np.float32, copy=False)
                )  # as libsndfile
                decoded = int(round(first_time * rate)) + sum(c.shape[1] for c in chunks)
                if wanted is not None and decoded >= wanted:
                    break
    except AudioDecodeError:
        raise
    except Exception as error:
        raise AudioDecodeError(f"load_audio cannot decode {path} with PyAV: {error}") from error
    data = np.concatenate(chunks, axis=1).T if chunks else np.zeros((0, 1), np.float32)
    skip = max(0, int(round((offset - (first_time or 0.0)) * rate)))
    stop = None if duration is None else skip + int(round(duration * rate))
    return data[skip:stop], rate


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """High-quality resampling (soxr) along the last axis."""
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return wave
    soxr = require("soxr", f"resample needs soxr: {_INSTALL}")
    if wave.ndim == 1:
        return cast(
            "npt.NDArray[np.float32]",
            soxr.resample(wave, orig_rate, target_rate).astype(np.float32),
        )
    return np.stack([soxr.resample(ch, orig_rate, target_rate) for ch in wave]).astype(np.float32)
