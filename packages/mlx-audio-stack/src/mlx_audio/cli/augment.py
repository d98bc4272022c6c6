"""The command's augmentation settings made into transforms: waveforms in the workers
(``data.gain_db``, ``data.noise_dir``/``data.noise_snr_db``, ``data.rir_dir``) and SpecAugment /
mixup / cutmix on the accelerator, in the compiled train step (``model.spec_augment``,
``model.mixup_alpha``, ``model.cutmix_alpha``). Both draw from seeded generators (the loader's
per-clip one, the Trainer's per-step key): runs repeat and resume exactly."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import mlx.core as mx

from mlx_audio.data import (
    AddBackgroundNoise,
    ApplyImpulseResponse,
    Compose,
    FrequencyMasking,
    Gain,
    Mixup,
    TimeMasking,
)

from . import clips
from .config import ConfigError, Settings

if TYPE_CHECKING:
    from .classifier import AudioClassifier


class InWorkers:
    """A ``cpu_transform`` of training clips: each step with probability 0.5; a skipped file's
    placeholder passes untouched. ``chain`` is None when nothing is asked for."""

    def __init__(self, settings: Settings) -> None:
        d = settings.data
        steps: list[Any] = []
        if d.gain_db > 0:
            steps.append(Gain(-d.gain_db, d.gain_db, p=0.5))
        if d.noise_dir is not None:
            low, high = d.noise_snr_db
            noise = from_folder("data.noise_dir", d.noise_dir, d.on_error, AddBackgroundNoise,
                                min_snr_db=low, max_snr_db=high, p=0.5, sample_rate=d.sample_rate)  # fmt: skip
            steps.append(noise)
        if d.rir_dir is not None:
            rir = from_folder("data.rir_dir", d.rir_dir, d.on_error, ApplyImpulseResponse,
                              p=0.5, sample_rate=d.sample_rate)  # fmt: skip
            steps.append(rir)
        self.chain = Compose(steps) if steps else None

    def __call__(self, sample: Any, rng: Any = None) -> Any:
        if self.chain is None or isinstance(sample, clips.Unreadable):
            return sample
        return self.chain(sample, rng=rng)


def from_folder(key: str, folder: str, on_error: str, make: Any, **kwargs: Any) -> Any:
    """The transform of ``key``'s folder, every file's header read first (as the data's):
    unreadable files are an error naming ``key``, or with ``data.on_error: skip`` left out."""
    from .data import DataError, _info, count, example

    if not os.path.exists(folder):
        raise ConfigError(f"{key}: {folder}: no such file or folder")
    try:
        transform = make(folder, **kwargs)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"{key}: {str(error).split(': ', 1)[-1]}") from None
    bad = [(path, why) for path in transform.paths if (why := _info(path)[1]) is not None]
    if bad and (on_error != "skip" or len(bad) == len(transform.paths)):
        listing = "".join(f"\n  {path}: {why}" for path, why in bad)
        advice = "" if on_error == "skip" else ", or set data.on_error: skip to leave them out"
        raise DataError(
            f"{key}: {len(bad)} of {count(len(transform.paths), 'file')} cannot be read (fix or "
            f"remove them{advice}):{listing}"
        )
    if bad:
        print(
            f"mlx-audio: warning: {key}: leaving out {count(len(bad), 'unreadable file')} "
            f"(data.on_error: skip): {example([p for p, _ in bad])}"
        )
        unreadable = {p for p, _ in bad}
        transform.paths = [p for p in transform.paths if p not in unreadable]
    return transform


def on_device(settings: Settings, num_classes: int) -> tuple[list[Any], Mixup | None]:
    """``(masks, mixup)``: with ``model.spec_augment`` two frequency masks of up to
    ``n_mels // 5`` bins and two time masks of up to a fifth of a clip's frames (one per
    example); mixup/cutmix (no label smoothing) when an alpha is above 0."""
    model = settings.model
    frames = int(settings.data.clip_seconds * settings.data.sample_rate) // model.hop_length + 1
    masks: list[Any] = []
    if model.spec_augment:
        masks = [FrequencyMasking(max(1, model.n_mels // 5), iid_masks=True) for _ in range(2)]
        masks += [TimeMasking(max(1, frames // 5), iid_masks=True) for _ in range(2)]
    mixup = None
    if model.mixup_alpha > 0 or model.cutmix_alpha > 0:
        mixup = Mixup(
            model.mixup_alpha, model.cutmix_alpha, label_smoothing=0.0, num_classes=num_classes
        )
    return masks, mixup


def check(settings: Settings) -> None:
    """The augmentation settings belong to the classifier (``model.name: cnn``): set for CLAP,
    they would be ignored, so they are an error."""
    d, m = settings.data, settings.model
    asked = [
        name
        for name, on in (
            ("data.noise_dir", d.noise_dir is not None),
            ("data.rir_dir", d.rir_dir is not None),
            ("data.gain_db", d.gain_db > 0),
            ("model.spec_augment", m.spec_augment),
            ("model.mixup_alpha", m.mixup_alpha > 0),
            ("model.cutmix_alpha", m.cutmix_alpha > 0),
        )
        if on
    ]
    if m.name == "clap" and asked:
        raise ConfigError(
            f"{', '.join(asked)}: augmentation applies to model.name cnn only, not clap; "
            "remove these settings"
        )


def forward(
    module: AudioClassifier, waves: mx.array, labels: mx.array, lengths: mx.array | None = None
) -> tuple[mx.array, Any]:
    """``(logits, targets)``: while training, SpecAugment on the normalized log-mels and mixup /
    cutmix of the batch (targets become soft, or mixed
    multi-hot; an odd batch's middle clip is left unmixed); otherwise the plain forward and the labels."""
    if not module.training or (not module.masks and module.mixup is None):
        return module(waves, lengths), labels
    mels = module.normalized(waves, lengths)  # a padded batch: over each clip's own frames
    frames = None if lengths is None else module.frames(lengths)
    for mask in module.masks:
        mels = mask(mels) if frames is None else mask(mels, lengths=frames)
    targets: Any = labels
    if module.mixup is not None:
        mels, targets = module.mixup(mels, labels)
    return module.net(mels[:, None]), targets
