"""Ports of Lightning 2.6's DataModule tests: ``tests_pytorch/core/test_datamodules.py`` (the cases
that apply) and ``tests_pytorch/models/test_hooks.py::test_trainer_datamodule_hook_system``.

Same names, models and assertions; ``BoringModel`` / ``BoringDataModule`` are the MLX ones of
``boring_classes.py``, and ``ClassifDataModule`` + ``ClassificationModel`` (sklearn data) are
``BoringDataModule`` + ``BoringModel`` with the loss checked instead of the accuracy. A
checkpoint is a directory whose ``trainer_state.json`` holds what ``torch.load`` shows there,
and the restore is a resuming ``fit`` (``_restore_modules_and_callbacks`` is Lightning's
internal); the default ``*_dataloader`` of a DataModule raises ``NotImplementedError`` with
Lightning's words. Left out: pickling, ``reload_dataloaders_every_n_epochs``, profilers, the printed ``__str__`` of a datamodule, OmegaConf.
"""

from __future__ import annotations

import inspect
import json
import os
from argparse import Namespace
from functools import partial, update_wrapper
from typing import Any
from unittest import mock
from unittest.mock import call

import pytest
from boring_classes import BoringDataModule, BoringModel

from mlx_audio.data import Dataset, IterableDataset
from mlx_audio.train import AttributeDict, DataModule, LightningDataModule, Trainer
from mlx_audio.train.callbacks import ModelCheckpoint

MisconfigurationException = NotImplementedError  # the default *_dataloader's error here


def get_members(cls):
    return {
        h for h, _ in inspect.getmembers(cls, predicate=inspect.isfunction) if not h.startswith("_")
    }


class HookedDataModule(BoringDataModule):
    def __init__(self, called):
        super().__init__()

        def call(hook, fn, *args, **kwargs):
            out = fn(*args, **kwargs)
            d = {"name": hook}
            if args:
                d["args"] = args
            if kwargs:
                d["kwargs"] = kwargs
            called.append(d)
            return out

        for h in get_members(LightningDataModule) - {"save_hyperparameters"}:
            attr = getattr(self, h)
            partial_h = partial(call, h, attr)
            update_wrapper(partial_h, attr)
            setattr(self, h, partial_h)

    # override so that it gets called
    def prepare_data(self): ...


def test_trainer_datamodule_hook_system(tmp_path):
    """Test the LightningDataModule hook system."""
    model = BoringModel()
    batches = 2
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=batches,
        limit_test_batches=batches,
        enable_progress_bar=False,
        enable_model_summary=False,
    )

    called = []
    dm = HookedDataModule(called)
    trainer.fit(model, datamodule=dm)
    expected = [
        {"name": "prepare_data"},
        {"name": "setup", "kwargs": {"stage": "fit"}},
        {"name": "val_dataloader"},
        {"name": "train_dataloader"},
        {"name": "state_dict"},
        {"name": "teardown", "kwargs": {"stage": "fit"}},
    ]
    assert called == expected

    called = []
    dm = HookedDataModule(called)
    trainer.validate(model, datamodule=dm, verbose=False)
    expected = [
        {"name": "prepare_data"},
        {"name": "setup", "kwargs": {"stage": "validate"}},
        {"name": "val_dataloader"},
        {"name": "teardown", "kwargs": {"stage": "validate"}},
    ]
    assert called == expected

    called = []
    dm = HookedDataModule(called)
    trainer.test(model, datamodule=dm, verbose=False)
    expected = [
        {"name": "prepare_data"},
        {"name": "setup", "kwargs": {"stage": "test"}},
        {"name": "test_dataloader"},
        {"name": "teardown", "kwargs": {"stage": "test"}},
    ]
    assert called == expected

    called = []
    dm = HookedDataModule(called)
    trainer.predict(model, datamodule=dm)
    expected = [
        {"name": "prepare_data"},
        {"name": "setup", "kwargs": {"stage": "predict"}},
        {"name": "predict_dataloader"},
        {"name": "teardown", "kwargs": {"stage": "predict"}},
    ]
    assert called == expected


def test_hooks_no_recursion_error():
    # hooks were appended in cascade every tine a new data module was instantiated leading to a recursion error.
    # See https://github.com/Lightning-AI/pytorch-lightning/issues/3652
    class DummyDM(LightningDataModule):
        def setup(self, *args, **kwargs):
            pass

        def prepare_data(self, *args, **kwargs):
            pass

    for _i in range(1005):
        dm = DummyDM()
        dm.setup()
        dm.prepare_data()


def test_helper_boringdatamodule():
    dm = BoringDataModule()
    dm.prepare_data()
    dm.setup("fit")


