"""Ports of Lightning 2.6's ``tests_pytorch/models/test_hooks.py``: the order in which ``fit``,
``validate``, ``test`` and ``predict`` call the module's and the callbacks' hooks, and the
train/eval mode of every submodule.

Same names, inputs and expected lists, with these changes:

* Hooks that do not exist in MLX or here are dropped from the expected lists:
  ``configure_callbacks``, ``prepare_data``, ``configure_model``, ``*_dataloader`` (the loaders
  are passed to the Trainer), ``zero_grad`` and ``on_before_zero_grad``/``optimizer_zero_grad``
  (MLX has no gradient buffers), ``on_before_batch_transfer``, ``transfer_batch_to_device``,
  ``on_after_batch_transfer`` (unified memory), ``forward`` (``__call__`` of an MLX module),
  ``on_before_backward``, ``backward``, ``on_after_backward``, ``clip_gradients``,
  ``configure_gradient_clipping``, ``optimizer_step``, ``lr_scheduler_step`` (the update is one
  fused step; schedules are the optimizer's), ``on_validation_model_zero_grad``.
* ``on_before_optimizer_step`` runs before ``training_step``: the forward, backward and update
  are one compiled function, so the hook sees the optimizer before the step (documented in
  docs/api/training.md, "Differences from Lightning").
* The Trainers run with ``compile=False``: a compiled step calls ``training_step`` /
  ``validation_step`` when it is traced, not on every batch.
* The checkpoint a hook receives is this Trainer's ``trainer_state.json`` dict: it is matched on
  the keys both have (``epoch``, ``global_step``).
* Left out: ``automatic_optimization=False`` (no manual optimization); the GPU, ``16-mixed``,
  DeepSpeed and DDP cases; ``test_on_before_zero_grad_called``, ``test_apply_batch_transfer_handler``,
  ``test_transfer_batch_hook_ddp`` (hooks MLX has no use for); ``test_trainer_datamodule_hook_system``
  and ``test_load_from_checkpoint_hook_calls`` (DataModule / ``load_from_checkpoint``: not here);
  ``test_hooks_with_different_argument_names`` (several test/predict loaders, ``dataloader_idx``).
  ``test_trainer_model_hook_system_predict`` passes a loader of 2 batches instead of
  ``limit_predict_batches=2``, and ``validate``/``test`` are called without ``verbose=False``.
"""

from __future__ import annotations

import inspect
from functools import partial, update_wrapper
from inspect import getmembers, isfunction
from unittest.mock import ANY

import mlx.core as mx
import mlx.nn as nn
import pytest
from boring_classes import BoringModel, RandomDataset, fit, test, validate

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import Callback


class _State(dict):
    """The keys of a saved/loaded checkpoint that Lightning's and this Trainer's share."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and all(other.get(k) == v for k, v in self.items())


def overridden(model, name):
    """Lightning's ``is_overridden``: the instance's method is not TrainModule's own."""
    method = getattr(model, name, None)
    if method is None:
        return False
    return getattr(inspect.unwrap(method), "__func__", method) is not getattr(TrainModule, name)


def get_members(cls):
    return {h for h, _ in getmembers(cls, predicate=isfunction) if not h.startswith("_")}


class HookedCallback(Callback):
    def __init__(self, called):
        def call(hook, fn, *args, **kwargs):
            out = fn(*args, **kwargs)
            d = {"name": f"Callback.{hook}"}
            if args:
                d["args"] = args
            if kwargs:
                d["kwargs"] = kwargs
            called.append(d)
            return out

        for h in get_members(Callback):
            attr = getattr(self, h)
            partial_h = partial(call, h, attr)
            update_wrapper(partial_h, attr)
            setattr(self, h, partial_h)

    def state_dict(*args, **kwargs):
        return {"foo": True}


