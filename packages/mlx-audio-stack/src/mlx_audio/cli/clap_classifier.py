"""``mlx-audio train --model.name clap-audio-classifier``: a pretrained CLAP's audio tower (the
backbone) under a new linear head, trained on class folders or a manifest, one class a clip.

``model.freeze_backbone``: a linear probe (only the head trains). Else the backbone trains at
``model.backbone_lr_ratio`` times the head's rate, frozen before ``model.unfreeze_at_epoch``
(``mlx_audio.train.callbacks.BackboneFinetuning``). The features are CLAP's log-mels, made in
the loader's workers by the folder's ``ClapFeatureExtractor``.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_audio.data import DataLoader
from mlx_audio.train import OptimizerConfig, TrainModule
from mlx_audio.train.callbacks import BaseFinetuning

from .clips import DropUnreadable, Unreadable, check_labels
from .config import ConfigError, ModelSettings, Settings

NAME = "clap-audio-classifier"
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def pretrained(settings: Settings) -> str:
    """``model.pretrained``, checked: a local CLAP folder (config.json + weights)."""
    folder = settings.model.pretrained
    usage = (
        f"--model.name {NAME} needs --model.pretrained: a local CLAP folder (config.json and "
        "model.safetensors or pytorch_model.bin, e.g. a download of laion/clap-htsat-unfused "
        "or a folder written by CLAP.save_pretrained)"
    )
    if not folder:
        raise ConfigError(usage)
    if not os.path.isdir(folder):
        raise ConfigError(f"model.pretrained: {folder} is not a folder; {usage}")
    missing = [
        what
        for what, ok in (
            ("config.json", os.path.isfile(os.path.join(folder, "config.json"))),
            (
                " or ".join(_WEIGHTS),
                any(os.path.isfile(os.path.join(folder, w)) for w in _WEIGHTS),
            ),
        )
        if not ok
    ]
    if missing:
        raise ConfigError(f"model.pretrained: {folder} has no {' and no '.join(missing)}; {usage}")
    try:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        if not isinstance(config, dict) or "audio_config" not in config:
            raise ValueError("no audio_config")
    except ValueError as error:
        raise ConfigError(
            f"model.pretrained: {folder}/config.json is not a CLAP config ({error}); {usage}"
        ) from None
    return folder


def check(settings: Settings) -> None:
    """The model's settings, before anything is read."""
    model = settings.model
    pretrained(settings)
    if model.unfreeze_at_epoch < 0:
        raise ConfigError(f"model.unfreeze_at_epoch: must be >= 0, got {model.unfreeze_at_epoch}")
    if model.freeze_backbone and model.unfreeze_at_epoch > 0:
        raise ConfigError(
            "model.freeze_backbone keeps the backbone frozen for the whole run; "
            "model.unfreeze_at_epoch unfreezes it at an epoch: set one of them"
        )
    if not model.backbone_lr_ratio > 0:
        raise ConfigError(f"model.backbone_lr_ratio: must be > 0, got {model.backbone_lr_ratio}")
    if model.layer_decay is not None:
        if not 0.0 < model.layer_decay <= 1.0:
            raise ConfigError(f"model.layer_decay: must be in (0, 1], got {model.layer_decay}")
        if model.freeze_backbone:
            raise ConfigError(
                "model.layer_decay sets the backbone's rates; model.freeze_backbone never trains "
                "it: set one of them"
            )
        if model.backbone_lr_ratio != ModelSettings().backbone_lr_ratio:
            raise ConfigError(
                "model.layer_decay gives each backbone layer its rate (the head's x decay ** "
                "depth); model.backbone_lr_ratio one rate for the whole backbone: set one of them"
            )


def extractor_of(settings: Settings) -> Any:
    from .clap_tasks import extractor_for

    return extractor_for(pretrained(settings))


class ClipFeatures:
    """A worker-side transform: ``(wave, label)`` -> CLAP log-mels, ``is_longer``, label.
    Seeded per sample (the loader's ``rng``: random crops of long clips)."""

    def __init__(self, extractor: Any) -> None:
        self.extractor = extractor

    def __call__(self, item: Any, rng: np.random.Generator) -> Any:
        if isinstance(item, Unreadable):  # data.on_error: skip; the collate drops it
            return item
        features = self.extractor(
            [np.asarray(item[0])],
            sampling_rate=self.extractor.sampling_rate,
            random_state=int(rng.integers(2**31 - 1)),
        )
        label = (np.int32(item[1]),) if len(item) > 1 else ()  # predict: no labels
        return (features["input_features"][0], features["is_longer"][0], *label)