def test_helper_boringdatamodule_with_verbose_setup():
    dm = BoringDataModule()
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")


def test_train_loop_only(tmp_path):
    dm = BoringDataModule()
    model = BoringModel()

    model.validation_step = None
    model.test_step = None

    trainer = Trainer(default_root_dir=tmp_path, max_epochs=1, enable_model_summary=False, seed=7)

    # fit model
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 64
    assert trainer.num_val_batches == []


def test_train_val_loop_only(tmp_path):
    dm = BoringDataModule()
    model = BoringModel()

    model.validation_step = None

    trainer = Trainer(default_root_dir=tmp_path, max_epochs=1, enable_model_summary=False, seed=7)

    # fit model
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 64


def test_dm_checkpoint_save_and_load(tmp_path):
    class CustomBoringModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            out = super().validation_step(batch, batch_idx)
            self.log("early_stop_on", out["x"])
            return out

    class CustomBoringDataModule(BoringDataModule):
        def state_dict(self) -> dict[str, Any]:
            return {"my": "state_dict"}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            self.my_state_dict = state_dict

    dm = CustomBoringDataModule()
    model = CustomBoringModel()

    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=tmp_path, monitor="early_stop_on")],
    )

    # fit model
    trainer.fit(model, datamodule=dm)
    checkpoint_path = list(trainer.checkpoint_callback.best_k_models.keys())[0]
    with open(os.path.join(checkpoint_path, "trainer_state.json")) as f:
        checkpoint = json.load(f)
    assert dm.__class__.__qualname__ in checkpoint
    assert checkpoint[dm.__class__.__qualname__] == {"my": "state_dict"}

    trainer.fit(model, datamodule=dm, ckpt_path=checkpoint_path)
    assert dm.my_state_dict == {"my": "state_dict"}


def test_full_loop(tmp_path):
    dm = BoringDataModule()
    model = BoringModel()

    trainer = Trainer(
        default_root_dir=tmp_path, max_epochs=1, enable_model_summary=False, deterministic="warn"
    )

    # fit model
    trainer.fit(model, dm)
    assert trainer.global_step == 64
    assert dm.trainer is not None

    class LoggingModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.step(batch))

        def test_step(self, batch, batch_idx):
            self.log("test_loss", self.step(batch))

    model = LoggingModel()
    # validate
    result = trainer.validate(model, dm)
    assert dm.trainer is not None
    assert set(result[0]) == {"val_loss"}

    # test
    result = trainer.test(model, dm)
    assert dm.trainer is not None
    assert set(result[0]) == {"test_loss"}


class DummyDS(Dataset):
    def __getitem__(self, index):
        return 1

    def __len__(self):
        return 100


class DummyIDS(IterableDataset):
    def __iter__(self):
        yield 1


@pytest.mark.parametrize("iterable", [False, True])
def test_dm_init_from_datasets_dataloaders(iterable):
    ds = DummyIDS if iterable else DummyDS

    train_ds = ds()
    dm = LightningDataModule.from_datasets(train_ds, batch_size=4, num_workers=0)
    with mock.patch("mlx_audio.data.DataLoader") as dl_mock:
        dm.train_dataloader()
        dl_mock.assert_called_once_with(
            train_ds, batch_size=4, shuffle=not iterable, num_workers=0, pin_memory=True
        )
    with pytest.raises(MisconfigurationException, match="`val_dataloader` must be implemented"):
        _ = dm.val_dataloader()
    with pytest.raises(MisconfigurationException, match="`test_dataloader` must be implemented"):
        _ = dm.test_dataloader()

    train_ds_sequence = [ds(), ds()]
    dm = LightningDataModule.from_datasets(train_ds_sequence, batch_size=4, num_workers=0)
    with mock.patch("mlx_audio.data.DataLoader") as dl_mock:
        dm.train_dataloader()
        dl_mock.assert_has_calls(
            [
                call(
                    train_ds_sequence[0],
                    batch_size=4,
                    shuffle=not iterable,
                    num_workers=0,
                    pin_memory=True,
                ),
                call(
                    train_ds_sequence[1],
                    batch_size=4,
                    shuffle=not iterable,
                    num_workers=0,
                    pin_memory=True,
                ),
            ]
        )
    with pytest.raises(MisconfigurationException, match="`val_dataloader` must be implemented"):
        _ = dm.val_dataloader()
    with pytest.raises(MisconfigurationException, match="`test_dataloader` must be implemented"):
        _ = dm.test_dataloader()

    valid_ds = ds()
    test_ds = ds()
    dm = LightningDataModule.from_datasets(
        val_dataset=valid_ds, test_dataset=test_ds, batch_size=2, num_workers=0
    )
    with mock.patch("mlx_audio.data.DataLoader") as dl_mock:
        dm.val_dataloader()
        dl_mock.assert_called_with(
            valid_ds, batch_size=2, shuffle=False, num_workers=0, pin_memory=True
        )
        dm.test_dataloader()
        dl_mock.assert_called_with(
            test_ds, batch_size=2, shuffle=False, num_workers=0, pin_memory=True
        )
    with pytest.raises(MisconfigurationException, match="`train_dataloader` must be implemented"):
        _ = dm.train_dataloader()

    valid_dss = [ds(), ds()]
    test_dss = [ds(), ds()]
    predict_dss = [ds(), ds()]
    dm = LightningDataModule.from_datasets(
        train_ds, valid_dss, test_dss, predict_dss, batch_size=4, num_workers=0
    )
    with mock.patch("mlx_audio.data.DataLoader") as dl_mock:
        dm.val_dataloader()
        dm.test_dataloader()
        dm.predict_dataloader()
        dl_mock.assert_has_calls(
            [
                call(valid_dss[0], batch_size=4, shuffle=False, num_workers=0, pin_memory=True),
                call(valid_dss[1], batch_size=4, shuffle=False, num_workers=0, pin_memory=True),
                call(test_dss[0], batch_size=4, shuffle=False, num_workers=0, pin_memory=True),
                call(test_dss[1], batch_size=4, shuffle=False, num_workers=0, pin_memory=True),
                call(predict_dss[0], batch_size=4, shuffle=False, num_workers=0, pin_memory=True),
                call(predict_dss[1], batch_size=4, shuffle=False, num_workers=0, pin_memory=True),
            ]
        )


