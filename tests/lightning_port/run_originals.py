"""Run the Lightning originals of the tests ported here, on real Lightning, to check that what
the ports assert is Lightning's behaviour.

    python tests/lightning_port/run_originals.py PATH/TO/pytorch-lightning/tests

``PATH`` is a checkout of Lightning's repository at the anchor's version (2.6.x; the anchor venv
holds the package, not its tests). The originals run with the anchor venv's interpreter; pytest
and tensorboardX, which the anchor venv lacks, come from this workspace's venv through
``PYTHONPATH`` (a folder of links to those packages only, and a stub of jsonargparse, which one
file imports for tests not run here): nothing is installed into the anchor venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANCHOR = ROOT / ".venv-anchor" / "bin" / "python"
LOGGING = "tests_pytorch/trainer/logging_"
ORIGINALS = [
    *(
        f"{LOGGING}/test_train_loop_logging.py::{name}"
        for name in (
            "test__training_step__log",
            "test__training_step__epoch_end__log",
            "test__training_step__log_max_reduce_fx",
            "test_log_works_in_train_callback",
            "test_progress_bar_metrics_contains_values_on_train_epoch_end",
            "test_log_invalid_raises",
            "test_logging_raises",
            "test_sanity_metrics_are_reset",
            "test_on_epoch_logging_with_sum_and_on_batch_start",
            "test_log_metrics_epoch_step_values",
            "test_log_on_train_start",
            "test_unsqueezed_tensor_logging",
        )
    ),
    *(
        f"{LOGGING}/test_eval_loop_logging.py::{name}"
        for name in (
            "test__validation_step__log",
            "test__validation_step__epoch_end__log",
            "test_eval_epoch_logging",
            "test_eval_float_logging",
            "test_eval_logging_auto_reduce",
            "test_eval_epoch_only_logging",
            "test_log_works_in_val_callback",
            "test_validation_step_log_with_tensorboard",
            "test_eval_step_logging",
            "test_multi_dataloaders_add_suffix_properly",
            "test_log_works_in_test_callback",
            "test_multiple_dataloaders_reset",
            "test_logging_results_with_no_dataloader_idx",
            "test_logging_multi_dataloader_on_epoch_end",
        )
    ),
    *(
        f"tests_pytorch/loops/test_evaluation_loop.py::test_invalid_dataloader_idx_raises_{name}"
        for name in ("step", "batch_start", "batch_end")
    ),
    *(
        f"tests_pytorch/loops/test_prediction_loop.py::test_invalid_dataloader_idx_raises_{name}"
        for name in ("step", "batch_start", "batch_end")
    ),
    "tests_pytorch/models/test_hooks.py::test_trainer_datamodule_hook_system",
    *(
        f"tests_pytorch/core/test_datamodules.py::{name}"
        for name in (
            "test_hooks_no_recursion_error",
            "test_helper_boringdatamodule",
            "test_helper_boringdatamodule_with_verbose_setup",
            "test_train_loop_only",
            "test_train_val_loop_only",
            "test_dm_checkpoint_save_and_load",
            "test_full_loop",
            "test_dm_init_from_datasets_dataloaders",
            "test_dm_init_from_datasets_with_init_params",
            "test_hyperparameters_saving",
        )
    ),
    *(
        f"tests_pytorch/models/test_hparams.py::{name}"
        for name in (
            "test_namespace_hparams",
            "test_dict_hparams",
            "test_explicit_args_hparams",
            "test_implicit_args_hparams",
            "test_explicit_missing_args_hparams",
            "test_class_nesting",
            "test_collect_init_arguments",
            "test_collect_init_arguments_in_other_methods",
            "test_save_hyperparameters_under_composition",
            "test_save_hyperparameters_ignore",
            "test_collect_init_arguments_with_local_vars",
            "test_single_config_models_fail",
            "test_ignore_args_list_hparams",
            "test_hparams_ignore_in_subclass_overrides_base",
            "test_save_no_parameters",
            "test_empty_hparams_container",
            "test_hparams_name_from_container",
            "test_dataclass_lightning_module",
            "test_dataclass_with_init_false_fields",
            "test_adding_datamodule_hparams",
            "test_no_datamodule_for_hparams",
            "test_colliding_hparams",
        )
    ),
    f"{LOGGING}/test_logger_connector.py::test_fx_validator_integration",
    f"{LOGGING}/test_logger_connector.py::test_logged_metrics_has_logged_epoch_value",
    f"{LOGGING}/test_loop_logging.py::test_default_level_for_hooks_that_support_logging",
    "tests_pytorch/callbacks/test_early_stopping.py::test_early_stopping_patience_train",
    "tests_pytorch/checkpointing/test_model_checkpoint.py::test_model_checkpoint_score_and_ckpt",
    *(
        f"tests_pytorch/callbacks/test_timer.py::{name}"
        for name in (
            "test_timer_parse_duration",
            "test_timer_parse_duration_misconfiguration",
            "test_timer_interval_choice",
            "test_timer_zero_duration_stop",
            "test_timer_duration_min_steps_override",
            "test_timer_track_stages",
        )
    ),
    "tests_pytorch/trainer/test_trainer.py::test_disabled_training",
    "tests_pytorch/trainer/test_trainer.py::test_disabled_validation",
    *(
        f"tests_pytorch/checkpointing/test_model_checkpoint.py::{name}"
        for name in (
            "test_model_checkpoint_format_checkpoint_name",
            "test_none_monitor_top_k",
            "test_none_monitor_not_alternating",
            "test_configure_model_checkpoint",
            "test_current_score",
            "test_current_score_when_nan",
            "test_model_checkpoint_path",
        )
    ),
    "tests_pytorch/callbacks/test_early_stopping.py::test_early_stopping_no_extraneous_invocations",
    "tests_pytorch/callbacks/test_early_stopping.py::test_early_stopping_reasons",
    *(
        f"tests_pytorch/callbacks/test_lr_monitor.py::{name}"
        for name in (
            "test_lr_monitor_single_lr",
            "test_lr_monitor_single_lr_with_momentum",
            "test_lr_monitor_no_lr_scheduler_single_lr",
            "test_lr_monitor_no_lr_scheduler_single_lr_with_momentum",
            "test_log_momentum_no_momentum_optimizer_no_lr_scheduler",
        )
    ),
    *(
        f"tests_pytorch/trainer/flags/test_val_check_interval.py::{name}"
        for name in (
            "test_val_check_interval_float_with_none_check_val_every_n_epoch",
            "test_time_based_val_check_interval",
            "test_time_and_epoch_gated_val_check",
        )
    ),
    "tests_pytorch/trainer/test_trainer.py::test_checkpoint_path_input_last",
    "tests_pytorch/trainer/test_trainer.py::test_checkpoint_path_input",
    "tests_pytorch/trainer/flags/test_min_max_epochs.py::test_max_epochs_not_set_warning",
    "tests_pytorch/trainer/test_states.py::test_interrupt_state_on_keyboard_interrupt",
    "tests_pytorch/callbacks/test_timer.py::test_timer_time_remaining",
    "tests_pytorch/callbacks/test_callbacks.py::test_resume_incomplete_callbacks_list_warning",
    "tests_pytorch/models/test_restore.py::test_restarting_mid_epoch_raises_warning",
    *(
        f"tests_pytorch/models/test_hooks.py::{name}"
        for name in (
            "test_trainer_model_hook_system_fit",
            "test_trainer_model_hook_system_fit_no_val_and_resume_max_epochs",
            "test_trainer_model_hook_system_fit_no_val_and_resume_max_steps",
            "test_trainer_model_hook_system_eval",
            "test_trainer_model_hook_system_predict",
            "test_train_eval_mode_restored",
            "test_hooks_with_different_argument_names",
            "test_load_from_checkpoint_hook_calls",
        )
    ),
    "tests_pytorch/loops/test_training_loop_flow_scalar.py::test_train_step_no_return",
    "tests_pytorch/loops/test_training_loop_flow_scalar.py::test_training_step_no_return_when_even",
    "tests_pytorch/loops/test_training_epoch_loop.py::test_no_batch_idx_gradient_accumulation",
    "tests_pytorch/loops/test_training_loop.py::test_eval_mode_warning",
    "tests_pytorch/loops/test_training_loop.py::test_on_train_batch_start_return_minus_one",
    "tests_pytorch/loops/test_training_loop.py::test_should_stop_mid_epoch",
    *(
        f"tests_pytorch/trainer/test_trainer.py::{name}"
        for name in (
            "test_predict_return_predictions_cpu",
            "test_repeated_fit_calls_with_max_epochs_and_steps",
            "test_trainer_access_in_configure_optimizers",
        )
    ),
    "tests_pytorch/loops/test_prediction_loop.py::test_prediction_loop_stores_predictions",
    "tests_pytorch/trainer/optimization/test_optimizers.py::test_none_optimizer",
]
_PYTEST = (
    "pytest",
    "_pytest",
    "pluggy",
    "iniconfig",
    "py.py",
    "cloudpickle",
    "tensorboardX",
    "google",
)
_INFOS = ("pytest", "pluggy", "iniconfig", "tensorboardx", "protobuf")


def main() -> int:
    tests = Path(sys.argv[1]).resolve()
    import pytest  # this venv's: linked into the overlay below

    site = Path(pytest.__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as overlay:
        for name in _PYTEST:
            if (site / name).exists():
                os.symlink(site / name, Path(overlay) / name)
        for info in site.glob("*.dist-info"):
            if info.name.split("-")[0] in _INFOS:
                os.symlink(info, Path(overlay) / info.name)
        # test_model_checkpoint.py imports jsonargparse for other tests; the anchor lacks it
        (Path(overlay) / "jsonargparse.py").write_text("ArgumentParser = None\n")
        env = {**os.environ, "PYTHONPATH": overlay}
        command = [str(ANCHOR), "-m", "pytest", "-q", "-p", "no:cacheprovider", *ORIGINALS]
        return subprocess.run(command, cwd=tests, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
