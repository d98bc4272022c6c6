"""Ports of Lightning 2.6's ``self.log`` validation tests:
``trainer/logging_/test_logger_connector.py::test_fx_validator_integration`` and
``::test_logged_metrics_has_logged_epoch_value``, and
``trainer/logging_/test_loop_logging.py::test_default_level_for_hooks_that_support_logging``.

Same names and assertions over our hooks (``get_members`` of ``TrainModule`` and ``Callback``);
Lightning's hooks that do not exist here (``on_before_backward``,
``configure_model``, ``on_validation_model_zero_grad``, ...) are left out, and so is
``compute_loss`` (not a hook: it runs inside the steps). The default-level test checks the
``(on_step, on_epoch)`` that ``self.log`` resolves per hook (Lightning mocks the private
``_ResultCollection.log`` for it).
"""

from __future__ import annotations

import inspect
from functools import partial

import mlx.nn as nn
import pytest
from boring_classes import BoringModel, fit

from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import Callback

MisconfigurationException = ValueError  # Lightning's MisconfigurationException


def get_members(cls):
    return {
        h for h, _ in inspect.getmembers(cls, predicate=inspect.isfunction) if not h.startswith("_")
    }


class HookedCallback(Callback):
    def __init__(self, not_supported):
        def call(hook, trainer=None, model=None, *_, **__):
            if trainer is None:
                # `state_dict`, `load_state_dict` do not have the `Trainer` available
                assert hook in ("state_dict", "load_state_dict")
                return {} if hook == "state_dict" else None  # (ours saves what state_dict returns)

            lightning_module = trainer.module or model

            if hook in not_supported:
                with pytest.raises(MisconfigurationException, match=not_supported[hook]):
                    lightning_module.log("anything", 1)
            else:
                lightning_module.log(hook, 1)

        for h in get_members(Callback):
            setattr(self, h, partial(call, h))


class HookedModel(BoringModel):
    def __init__(self, not_supported):
        super().__init__()
        pl_module_hooks = get_members(TrainModule)
        pl_module_hooks.difference_update({"log", "log_dict", "compute_loss", "load_checkpoint"})
        # remove `nn.Module` hooks
        module_hooks = get_members(nn.Module)
        pl_module_hooks.difference_update(module_hooks)

        def call(hook, fn, *args, **kwargs):
            out = fn(*args, **kwargs)

            if hook in not_supported:
                with pytest.raises(MisconfigurationException, match=not_supported[hook]):
                    self.log("anything", 1)
            else:
                self.log(hook, 1)
            return out

        for h in pl_module_hooks:
            attr = getattr(self, h)
            setattr(self, h, partial(call, h, attr))


def test_fx_validator_integration(tmp_path):
    """Tries to log inside all `LightningModule` and `Callback` hooks to check any expected errors."""
    not_supported = {
        None: "`self.trainer` reference is not registered",
        "setup": "You can't",
        "configure_optimizers": "You can't",
        "on_fit_start": "You can't",
        "train_dataloader": "You can't",
        "val_dataloader": "You can't",
        "on_validation_end": "You can't",
        "on_train_end": "You can't",
        "on_fit_end": "You can't",
        "teardown": "You can't",
        "on_sanity_check_start": "You can't",
        "on_sanity_check_end": "You can't",
        "prepare_data": "You can't",
        "on_validation_model_eval": "You can't",
        "on_validation_model_train": "You can't",
        "on_save_checkpoint": "You can't",
        "on_load_checkpoint": "You can't",
        "on_exception": "You can't",
    }
    model = HookedModel(not_supported)

    with pytest.warns(UserWarning, match=not_supported[None]):
        model.log("foo", 1)

    callback = HookedCallback(not_supported)
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=1,
        limit_val_batches=1,
        limit_test_batches=1,
        callbacks=callback,
    )
    trainer.fit(model)

    not_supported.update(
        {
            # `lightning_module` ref is now present from the `fit` call
            "test_dataloader": "You can't",
            "on_test_model_eval": "You can't",
            "on_test_model_train": "You can't",
            "on_test_end": "You can't",
        }
    )
    trainer.test(model, verbose=False)

    not_supported.update(dict.fromkeys(not_supported, "result collection is not registered yet"))
    not_supported.update(
        {
            "predict_dataloader": "result collection is not registered yet",
            "on_predict_model_eval": "result collection is not registered yet",
            "on_predict_start": "result collection is not registered yet",
            "on_predict_epoch_start": "result collection is not registered yet",
            "on_predict_batch_start": "result collection is not registered yet",
            "predict_step": "result collection is not registered yet",
            "on_predict_batch_end": "result collection is not registered yet",
            "on_predict_epoch_end": "result collection is not registered yet",
            "on_predict_end": "result collection is not registered yet",
        }
    )
    trainer.predict(model)


@pytest.mark.parametrize("logger", [False, True])
def test_logged_metrics_has_logged_epoch_value(tmp_path, logger):
    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            self.log("epoch", -batch_idx, logger=True)
            return super().training_step(batch, batch_idx)

    model = TestModel()
    trainer_kwargs = {
        "default_root_dir": tmp_path,
        "limit_train_batches": 2,
        "limit_val_batches": 0,
        "max_epochs": 1,
        "logger": False,
    }
    if logger:
        trainer_kwargs["logger"] = CSVLogger(tmp_path)
    trainer = Trainer(**trainer_kwargs)
    if not logger:
        with pytest.warns(match=r"log\('epoch', ..., logger=True\)` but have no logger"):
            fit(trainer, model)
    else:
        fit(trainer, model)

    # should not get overridden if logged manually
    assert trainer.logged_metrics == {"epoch": -1}


def test_default_level_for_hooks_that_support_logging():
    from mlx_audio.train._log_rules import LOGGING_HOOKS, LogOptions

    def _make_assertion(hooks, on_step, on_epoch):
        for hook in hooks:
            options = LogOptions.make(hook, None, None)
            assert (options.on_step, options.on_epoch) == (on_step, on_epoch), hook

    all_logging_hooks = set(LOGGING_HOOKS)

    hooks = [
        "on_before_optimizer_step",
        "training_step",
        "on_train_batch_start",
        "on_train_batch_end",
    ]
    all_logging_hooks = all_logging_hooks - set(hooks)
    _make_assertion(hooks, on_step=True, on_epoch=False)

    hooks = [
        "on_train_start",
        "on_train_epoch_start",
        "on_train_epoch_end",
    ]
    all_logging_hooks = all_logging_hooks - set(hooks)
    _make_assertion(hooks, on_step=False, on_epoch=True)

    hooks = [
        "on_validation_start",
        "on_validation_epoch_start",
        "on_validation_epoch_end",
        "on_validation_batch_start",
        "on_validation_batch_end",
        "validation_step",
    ]
    all_logging_hooks = all_logging_hooks - set(hooks)
    _make_assertion(hooks, on_step=False, on_epoch=True)

    hooks = [
        "on_test_start",
        "on_test_epoch_start",
        "on_test_epoch_end",
        "on_test_batch_start",
        "on_test_batch_end",
        "test_step",
    ]
    all_logging_hooks = all_logging_hooks - set(hooks)
    _make_assertion(hooks, on_step=False, on_epoch=True)

    # just to ensure we checked all possible logging hooks here
    assert len(all_logging_hooks) == 0