class HookedModel(BoringModel):
    def __init__(self, called):
        super().__init__()
        pl_module_hooks = get_members(TrainModule)
        # remove non-hooks
        pl_module_hooks.difference_update({"log", "log_dict", "compute_loss", "load_checkpoint"})
        # remove most `nn.Module` hooks
        module_hooks = get_members(nn.Module)
        module_hooks.difference_update({"train"})
        pl_module_hooks.difference_update(module_hooks)

        def call(hook, fn, *args, **kwargs):
            out = fn(*args, **kwargs)
            d = {"name": hook}
            if args:
                d["args"] = args
            if kwargs:
                d["kwargs"] = kwargs
            called.append(d)
            return out

        for h in pl_module_hooks:
            attr = getattr(self, h)
            partial_h = partial(call, h, attr)
            update_wrapper(partial_h, attr)
            setattr(self, h, partial_h)

    # override so that it gets called
    def on_validation_model_train(self): ...

    # override so that it gets called
    def on_test_model_train(self): ...

    @staticmethod
    def _train_batch(trainer, model, batches, current_epoch=0, current_batch=0):
        out = []
        for i in range(current_batch, batches):
            out.extend(
                [
                    {"name": "Callback.on_train_batch_start", "args": (trainer, model, ANY, i)},
                    {"name": "on_train_batch_start", "args": (ANY, i)},
                    # the update is fused with the step: the hook comes first
                    {"name": "Callback.on_before_optimizer_step", "args": (trainer, model, ANY)},
                    {"name": "on_before_optimizer_step", "args": (ANY,)},
                    {"name": "training_step", "args": (ANY, i)},
                    {
                        "name": "Callback.on_train_batch_end",
                        "args": (trainer, model, {"loss": ANY}, ANY, i),
                    },
                    {"name": "on_train_batch_end", "args": ({"loss": ANY}, ANY, i)},
                ]
            )
        return out

    @staticmethod
    def _eval_epoch(fn, trainer, model, batches, key):
        return [
            {"name": f"Callback.on_{fn}_epoch_start", "args": (trainer, model)},
            {"name": f"on_{fn}_epoch_start"},
            *HookedModel._eval_batch(fn, trainer, model, batches, key),
            {"name": f"Callback.on_{fn}_epoch_end", "args": (trainer, model)},
            {"name": f"on_{fn}_epoch_end"},
        ]

    @staticmethod
    def _eval_batch(fn, trainer, model, batches, key):
        out = []
        outputs = {key: ANY}
        for i in range(batches):
            out.extend(
                [
                    {"name": f"Callback.on_{fn}_batch_start", "args": (trainer, model, ANY, i)},
                    {"name": f"on_{fn}_batch_start", "args": (ANY, i)},
                    {"name": f"{fn}_step", "args": (ANY, i)},
                    {
                        "name": f"Callback.on_{fn}_batch_end",
                        "args": (trainer, model, outputs, ANY, i),
                    },
                    {"name": f"on_{fn}_batch_end", "args": (outputs, ANY, i)},
                ]
            )
        return out

    @staticmethod
    def _predict_batch(trainer, model, batches):
        out = []
        for i in range(batches):
            out.extend(
                [
                    {"name": "Callback.on_predict_batch_start", "args": (trainer, model, ANY, i)},
                    {"name": "on_predict_batch_start", "args": (ANY, i)},
                    {"name": "predict_step", "args": (ANY, i)},
                    {
                        "name": "Callback.on_predict_batch_end",
                        "args": (trainer, model, ANY, ANY, i),
                    },
                    {"name": "on_predict_batch_end", "args": (ANY, ANY, i)},
                ]
            )
        return out


