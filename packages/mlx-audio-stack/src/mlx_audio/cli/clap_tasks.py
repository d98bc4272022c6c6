"""``mlx-audio train --model.name clap``: fine-tune a CLAP folder contrastively on captioned audio.

Captions come from the manifest's ``caption`` column, or else from each clip's class name
through ``data.caption_template`` (class folders). The loss is CLAP's symmetric contrastive
loss over the batch, where clips with the same caption all count as matches; the metric is
retrieval accuracy (each clip's closest caption in the batch is one of its own). The best
weights are written as a CLAP folder (``<run>/clap``) that ``mlx-audio zero-shot`` reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_audio.data import DataLoader
from mlx_audio.train import OptimizerConfig, TrainModule

from .clips import DropUnreadable, Unreadable
from .config import Settings

_COPIED = (
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


def _pretrained(settings: Settings) -> str:
    folder = settings.model.pretrained
    if not folder or not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"model.pretrained: {folder!r} is not a CLAP folder (config.json + weights + tokenizer.json); "
            "--model.name clap fine-tunes a pretrained CLAP, e.g. one saved by CLAP.save_pretrained"
        )
    if not os.path.isfile(os.path.join(folder, "tokenizer.json")):
        raise FileNotFoundError(
            f"model.pretrained: {folder} has no tokenizer.json (needed to read the captions)"
        )
    return folder


def load_clap(path: str) -> Any:
    """``zero-shot --model``: a CLAP folder, or a Hub repo id (``namespace/name``); a path that
    is neither is reported as the missing folder it is."""
    from mlx_audio.models.clap import CLAP

    if os.path.isdir(path):
        return CLAP.from_pretrained(path)
    if re.fullmatch(r"[\w-][\w.-]*/[\w.-]*[\w-]", path) is None:  # not namespace/name
        raise FileNotFoundError(
            f"--model {path}: no such folder (a CLAP folder: config.json, weights, tokenizer.json)"
        )
    try:
        return CLAP.from_pretrained(path)
    except Exception as error:  # the Hub's many kinds of "no": one line, not its traceback
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise FileNotFoundError(
            f"--model {path}: no such folder here, and the Hugging Face Hub gave no model: {reason}"
        ) from None


def extractor_for(folder: str, audio: Any = None) -> Any:
    """The feature extractor of the CLAP at ``folder``: its ``preprocessor_config.json``, else
    one for its audio config (``audio``, or read from its ``config.json``; a folder from
    ``save_pretrained`` has none): the model's mel bins, fusion's truncation."""
    from mlx_audio.models.clap import ClapConfig, ClapFeatureExtractor

    if os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
        return ClapFeatureExtractor.from_pretrained(folder)
    if audio is None:
        with open(os.path.join(folder, "config.json")) as f:
            audio = ClapConfig.from_dict(json.load(f)).audio_config
    truncation = "fusion" if audio.enable_fusion else "rand_trunc"
    return ClapFeatureExtractor(feature_size=audio.num_mel_bins, truncation=truncation)


class CaptionPairs:
    """A worker-side transform: ``(wave, label[, caption])`` -> CLAP features, caption tokens
    and a caption id (equal captions, equal ids). Seeded per sample (the loader's ``rng``)."""

    def __init__(
        self, extractor: Any, tokenizer: Any, classes: list[str], template: str, max_tokens: int
    ) -> None:
        self.extractor = extractor
        self.tokenizer = tokenizer
        self.classes = classes
        self.template = template
        self.max_tokens = max_tokens

    def caption(self, item: tuple) -> str:
        """A manifest's caption (``(wave, caption)`` or ``(wave, label, caption)``), else the
        class name through the template."""
        if len(item) == 3 or isinstance(item[1], str):
            return str(item[-1])
        return self.template.format(label=self.classes[int(item[1])])

    def __call__(self, item: Any, rng: np.random.Generator) -> Any:
        if isinstance(item, Unreadable):  # data.on_error: skip; the collate drops it
            return item
        text = self.caption(item)
        features = self.extractor(
            [np.asarray(item[0])],
            sampling_rate=self.extractor.sampling_rate,
            random_state=int(rng.integers(2**31 - 1)),
        )
        tokens = self.tokenizer([text], padding="max_length", max_length=self.max_tokens)
        return (
            features["input_features"][0],
            features["is_longer"][0],
            tokens["input_ids"][0],
            tokens["attention_mask"][0],
            np.int64(zlib.crc32(text.encode())),
        )


class CaptionedCLAP(TrainModule):
    """CLAP with the contrastive loss; ``model.freeze_text`` keeps the text encoder as it was."""

    def __init__(self, settings: Settings) -> None:
        from mlx_audio.models.clap import CLAP

        super().__init__()
        self.settings = settings
        self.clap = CLAP.from_pretrained(_pretrained(settings))
        if settings.model.freeze_text:
            self.clap.text_encoder.freeze()
            self.clap.text_projection.freeze()
        self.clap.train()

    def compute_loss(self, batch: Any) -> tuple[mx.array, dict[str, mx.array]]:
        features, is_longer, ids, mask, caption_ids = batch
        fusion = self.clap.config.audio_config.enable_fusion
        out = self.clap(features, ids, attention_mask=mask, is_longer=is_longer if fusion else None)
        same = (caption_ids[:, None] == caption_ids[None, :]).astype(mx.float32)
        targets = same / mx.sum(same, axis=1, keepdims=True)
        loss = (
            mx.mean(nn.losses.cross_entropy(out["logits_per_audio"], targets))
            + mx.mean(nn.losses.cross_entropy(out["logits_per_text"], targets))
        ) / 2
        closest = mx.argmax(out["logits_per_audio"], axis=-1)
        hit = mx.take_along_axis(same, closest[:, None], axis=1)[:, 0]
        return loss, {"retrieval_accuracy": mx.mean(hit)}

    def configure_optimizers(self) -> OptimizerConfig:
        from .classifier import make_optimizer

        return make_optimizer(self.settings, self.trainer.max_steps or 1000)


def extractor_of(settings: Settings) -> Any:
    """The feature extractor of ``model.pretrained`` (its ``sampling_rate`` is the rate the audio
    is read at)."""
    return extractor_for(_pretrained(settings))


def loaders(
    settings: Settings, train: Any, val: Any, extractor: Any
) -> tuple[DataLoader, DataLoader]:
    from mlx_audio.models.clap import ClapTokenizer

    folder = _pretrained(settings)
    pairs = CaptionPairs(
        extractor,
        ClapTokenizer.from_pretrained(folder),
        list(train.classes),
        settings.data.caption_template,
        settings.model.max_tokens,
    )
    d = settings.data
    return (
        DataLoader(
            train,
            batch_size=d.batch_size,
            shuffle=True,
            drop_last=len(train) > d.batch_size,
            num_workers=d.num_workers,
            cpu_transforms=[pairs],
            collate_fn=DropUnreadable(),
        ),
        DataLoader(
            val,
            batch_size=d.batch_size,
            num_workers=d.num_workers,
            cpu_transforms=[pairs],
            collate_fn=DropUnreadable(),
        ),
    )


def export(settings: Settings, model: CaptionedCLAP, checkpoint: str | None, out: str) -> str:
    """The fine-tuned weights (``checkpoint``, else the model as it is) as a CLAP folder."""
    if checkpoint:
        model.load_checkpoint(checkpoint)
    model.clap.save_pretrained(out)
    for name in _COPIED:
        source = os.path.join(_pretrained(settings), name)
        if os.path.isfile(source):
            shutil.copy(source, os.path.join(out, name))
    return out
