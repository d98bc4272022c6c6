"""The audio half of the data package, in numpy (it runs in DataLoader workers; no MLX import).

- :mod:`~mlx_audio.data.audio.io`: decode a window of a file, resample (``load_audio``,
  ``audio_info``, ``resample``);
- :mod:`~mlx_audio.data.audio.datasets`: ``AudioFolder``, ``AudioManifest``;
- :mod:`~mlx_audio.data.audio.features`: STFT and log-mel features in numpy;
- :mod:`~mlx_audio.data.audio.features_mlx`: ``LogMel``, the same features on the accelerator;
- :mod:`~mlx_audio.data.audio.augment`: waveform augmentation in the workers (``Gain``,
  ``Shift``, ``SpeedPerturbation``, ``AddBackgroundNoise``, ``ApplyImpulseResponse``,
  ``Compose``, ``OneOf``); :mod:`~mlx_audio.data.audio.augment_mlx`: SpecAugment masks and
  ``Mixup`` on the accelerator;
- :mod:`~mlx_audio.data.audio.huggingface`: Hugging Face ``datasets`` as a registered dataset
  adapter (NOTE [dataset adapters]: the generic loader imports nothing of it).

This package re-exports what the former module ``mlx_audio.data.audio`` held (``io``'s names
and the features'), so ``from mlx_audio.data.audio import load_audio, audio_info`` keeps working.
"""

from __future__ import annotations

from .features import (
    hz_to_mel,
    log_mel_spectrogram,
    mel_filterbank,
    mel_to_hz,
    pcm_to_float,
    spectrogram,
    stft,
)
from .io import AudioDecodeError, audio_info, load_audio, resample

__all__ = [
    "AudioDecodeError",
    "audio_info",
    "load_audio",
    "resample",
    # the features (``features.__all__``), as the former module re-exported them
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "pcm_to_float",
    "stft",
    "spectrogram",
    "log_mel_spectrogram",
]