@pytest.mark.parametrize("override_on_validation_model_train", [True, False])
def test_trainer_model_hook_system_fit(override_on_validation_model_train, tmp_path):
    called = []
    model = HookedModel(called)

    if not override_on_validation_model_train:
        model.on_validation_model_train = None
    assert overridden(model, "on_validation_model_train") == override_on_validation_model_train

    callback = HookedCallback(called)
    train_batches = 2
    val_batches = 2
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=train_batches,
        limit_val_batches=val_batches,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        devices=1,
        compile=False,
    )
    fit(trainer, model)
    saved_ckpt = _State({"epoch": 0, "global_step": train_batches})
    expected = [
        {"name": "Callback.setup", "args": (trainer, model), "kwargs": {"stage": "fit"}},
        {"name": "setup", "kwargs": {"stage": "fit"}},
        {"name": "configure_optimizers"},
        {"name": "Callback.on_fit_start", "args": (trainer, model)},
        {"name": "on_fit_start"},
        {"name": "Callback.on_sanity_check_start", "args": (trainer, model)},
        {"name": "train", "args": (False,)},
        {"name": "on_validation_model_eval"},
        {"name": "Callback.on_validation_start", "args": (trainer, model)},
        {"name": "on_validation_start"},
        *model._eval_epoch("validation", trainer, model, val_batches, "x"),
        {"name": "Callback.on_validation_end", "args": (trainer, model)},
        {"name": "on_validation_end"},
        *([{"name": "on_validation_model_train"}] if override_on_validation_model_train else []),
        {"name": "Callback.on_sanity_check_end", "args": (trainer, model)},
        {"name": "Callback.on_train_start", "args": (trainer, model)},
        {"name": "on_train_start"},
        {"name": "Callback.on_train_epoch_start", "args": (trainer, model)},
        {"name": "on_train_epoch_start"},
        *model._train_batch(trainer, model, train_batches),
        {"name": "train", "args": (False,)},
        {"name": "on_validation_model_eval"},
        {"name": "Callback.on_validation_start", "args": (trainer, model)},
        {"name": "on_validation_start"},
        *model._eval_epoch("validation", trainer, model, val_batches, "x"),
        {"name": "Callback.on_validation_end", "args": (trainer, model)},
        {"name": "on_validation_end"},
        *([{"name": "on_validation_model_train"}] if override_on_validation_model_train else []),
        {"name": "Callback.on_train_epoch_end", "args": (trainer, model)},
        {
            "name": "on_train_epoch_end"
        },  # before ModelCheckpoint because it's a "monitoring callback"
        # `ModelCheckpoint.save_checkpoint` is called here
        {"name": "Callback.state_dict"},
        {"name": "Callback.on_save_checkpoint", "args": (trainer, model, saved_ckpt)},
        {"name": "on_save_checkpoint", "args": (saved_ckpt,)},
        {"name": "Callback.on_train_end", "args": (trainer, model)},
        {"name": "on_train_end"},
        {"name": "Callback.on_fit_end", "args": (trainer, model)},
        {"name": "on_fit_end"},
        {"name": "Callback.teardown", "args": (trainer, model), "kwargs": {"stage": "fit"}},
        {"name": "teardown", "kwargs": {"stage": "fit"}},
    ]
    assert expected == called  # ANY first: an mx.array compared with ANY is not NotImplemented


def test_trainer_model_hook_system_fit_no_val_and_resume_max_epochs(tmp_path):
    # initial training to get a checkpoint
    model = BoringModel()
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[HookedCallback([])],
    )
    fit(trainer, model)
    best_model_path = trainer.checkpoint_callback.best_model_path

    called = []
    callback = HookedCallback(called)
    # already performed 1 step, resume and do 2 more
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        compile=False,
    )

    # resume from checkpoint with HookedModel
    model = HookedModel(called)
    fit(trainer, model, ckpt_path=best_model_path)
    loaded_ckpt = _State({"epoch": 0, "global_step": 2})
    saved_ckpt = _State({**loaded_ckpt, "global_step": 4, "epoch": 1})
    expected = [
        {"name": "Callback.setup", "args": (trainer, model), "kwargs": {"stage": "fit"}},
        {"name": "setup", "kwargs": {"stage": "fit"}},
        {"name": "on_load_checkpoint", "args": (loaded_ckpt,)},
        {"name": "Callback.on_load_checkpoint", "args": (trainer, model, loaded_ckpt)},
        {"name": "Callback.load_state_dict", "args": ({"foo": True},)},
        {"name": "configure_optimizers"},
        {"name": "Callback.on_fit_start", "args": (trainer, model)},
        {"name": "on_fit_start"},
        {"name": "Callback.on_train_start", "args": (trainer, model)},
        {"name": "on_train_start"},
        {"name": "Callback.on_train_epoch_start", "args": (trainer, model)},
        {"name": "on_train_epoch_start"},
        *model._train_batch(trainer, model, 2, current_epoch=1, current_batch=0),
        {"name": "Callback.on_train_epoch_end", "args": (trainer, model)},
        {
            "name": "on_train_epoch_end"
        },  # before ModelCheckpoint because it's a "monitoring callback"
        # `ModelCheckpoint.save_checkpoint` is called here
        {"name": "Callback.state_dict"},
        {"name": "Callback.on_save_checkpoint", "args": (trainer, model, saved_ckpt)},
        {"name": "on_save_checkpoint", "args": (saved_ckpt,)},
        {"name": "Callback.on_train_end", "args": (trainer, model)},
        {"name": "on_train_end"},
        {"name": "Callback.on_fit_end", "args": (trainer, model)},
        {"name": "on_fit_end"},
        {"name": "Callback.teardown", "args": (trainer, model), "kwargs": {"stage": "fit"}},
        {"name": "teardown", "kwargs": {"stage": "fit"}},
    ]
    assert expected == called  # ANY first: an mx.array compared with ANY is not NotImplemented


