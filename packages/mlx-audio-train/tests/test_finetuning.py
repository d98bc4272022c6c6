"""BackboneFinetuning / BaseFinetuning: the backbone's learning rate per epoch is Lightning's
(live against Lightning's callback in the anchor venv when it exists, else Lightning's formula),
the backbone stays put while frozen, its update is the update at its group's rate, and a
mid-run resume gives bit-identical weights."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from train_testing import assert_trees_equal, blobs, flat

from mlx_audio.data import DataLoader
from mlx_audio.train import OptimizerConfig, Trainer, TrainModule
from mlx_audio.train.callbacks import BackboneFinetuning, Callback, ModelCheckpoint

ANCHOR = Path(__file__).resolve().parents[3] / ".venv-anchor" / "bin" / "python"
LAMBDAS = {"x1.5": lambda epoch: 1.5, "epoch": lambda epoch: float(epoch), "x2": lambda e: 2.0}


class Backboned(TrainModule):
    def __init__(self, make_optimizer=None, lr: float = 0.1, norm: bool = True) -> None:
        super().__init__()
        layers = [nn.Linear(8, 16), nn.BatchNorm(16)] if norm else [nn.Linear(8, 16)]
        self.backbone = nn.Sequential(*layers, nn.ReLU())
        self.head = nn.Linear(16, 3)
        self.make_optimizer = make_optimizer or (lambda: optim.Adam(learning_rate=lr))

    def __call__(self, x: mx.array) -> mx.array:
        return self.head(self.backbone(x))

    def compute_loss(self, batch):
        x, y = batch
        return mx.mean(nn.losses.cross_entropy(self(x), y))

    def configure_optimizers(self) -> OptimizerConfig:
        return OptimizerConfig(self.make_optimizer())


class Rates(Callback):
    """Records [the optimizer's rate, *the added groups' rates] at each epoch's first batch."""

    def __init__(self, finetuning: BackboneFinetuning) -> None:
        self.finetuning, self.seen = finetuning, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            optimizer = trainer.optimizer
            schedule = optimizer._schedulers.get("learning_rate")
            rate = schedule(optimizer.step) if schedule is not None else optimizer.learning_rate
            self.seen.append([float(rate.item()), *self.finetuning.group_lrs])


def trainer_for(root, callbacks, **overrides):
    settings = {"max_epochs": 5, **overrides}
    return Trainer(
        seed=7,
        default_root_dir=str(root),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        callbacks=callbacks,
        **settings,
    )


def loader():
    return DataLoader(blobs(48), batch_size=16, shuffle=True, num_workers=0, seed=3)


LIGHTNING = textwrap.dedent(
    """
    import json, sys, logging, warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import torch, lightning.pytorch as pl
    from lightning.pytorch.callbacks import BackboneFinetuning
    cases = json.loads(sys.argv[1])
    lambdas = {"x1.5": lambda e: 1.5, "epoch": lambda e: float(e), "x2": lambda e: 2.0}

    class M(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Linear(8, 16)
            self.head = torch.nn.Linear(16, 3)
        def training_step(self, batch, i):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.head(self.backbone(x)), y)
        def configure_optimizers(self):
            params = filter(lambda p: p.requires_grad, self.parameters())
            opt = torch.optim.SGD(params, lr=0.1)
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)]

    class Rates(pl.Callback):
        def __init__(self):
            self.seen = []
        def on_train_batch_start(self, trainer, module, batch, i):
            if i == 0:
                self.seen.append([g["lr"] for g in trainer.optimizers[0].param_groups])

    data = torch.utils.data.TensorDataset(torch.randn(32, 8), torch.randint(0, 3, (32,)))
    out = []
    for case in cases:
        case = dict(case, lambda_func=lambdas[case["lambda_func"]])
        rates = Rates()
        trainer = pl.Trainer(max_epochs=6, callbacks=[BackboneFinetuning(**case), rates],
            logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, accelerator="cpu")
        trainer.fit(M(), torch.utils.data.DataLoader(data, batch_size=16))
        out.append(rates.seen)
    print(json.dumps(out))
    """
)

CASES = [
    {"unfreeze_backbone_at_epoch": 1, "lambda_func": "x1.5", "backbone_initial_ratio_lr": 0.1},
    {"unfreeze_backbone_at_epoch": 2, "lambda_func": "epoch", "backbone_initial_lr": 0.01},
    {
        "unfreeze_backbone_at_epoch": 0,
        "lambda_func": "x2",
        "backbone_initial_ratio_lr": 0.2,
        "should_align": False,
    },
]


