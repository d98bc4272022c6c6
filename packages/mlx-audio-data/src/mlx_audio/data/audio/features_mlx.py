"""Log-mel features computed by MLX, on the accelerator: a batch step for ``mlx_transforms``.

Workers then only decode and crop (cheap numpy), and the STFT, mel projection and dB scaling
run where the model runs, on the whole padded batch at once. Matches
:func:`mlx_audio.data.audio.features.log_mel_spectrogram` within 1e-4 dB (same filters, window,
centring and reflect padding); ``top_db`` is applied per example here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .features import _window, mel_filterbank, pcm_range

__all__ = ["LogMel"]


class LogMel:
    """``LogMel(sample_rate, ...)(batch)``: the batch with its audio replaced by log-mel dB.

    The audio is ``batch`` itself when it is an array ``(batch, samples)``, element ``key``
    (default 0) of a tuple/list, or ``batch[key]`` (default ``"audio"``) of a dict. Output:
    ``(batch, n_mels, frames)``, or ``(batch, frames, n_mels)`` with ``channels_last=True``.
    Integer PCM (int16, ...) is scaled to [-1, 1) first, as a float read of the file would be.
    Padded batches: frames computed from padding are kept (mask them with the lengths
    :class:`~mlx_audio.data.PadCollate` returns: ``frames = 1 + length // hop_length``).
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int = 1024,
        hop_length: int = 480,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        top_db: float | None = None,
        channels_last: bool = False,
        window: str = "hann",
        center: bool = True,
        mel_scale: str = "slaney",
        norm: str | None = "slaney",
        key: int | str | None = None,
    ) -> None:
        if hop_length <= 0 or n_fft <= 0:
            raise ValueError(f"n_fft and hop_length must be positive, got {n_fft}, {hop_length}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.top_db = top_db
        self.channels_last = channels_last
        self.center = center
        self.key = key
        import mlx.core as mx

        # made here, not at the first call: that call may be inside an mx.compile trace
        self._filters = mx.array(
            mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, norm, mel_scale)
        )
        self._window = mx.array(_window(window, n_fft).astype(np.float32))

    def features(self, wave: Any) -> Any:
        """Log-mel dB of ``wave`` ``(..., samples)`` as an ``mx.array``."""
        import mlx.core as mx

        x = mx.array(wave) if not isinstance(wave, mx.array) else wave
        if mx.issubdtype(x.dtype, mx.integer):  # NOTE [integer PCM] (features.pcm_to_float)
            scale, offset = pcm_range(x.dtype.size, mx.issubdtype(x.dtype, mx.unsignedinteger))
            x = (x.astype(mx.float32) - offset) * (1 / scale)
        x = x.astype(mx.float32)
        if self.center:
            half = self.n_fft // 2
            if x.shape[-1] <= half:
                raise ValueError(
                    f"signal of {x.shape[-1]} samples is too short for reflect padding of {half}"
                )
            left = x[..., 1 : half + 1][..., ::-1]
            right = x[..., -half - 1 : -1][..., ::-1]
            x = mx.concatenate([left, x, right], axis=-1)
        length = x.shape[-1]
        if length < self.n_fft:
            raise ValueError(f"signal of {length} samples is shorter than n_fft={self.n_fft}")
        frames = 1 + (length - self.n_fft) // self.hop_length
        lead = x.shape[:-1]
        flat = x.reshape(-1, length)
        strided = mx.as_strided(
            flat,
            shape=(flat.shape[0], frames, self.n_fft),
            strides=(length, self.hop_length, 1),
        )
        spectrum = mx.fft.rfft(strided * self._window, axis=-1)
        # |z|^2 as re^2 + im^2: no square root, and no complex abs, whose fused CUDA kernel MLX
        # 0.32.4 fails to build inside mx.compile (benchmarks/gpu/logmel_probe.py)
        power = mx.square(mx.real(spectrum)) + mx.square(mx.imag(spectrum))
        mel = mx.maximum(power @ self._filters, 1e-10)
        db = 10.0 * mx.log10(mel)
        if self.top_db is not None:
            peak = mx.max(db, axis=(-2, -1), keepdims=True)
            db = mx.maximum(db, peak - self.top_db)
        db = db.reshape(*lead, frames, -1)
        return db if self.channels_last else mx.swapaxes(db, -1, -2)

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, Mapping):
            key = "audio" if self.key is None else self.key
            if key not in batch:
                raise KeyError(
                    f"LogMel: the batch has no {key!r} entry (keys: {sorted(batch)}); pass key="
                )
            return {**batch, key: self.features(batch[key])}
        if isinstance(batch, (tuple, list)):
            key = 0 if self.key is None else self.key
            if not isinstance(key, int):
                raise TypeError(f"LogMel: a tuple batch needs an int key, got {key!r}")
            items = list(batch)
            items[key] = self.features(items[key])
            return type(batch)(items) if not hasattr(batch, "_fields") else type(batch)(*items)
        return self.features(batch)
