"""Layer-wise learning-rate decay for ``clap-audio-classifier`` (issue 31): BEiT/timm's
``param_groups_layer_decay`` over the Swin blocks, checked as the rate each parameter was
actually updated with (one SGD step against the gradient), with the unfreeze of
``BackboneFinetuning`` and under a schedule; and the command's checks."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_audio.cli import main
from mlx_audio.cli.clap_classifier import ScaledBackbone
from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.models.clap import ClapAudioClassifier, ClapConfig
from mlx_audio.train import OptimizerConfig, Trainer, TrainModule

TEXT = {"vocab_size": 16, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4}
TEXT |= {"intermediate_size": 64, "max_position_embeddings": 16}
AUDIO = {"spec_size": 64, "num_mel_bins": 16, "window_size": 4, "patch_size": 4}
AUDIO |= {"patch_stride": 4, "patch_embeds_hidden_size": 16, "hidden_size": 32}
AUDIO |= {"depths": [1, 2], "num_attention_heads": [2, 2], "hidden_dropout_prob": 0.0}


def tiny() -> ClapAudioClassifier:
    config = {"text_config": TEXT, "audio_config": AUDIO, "projection_dim": 16}
    return ClapAudioClassifier(ClapConfig.from_dict(config), 3)


def test_layer_groups_follow_timms_swin_grouping():
    model = tiny()
    groups = model.layer_groups()
    root = "backbone.audio_encoder"
    assert groups[0] == [f"{root}.patch_embed", f"{root}.batch_norm"]
    assert groups[1] == [f"{root}.layers.0.blocks.0", f"{root}.layers.0.downsample"]
    assert groups[2:4] == [[f"{root}.layers.1.blocks.0"], [f"{root}.layers.1.blocks.1"]]
    assert groups[4][-1] == "backbone.audio_projection" and f"{root}.norm" in groups[4]
    assert groups[5] == ["head"]
    scales = model.layer_decay_scales(0.5)
    assert scales["head.weight"] == 1.0
    assert scales["backbone.audio_projection.linear1.weight"] == 0.5  # timm's norm group
    assert scales[f"{root}.layers.1.blocks.1.output.dense.weight"] == 0.25
    assert scales[f"{root}.layers.0.downsample.reduction.weight"] == 0.5**4
    assert scales[f"{root}.patch_embed.proj.weight"] == 0.5**5
    assert set(scales) == {k for k, _ in tree_flatten(model.parameters())}
    with pytest.raises(ValueError, match=r"layer decay must be in \(0, 1\]"):
        model.layer_decay_scales(1.5)


class Module(TrainModule):
    def __init__(self, schedule: bool) -> None:
        super().__init__()
        model = tiny()
        self.backbone, self.head = model.backbone, model.head
        self.schedule = schedule

    layer_groups = ClapAudioClassifier.layer_groups
    module_at = ClapAudioClassifier.module_at

    def __call__(self, x):
        return self.head(self.backbone(x))

    def compute_loss(self, batch):
        x, y = batch
        return mx.mean(nn.losses.cross_entropy(self(x), y)), {}

    def configure_optimizers(self):
        lr = optim.linear_schedule(0.3, 0.1, 10) if self.schedule else 0.2
        return OptimizerConfig(optim.SGD(learning_rate=lr))


@pytest.mark.parametrize("schedule", [False, True])
def test_each_parameter_moves_at_the_heads_rate_times_decay_to_its_depth(schedule):
    """One SGD step after the unfreeze: every parameter moved by -lr x scale x its gradient,
    scale = decay ** (depth from the top), lr the optimizer's (scheduled) rate of that step."""
    mx.random.seed(0)
    x = mx.random.normal((4, 1, 16, 64))  # CLAP's log-mels
    y = mx.array([0, 1, 2, 0])
    module = Module(schedule)
    mx.eval(module.parameters())
    start = dict(tree_flatten(module.parameters()))
    trainer = Trainer(
        max_steps=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
        num_sanity_val_steps=0, callbacks=[ScaledBackbone(0, 0.1, layer_decay=0.5)], seed=0,
    )  # fmt: skip
    loader = DataLoader(ArrayDataset(np.array(x), np.array(y)), batch_size=4)
    trainer.fit(module, loader)  # unfrozen at epoch 0, one group a layer
    moved = dict(tree_flatten(module.parameters()))
    # the gradient at the start, BatchNorm frozen as the callback leaves it (train_bn=False)
    probe = Module(schedule)
    probe.load_weights(list(start.items()))
    for _, m in probe.named_modules():
        if isinstance(m, nn.BatchNorm):
            m.track_running_stats = False
            m.freeze()
    probe.train()
    _, grads = nn.value_and_grad(probe, lambda b: probe.compute_loss(b)[0])((x, y))
    scales = tiny().layer_decay_scales(0.5)
    lr = 0.3 if schedule else 0.2  # the rate of step 0
    checked = 0
    for name, g in tree_flatten(grads):
        expected = np.array(start[name]) - lr * scales[name] * np.array(g)
        np.testing.assert_allclose(
            np.array(moved[name]), expected, rtol=1e-4, atol=1e-6, err_msg=name
        )
        checked += 1
    assert checked > 40 and len(set(scales.values())) == 6


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model.layer_decay", "1.5"], r"model.layer_decay: must be in \(0, 1\], got 1.5"),
        (["--model.layer_decay", "0.75", "--model.freeze_backbone", "true"], "set one of them"),
        (["--model.layer_decay", "0.75", "--model.backbone_lr_ratio", "0.5"], "set one of them"),
    ],
)
def test_bad_layer_decay_is_one_line_exit_2(tmp_path, capsys, flags, message):
    import re

    folder = tmp_path / "clap"
    config = {"text_config": TEXT, "audio_config": AUDIO, "projection_dim": 16}
    from mlx_audio.models.clap import CLAP

    CLAP(ClapConfig.from_dict(config)).save_pretrained(str(folder))
    args = ["train", "--data", str(tmp_path), "--model.name", "clap-audio-classifier"]
    args += ["--model.pretrained", str(folder), "--trainer.default_root_dir", str(tmp_path / "r")]
    assert main([*args, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