def test_trainer_model_hook_system_fit_no_val_and_resume_max_steps(tmp_path):
    # initial training to get a checkpoint
    model = BoringModel()
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        max_steps=1,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[HookedCallback([])],
    )
    fit(trainer, model)
    best_model_path = trainer.checkpoint_callback.best_model_path

    # resume from checkpoint with HookedModel
    called = []
    model = HookedModel(called)
    callback = HookedCallback(called)

    # already performed 1 step, resume and do 2 more
    train_batches = 2
    steps_after_reload = 1 + train_batches
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        max_steps=steps_after_reload,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        compile=False,
    )

    fit(trainer, model, ckpt_path=best_model_path)
    loaded_ckpt = _State({"epoch": 0, "global_step": 1})
    saved_ckpt = _State({**loaded_ckpt, "global_step": steps_after_reload})
    expected = [
        {"name": "Callback.setup", "args": (trainer, model), "kwargs": {"stage": "fit"}},
        {"name": "setup", "kwargs": {"stage": "fit"}},
        {"name": "on_load_checkpoint", "args": (loaded_ckpt,)},
        {"name": "Callback.on_load_checkpoint", "args": (trainer, model, loaded_ckpt)},
        {"name": "Callback.load_state_dict", "args": ({"foo": True},)},
        {"name": "configure_optimizers"},
        {"name": "Callback.on_fit_start", "args": (trainer, model)},
        {"name": "on_fit_start"},
        {"name": "Callback.on_train_start", "args": (trainer, model)},
        {"name": "on_train_start"},
        *model._train_batch(trainer, model, steps_after_reload, current_batch=1),
        {"name": "Callback.on_train_epoch_end", "args": (trainer, model)},
        {
            "name": "on_train_epoch_end"
        },  # before ModelCheckpoint because it's a "monitoring callback"
        # `ModelCheckpoint.save_checkpoint` is called here
        {"name": "Callback.state_dict"},
        {"name": "Callback.on_save_checkpoint", "args": (trainer, model, saved_ckpt)},
        {"name": "on_save_checkpoint", "args": (saved_ckpt,)},
        {"name": "Callback.on_train_end", "args": (trainer, model)},
        {"name": "on_train_end"},
        {"name": "Callback.on_fit_end", "args": (trainer, model)},
        {"name": "on_fit_end"},
        {"name": "Callback.teardown", "args": (trainer, model), "kwargs": {"stage": "fit"}},
        {"name": "teardown", "kwargs": {"stage": "fit"}},
    ]
    assert expected == called  # ANY first: an mx.array compared with ANY is not NotImplemented


@pytest.mark.parametrize("batches", [0, 2])
@pytest.mark.parametrize(
    ("verb", "noun", "dataloader", "key"),
    [("validate", "validation", "val", "x"), ("test", "test", "test", "y")],
)
@pytest.mark.parametrize("override_on_x_model_train", [True, False])
def test_trainer_model_hook_system_eval(
    tmp_path, override_on_x_model_train, batches, verb, noun, dataloader, key
):
    called = []
    model = HookedModel(called)
    if not override_on_x_model_train:
        setattr(model, f"on_{noun}_model_train", None)
    assert overridden(model, f"on_{noun}_model_train") == override_on_x_model_train
    callback = HookedCallback(called)
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_val_batches=batches,
        limit_test_batches=batches,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        compile=False,
    )
    fn = {"validate": validate, "test": test}[verb]
    fn(trainer, model)
    hooks = [
        {"name": "train", "args": (False,)},
        {"name": f"on_{noun}_model_eval"},
        {"name": f"Callback.on_{noun}_start", "args": (trainer, model)},
        {"name": f"on_{noun}_start"},
        *model._eval_epoch(noun, trainer, model, batches, key),
        {"name": f"Callback.on_{noun}_end", "args": (trainer, model)},
        {"name": f"on_{noun}_end"},
        *([{"name": f"on_{noun}_model_train"}] if override_on_x_model_train else []),
    ]
    expected = [
        {"name": "Callback.setup", "args": (trainer, model), "kwargs": {"stage": verb}},
        {"name": "setup", "kwargs": {"stage": verb}},
        *(hooks if batches else []),
        {"name": "Callback.teardown", "args": (trainer, model), "kwargs": {"stage": verb}},
        {"name": "teardown", "kwargs": {"stage": verb}},
    ]
    assert expected == called  # ANY first: an mx.array compared with ANY is not NotImplemented