def loaders(settings: Settings, train: Any, val: Any, extractor: Any) -> tuple[Any, Any]:
    if getattr(train.targets, "ndim", 1) == 2:
        raise ConfigError(
            f"--model.name {NAME} classifies one class a clip; this manifest has several "
            "labels a clip (a `labels` column): use --model.name cnn"
        )
    d = settings.data
    features = ClipFeatures(extractor)
    return (
        DataLoader(
            train,
            batch_size=d.batch_size,
            shuffle=True,
            num_workers=d.num_workers,
            cpu_transforms=[features],
            collate_fn=DropUnreadable(),
        ),
        DataLoader(
            val,
            batch_size=d.batch_size,
            num_workers=d.num_workers,
            cpu_transforms=[features],
            collate_fn=DropUnreadable(),
        ),
    )


class ClapClassifierModule(TrainModule):
    """The CLAP audio tower as ``backbone``, a linear ``head``; cross-entropy, accuracy."""

    def __init__(self, settings: Settings, num_classes: int) -> None:
        from mlx_audio.models.clap import ClapAudioClassifier

        super().__init__()
        self.settings = settings
        self.num_classes = num_classes
        classifier = ClapAudioClassifier.from_pretrained(pretrained(settings), num_classes)
        self.fusion = classifier.config.audio_config.enable_fusion
        self.backbone = classifier.backbone
        self.head = classifier.head
        if settings.model.freeze_backbone:  # a linear probe: the backbone never trains
            self.backbone.freeze()
            self.backbone.eval()  # BatchNorm and dropout as at inference

    def __call__(self, features: mx.array, is_longer: mx.array | None = None) -> mx.array:
        return self.head(self.backbone(features, is_longer if self.fusion else None))

    def layer_groups(self) -> list[list[str]]:  # the same paths: backbone.*, head
        from mlx_audio.models.clap import ClapAudioClassifier

        return ClapAudioClassifier.layer_groups(self)  # type: ignore[arg-type]

    def module_at(self, path: str) -> nn.Module:
        from mlx_audio.models.clap import ClapAudioClassifier

        return ClapAudioClassifier.module_at(self, path)  # type: ignore[arg-type]

    def on_fit_start(self) -> None:
        if self.settings.model.freeze_backbone:  # the probe's frozen backbone is meant to be so
            warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode", UserWarning)

    def compute_loss(self, batch: Any) -> tuple[mx.array, dict[str, mx.array]]:
        features, is_longer, labels = batch
        logits = self(features, is_longer)
        loss = mx.mean(nn.losses.cross_entropy(logits, labels))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == labels)}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        check_labels(batch[2], self.num_classes)

    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        check_labels(batch[2], self.num_classes)

    def predict_step(self, batch: Any, batch_idx: Any) -> mx.array:
        return mx.softmax(self(batch[0], batch[1]), axis=-1)

    def configure_optimizers(self) -> OptimizerConfig:
        from .classifier import make_optimizer

        return make_optimizer(self.settings, self.trainer.max_steps or 1000)


def callbacks(settings: Settings) -> list[Any]:
    """The backbone at ``backbone_lr_ratio`` times the head's rate (its schedule included) from
    epoch ``unfreeze_at_epoch`` on, unless it stays frozen (``freeze_backbone``)."""
    model = settings.model
    if model.freeze_backbone:
        return []
    return [ScaledBackbone(model.unfreeze_at_epoch, model.backbone_lr_ratio, model.layer_decay)]


class ScaledBackbone(BaseFinetuning):
    """The module's ``backbone`` frozen before epoch ``at_epoch``, then trained at ``ratio``
    times the optimizer's rate (``lr_scale``: it follows the schedule); with ``layer_decay``
    each layer instead at ``layer_decay ** depth`` times it, one group a layer
    (``ClapAudioClassifier.layer_decay_scales``: NOTE [layer-wise learning-rate decay])."""

    def __init__(self, at_epoch: int, ratio: float, layer_decay: float | None = None) -> None:
        super().__init__()
        self.at_epoch, self.ratio, self.layer_decay = at_epoch, ratio, layer_decay

    def freeze_before_training(self, module: Any) -> None:
        self.freeze(module.backbone, train_bn=False)

    def finetune_function(self, module: Any, epoch: int, optimizer: Any) -> None:
        if epoch != self.at_epoch:
            return
        if self.layer_decay is None:
            self.unfreeze_and_add_param_group(module.backbone, optimizer, lr_scale=self.ratio)
            return
        groups = module.layer_groups()[:-1]  # the head trains at the optimizer's rate
        for depth, paths in enumerate(reversed(groups), start=1):
            self.unfreeze_and_add_param_group(
                [module.module_at(p) for p in paths],
                optimizer,
                train_bn=False,
                lr_scale=self.layer_decay**depth,
            )


def restored(settings: Settings, num_classes: int) -> ClapClassifierModule:
    """``evaluate``/``predict`` of a run: the module (its checkpoint is loaded after), with the
    features made in the loader (``cpu_transforms``) from audio read at the extractor's rate."""
    extractor = extractor_of(settings)
    settings.data.sample_rate = int(extractor.sampling_rate)
    module = ClapClassifierModule(settings, num_classes)
    object.__setattr__(module, "cpu_transforms", [ClipFeatures(extractor)])  # not a child
    return module