def lightning_rates() -> list[list[list[float]]]:
    """Lightning's recorded rates, live from the anchor venv; without it, Lightning's formula
    (finetuning.py, BackboneFinetuning.finetune_function) written out for these cases."""
    if ANCHOR.exists():
        done = subprocess.run(
            [str(ANCHOR), "-c", LIGHTNING, json.dumps(CASES)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    first = [[0.1], [0.1, 0.01], [0.05, 0.015], [0.05, 0.0225], [0.025, 0.025], [0.025, 0.025]]
    second = [[0.1], [0.1], [0.05, 0.01], [0.05, 0.04], [0.025, 0.025], [0.025, 0.025]]
    third = [[0.1, 0.02], [0.1, 0.04], [0.05, 0.08], [0.05, 0.16], [0.025, 0.32], [0.025, 0.64]]
    return [first, second, third]


def test_backbone_rates_per_epoch_are_lightnings(tmp_path):
    expected = lightning_rates()
    for case, reference in zip(CASES, expected):
        finetuning = BackboneFinetuning(**{**case, "lambda_func": LAMBDAS[case["lambda_func"]]})
        rates = Rates(finetuning)
        # SGD at 0.1 halved every 2 epochs (StepLR(step_size=2, gamma=0.5)); 2 steps an epoch
        model = Backboned(lambda: optim.SGD(learning_rate=optim.step_decay(0.1, 0.5, 4)))
        data = DataLoader(blobs(32), batch_size=16, num_workers=0)
        trainer_for(tmp_path, [finetuning, rates], max_epochs=6).fit(model, data)
        np.testing.assert_allclose(
            np.array(_pad(rates.seen)), np.array(_pad(reference)), rtol=1e-6, err_msg=str(case)
        )


def _pad(rows):
    return [[*row, *([np.nan] * (2 - len(row)))] for row in rows]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_backbone_is_frozen_until_its_epoch_then_trains_at_its_rate(tmp_path, accumulate):
    """Frozen until epoch 2; then Adam at the group's rate gives the weights of an
    ``optim.MultiOptimizer`` with that rate for the backbone (the update is linear in the
    rate), while BatchNorm (``train_bn``) trains with the head from the start."""
    model = Backboned()
    start = flat(model.parameters())
    finetuning = BackboneFinetuning(unfreeze_backbone_at_epoch=2, lambda_func=lambda e: 1.0)
    seen = []

    class Snapshot(Callback):
        def on_train_epoch_end(self, trainer, module):
            seen.append(flat(module.parameters()))

    trainer = trainer_for(
        tmp_path / "a", [finetuning, Snapshot()], max_epochs=3, accumulate_grad_batches=accumulate
    )
    trainer.fit(model, loader())
    key = "backbone.layers.0.weight"
    assert np.array_equal(seen[1][key], start[key])  # frozen in epochs 0 and 1
    assert not np.array_equal(seen[2][key], start[key])  # trained in epoch 2
    assert not np.array_equal(
        seen[0]["backbone.layers.1.weight"], start["backbone.layers.1.weight"]
    )
    assert not np.array_equal(seen[0]["head.weight"], start["head.weight"])

    # (without BatchNorm: the bias before it has a zero gradient, and Adam's step on a zero
    # gradient is rounding noise)
    ours = Backboned(norm=False)
    reference = Backboned(
        lambda: optim.MultiOptimizer(
            [optim.Adam(learning_rate=0.01), optim.Adam(learning_rate=0.1)],
            [lambda path, _: path.startswith("backbone.")],
        ),
        norm=False,
    )
    reference.update(ours.parameters())
    finetuning = BackboneFinetuning(unfreeze_backbone_at_epoch=0, lambda_func=lambda e: 1.0)
    settings = {"max_epochs": 3, "accumulate_grad_batches": accumulate}
    trainer_for(tmp_path / "b", [finetuning], **settings).fit(ours, loader())
    trainer_for(tmp_path / "c", [], **settings).fit(reference, loader())
    assert finetuning.group_lrs == [pytest.approx(0.01)]
    for key, value in flat(reference.parameters()).items():
        np.testing.assert_allclose(flat(ours.parameters())[key], value, atol=1e-6, err_msg=key)


class FrozenNorm(BackboneFinetuning):
    """Its BatchNorm frozen too (not tracking statistics) until the backbone unfreezes."""

    def freeze_before_training(self, module):
        self.freeze(module.backbone, train_bn=False)


@pytest.mark.parametrize("kind", [BackboneFinetuning, FrozenNorm])
@pytest.mark.parametrize("stop_at", [2, 4, 7])  # before the backbone unfreezes, and after
def test_mid_run_resume_is_bit_identical(tmp_path, stop_at, kind):
    def run(root, **overrides):
        finetuning = kind(unfreeze_backbone_at_epoch=1, lambda_func=lambda e: 1.5)
        checkpoints = ModelCheckpoint(
            dirpath=str(root / "ckpt"), every_n_train_steps=1, save_top_k=-1
        )
        mx.random.seed(0)
        model = Backboned()
        trainer = trainer_for(root, [finetuning, checkpoints], max_epochs=4, **overrides)
        return model, trainer, finetuning

    full_model, full, _ = run(tmp_path / "full")
    full.fit(full_model, loader())
    cut_model, cut, _ = run(tmp_path / "cut", max_steps=stop_at)
    cut.fit(cut_model, loader())
    model, trainer, finetuning = run(tmp_path / "cut")
    trainer.fit(model, loader(), ckpt_path="last")
    assert trainer.global_step == full.global_step == 12
    assert finetuning.previous_backbone_lr == pytest.approx(0.1 * 0.1 * 1.5**2)
    assert_trees_equal(model.parameters(), full_model.parameters())
    assert_trees_equal(trainer.optimizer.state, full.optimizer.state)


def test_a_module_without_backbone_is_refused(tmp_path):
    class NoBackbone(Backboned):
        def __init__(self):
            super().__init__()
            del self.backbone

        def __call__(self, x):
            return self.head(x)

    with pytest.raises(ValueError, match="should have a nn.Module `backbone` attribute"):
        trainer_for(tmp_path, [BackboneFinetuning()]).fit(NoBackbone(), loader())


def test_freeze_and_make_trainable_as_lightning():
    """Lightning's test_freeze_unfreeze_function, in MLX terms (trainable = requires_grad)."""
    from mlx_audio.train.callbacks import BaseFinetuning

    backbone = nn.Sequential(nn.Linear(32, 32), nn.BatchNorm(32), nn.ReLU(), nn.Linear(32, 2))

    def trainable(i):
        return "weight" in dict(backbone.layers[i].trainable_parameters())

    BaseFinetuning.freeze(backbone, train_bn=True)
    assert not trainable(0) and trainable(1) and not trainable(3)
    assert backbone.layers[1].track_running_stats
    BaseFinetuning.freeze(backbone, train_bn=False)
    assert not trainable(0) and not trainable(1) and not trainable(3)
    assert not backbone.layers[1].track_running_stats
    BaseFinetuning.make_trainable(backbone)
    assert trainable(0) and trainable(1) and trainable(3)
    assert backbone.layers[1].track_running_stats
    assert "running_mean" not in dict(backbone.layers[1].trainable_parameters())
    BaseFinetuning.freeze(backbone.layers[0], train_bn=False)
    assert not trainable(0)
    BaseFinetuning.freeze([backbone.layers[1], [backbone.layers[3]]], train_bn=True)
    assert trainable(1) and backbone.layers[1].track_running_stats and not trainable(3)


def test_complex_nested_model_as_lightning():
    """Lightning's test_complex_nested_model: parent modules with arrays of their own."""
    from mlx_audio.train.callbacks import BaseFinetuning

    class ConvBlock(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv, self.act, self.bn = nn.Conv2d(cin, cout, 3), nn.ReLU(), nn.BatchNorm(cout)

    class ConvBlockParam(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.module_dict = {"conv": nn.Conv2d(cin, cout, 3), "act": nn.ReLU()}
            self.parent_param = mx.zeros((1,))
            self.bn = nn.BatchNorm(cout)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(ConvBlockParam(3, 64), ConvBlock(64, 128))
            self.decoder = ConvBlock(128, 10)

    model = Model()
    assert len(BaseFinetuning.flatten_modules(model)) == 10
    BaseFinetuning.freeze(model.encoder, train_bn=True)
    first = model.encoder.layers[0]
    assert "weight" not in first.module_dict["conv"].trainable_parameters()
    assert "parent_param" not in first.trainable_parameters()
    assert "weight" in first.bn.trainable_parameters()
    BaseFinetuning.make_trainable(model)
    assert len(list(BaseFinetuning.filter_params(model.encoder, train_bn=True))) == 9