def test_trainer_model_hook_system_predict(tmp_path):
    called = []
    model = HookedModel(called)
    callback = HookedCallback(called)
    batches = 2
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        callbacks=[callback],
    )
    trainer.predict(model, DataLoader(RandomDataset(32, batches)))
    expected = [
        {"name": "Callback.setup", "args": (trainer, model), "kwargs": {"stage": "predict"}},
        {"name": "setup", "kwargs": {"stage": "predict"}},
        {"name": "train", "args": (False,)},
        {"name": "on_predict_model_eval"},
        {"name": "Callback.on_predict_start", "args": (trainer, model)},
        {"name": "on_predict_start"},
        {"name": "Callback.on_predict_epoch_start", "args": (trainer, model)},
        {"name": "on_predict_epoch_start"},
        *model._predict_batch(trainer, model, batches),
        {"name": "Callback.on_predict_epoch_end", "args": (trainer, model)},
        {"name": "on_predict_epoch_end"},
        {"name": "Callback.on_predict_end", "args": (trainer, model)},
        {"name": "on_predict_end"},
        # TODO: `on_predict_model_train`
        {"name": "Callback.teardown", "args": (trainer, model), "kwargs": {"stage": "predict"}},
        {"name": "teardown", "kwargs": {"stage": "predict"}},
    ]
    assert expected == called  # ANY first: an mx.array compared with ANY is not NotImplemented


def test_train_eval_mode_restored(tmp_path):
    """Test that the trainer restores the `training` mode of all submodules to what it was before entering the loop."""

    class MixedTrainModeModule(BoringModel):
        def __init__(self):
            super().__init__()
            # A frozen submodule should keep its mode, regardless of whether we're training or not
            self.frozen = nn.Linear(2, 2)
            self.frozen.eval()
            self.frozen.freeze()

        def _trainable(self, name):  # torch: `self.<name>.requires_grad`
            return name in _flat(self.trainable_parameters())

        def training_step(self, *args, **kwargs):
            assert self._trainable("layer.weight")
            assert self.layer.training
            assert not self.frozen.training
            assert not self._trainable("frozen.weight")
            return super().training_step(*args, **kwargs)

        def validation_step(self, *args, **kwargs):
            assert self._trainable("layer.weight")
            assert not self.layer.training
            assert not self.frozen.training
            assert not self._trainable("frozen.weight")
            return super().validation_step(*args, **kwargs)

        def test_step(self, *args, **kwargs):
            assert self._trainable("layer.weight")
            assert not self.layer.training
            assert not self.frozen.training
            assert not self._trainable("frozen.weight")
            return super().test_step(*args, **kwargs)

        def predict_step(self, *args, **kwargs):
            assert self._trainable("layer.weight")
            assert not self.layer.training
            assert not self.frozen.training
            assert not self._trainable("frozen.weight")
            return super().predict_step(*args, **kwargs)

    model = MixedTrainModeModule()
    trainer = Trainer(
        devices=1,
        default_root_dir=tmp_path,
        max_epochs=1,
        val_check_interval=1,
        limit_train_batches=3,
        limit_val_batches=2,
        limit_test_batches=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        compile=False,
    )
    with pytest.warns(UserWarning, match=r"Found 1 module\(s\) in eval mode"):
        fit(trainer, model)
    validate(trainer, model)
    test(trainer, model)
    trainer.predict(model, DataLoader(RandomDataset(32, 2)))
    # after every loop, each submodule has the mode the user gave it
    assert model.training and model.layer.training and not model.frozen.training


def _flat(tree):
    from mlx.utils import tree_flatten

    return [k for k, v in tree_flatten(tree) if isinstance(v, mx.array)]