def test_dm_init_from_datasets_with_init_params():
    """Test that extra kwargs can be passed down to the init via the ``LightningDataModule.from_datasets`` method.

    The two special arguments batch_size and num_workers get passed down depending on whether the __init__ accepts them.

    """
    # No additional parameters
    LightningDataModule.from_datasets(DummyDS(), batch_size=4, num_workers=2)

    class KnownExtraParametersDataModule(LightningDataModule):
        def __init__(self, batch_size=1, num_workers=0):
            super().__init__()
            self.batch_size = batch_size
            self.num_workers = num_workers

    # batch_size and num_workers get special treatment - they are part of the `from_datasets` signature
    dm = KnownExtraParametersDataModule.from_datasets(DummyDS(), batch_size=4, num_workers=2)
    assert dm.batch_size == 4
    assert dm.num_workers == 2

    class UnknownExtraParametersDataModule(LightningDataModule):
        def __init__(self, other, batch_size=1):
            super().__init__()
            self.other = other
            self.batch_size = batch_size

    # additional parameter `other` gets forwarded, alongside the special `batch_size` parameter
    dm = UnknownExtraParametersDataModule.from_datasets(
        DummyDS(), batch_size=4, num_workers=2, other=5
    )
    assert dm.batch_size == 4
    assert dm.other == 5

    # positional arguments raise an error as they would when instantiating the datamodule normally
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'other'"):
        UnknownExtraParametersDataModule.from_datasets(DummyDS(), batch_size=4, num_workers=2)

    class KwargsParametersDataModule(LightningDataModule):
        def __init__(self, num_workers, **kwargs):
            super().__init__()
            self.num_workers = num_workers
            for key, value in kwargs.items():
                setattr(self, key, value)

    # everything gets forwarded, because there is `**kwargs` present
    dm = KwargsParametersDataModule.from_datasets(
        DummyDS(), batch_size=10, num_workers=100, another=None
    )
    assert dm.batch_size == 10
    assert dm.num_workers == 100
    assert dm.another is None


# all args
class DataModuleWithHparams_0(LightningDataModule):
    def __init__(self, arg0, arg1, kwarg0=None):
        super().__init__()
        self.save_hyperparameters()


# single arg
class DataModuleWithHparams_1(LightningDataModule):
    def __init__(self, arg0, *args, **kwargs):
        super().__init__()
        self.save_hyperparameters(arg0)


def test_hyperparameters_saving():
    data = DataModuleWithHparams_0(10, "foo", kwarg0="bar")
    assert data.hparams == AttributeDict({"arg0": 10, "arg1": "foo", "kwarg0": "bar"})

    data = DataModuleWithHparams_1(Namespace(**{"hello": "world"}), "foo", kwarg0="bar")
    assert data.hparams == AttributeDict({"hello": "world"})

    data = DataModuleWithHparams_1({"hello": "world"}, "foo", kwarg0="bar")
    assert data.hparams == AttributeDict({"hello": "world"})


def test_datamodule_alias():
    assert LightningDataModule is DataModule
