"""The scenarios of the Lightning differential suite: the same arguments to both frameworks.

Each scenario: ``train``/``val`` batches per epoch (batch size 2), ``runs`` (Trainer arguments
of each consecutive ``fit`` in one directory; ``ckpt_path`` resumes), optional
``checkpoint``/``early_stopping``/``lr_monitor`` arguments, ``stop_at_step`` (a callback sets
``should_stop`` there, as a Timer would), ``no_val``, ``extra_logs`` (``self.log`` calls in the
steps), ``train_epoch_score`` (``on_train_epoch_end`` logs ``train_score``). ``DIFFERENCES`` lists scenarios whose
difference from Lightning is deliberate, with the reason (also in docs/api/training.md).
"""

from __future__ import annotations

from typing import Any


def _s(name: str, runs: list[dict[str, Any]] | dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "runs": runs if isinstance(runs, list) else [runs], **extra}


TOPK = {"monitor": "score", "mode": "min", "save_top_k": 2}

SCENARIOS: list[dict[str, Any]] = [
    # -- max_steps / max_epochs boundaries ------------------------------------------------------
    _s("max_epochs_2", {"max_epochs": 2}),
    _s("max_steps_mid_epoch", {"max_steps": 4}),
    _s("max_steps_epoch_multiple", {"max_steps": 6}),
    _s("max_steps_two_epochs", {"max_steps": 12}),
    _s("max_steps_beats_epochs", {"max_epochs": 5, "max_steps": 8}),
    _s("max_epochs_beats_steps", {"max_epochs": 1, "max_steps": 100}),
    _s("max_epochs_minus_one_with_steps", {"max_epochs": -1, "max_steps": 9}),
    _s("max_steps_minus_one", {"max_epochs": 2, "max_steps": -1}),
    _s("min_epochs_over_early_stop", {"max_epochs": 4, "min_epochs": 3}, stop_at_step=2),
    _s("min_steps_over_early_stop", {"max_epochs": 4, "min_steps": 9}, stop_at_step=2),
    # -- fast_dev_run ---------------------------------------------------------------------------
    _s("fast_dev_run_true", {"fast_dev_run": True}),
    _s("fast_dev_run_3", {"fast_dev_run": 3}),
    _s("fast_dev_run_with_checkpoint", {"fast_dev_run": 2}, checkpoint=dict(TOPK)),
    _s("fast_dev_run_no_val", {"fast_dev_run": 2}, no_val=True),
    # -- limits -----------------------------------------------------------------------------------
    _s("limit_train_int", {"max_epochs": 2, "limit_train_batches": 4}),
    _s("limit_train_float", {"max_epochs": 2, "limit_train_batches": 0.5}),
    _s("limit_train_zero", {"max_epochs": 2, "limit_train_batches": 0}),
    _s("limit_val_int", {"max_epochs": 2, "limit_val_batches": 1}),
    _s("limit_val_float", {"max_epochs": 2, "limit_val_batches": 0.5}),
    _s("limit_val_zero", {"max_epochs": 2, "limit_val_batches": 0}),
    _s("limit_val_zero_checkpoint", {"max_epochs": 2, "limit_val_batches": 0}, checkpoint={}),
    _s("limit_train_zero_float", {"max_epochs": 2, "limit_train_batches": 0.0}),
    _s("limit_val_zero_float", {"max_epochs": 2, "limit_val_batches": 0.0}, checkpoint={}),
    _s(
        "sanity_limited_by_limit_val",
        {"max_epochs": 1, "limit_val_batches": 1, "num_sanity_val_steps": 2},
    ),
    _s("sanity_all", {"max_epochs": 1, "num_sanity_val_steps": -1}),
    _s("sanity_zero", {"max_epochs": 1, "num_sanity_val_steps": 0}),
    _s("no_val_loader", {"max_epochs": 2}, no_val=True),
    # -- val_check_interval / check_val_every_n_epoch -----------------------------------------------
    _s("val_interval_int_dividing", {"max_epochs": 2, "val_check_interval": 3}),
    _s("val_interval_int_not_dividing", {"max_epochs": 2, "val_check_interval": 4}, train=7),
    _s("val_interval_float_half", {"max_epochs": 2, "val_check_interval": 0.5}),
    _s("val_interval_float_third_odd", {"max_epochs": 2, "val_check_interval": 0.34}, train=7),
    _s("val_interval_too_large", {"max_epochs": 1, "val_check_interval": 10}),
    _s("val_every_2_epochs", {"max_epochs": 5, "check_val_every_n_epoch": 2}),
    _s(
        "val_every_n_none_counts_across_epochs",
        {"max_epochs": 3, "check_val_every_n_epoch": None, "val_check_interval": 4},
    ),
    _s(
        "val_every_n_none_large_interval",
        {"max_epochs": 3, "check_val_every_n_epoch": None, "val_check_interval": 10},
    ),
    _s("val_interval_with_max_steps", {"max_steps": 5, "val_check_interval": 2}),
    # -- gradient accumulation ---------------------------------------------------------------------
    _s("accumulate_2_even", {"max_epochs": 2, "accumulate_grad_batches": 2}),
    _s("accumulate_2_odd_epoch", {"max_epochs": 2, "accumulate_grad_batches": 2}, train=7),
    _s("accumulate_4_short_group", {"max_epochs": 2, "accumulate_grad_batches": 4}),
    _s("accumulate_max_steps", {"max_steps": 5, "accumulate_grad_batches": 2}),
    _s(
        "accumulate_val_interval_inside_group",
        {"max_epochs": 2, "accumulate_grad_batches": 2, "val_check_interval": 3},
    ),
    _s(
        "accumulate_limit_train",
        {"max_epochs": 2, "accumulate_grad_batches": 3, "limit_train_batches": 5},
    ),
    _s(
        "accumulate_checkpoint_steps",
        {"max_epochs": 2, "accumulate_grad_batches": 2},
        checkpoint={"every_n_train_steps": 2, "save_top_k": -1},
    ),
    _s(
        "accumulate_log_every_2",
        {"max_epochs": 2, "accumulate_grad_batches": 2, "log_every_n_steps": 2},
    ),
    # -- ModelCheckpoint -----------------------------------------------------------------------------
    _s("ckpt_default", {"max_epochs": 3}, checkpoint={}),
    _s("ckpt_default_no_val", {"max_epochs": 3}, checkpoint={}, no_val=True),
    _s("ckpt_save_last", {"max_epochs": 3}, checkpoint={"save_last": True}),
    _s("ckpt_top_all", {"max_epochs": 3}, checkpoint={"save_top_k": -1}),
    _s("ckpt_top_zero_last", {"max_epochs": 3}, checkpoint={"save_top_k": 0, "save_last": True}),
    _s("ckpt_monitor_top1", {"max_epochs": 5}, checkpoint={"monitor": "score", "save_top_k": 1}),
    _s("ckpt_monitor_top2", {"max_epochs": 6}, checkpoint=dict(TOPK)),
    _s(
        "ckpt_monitor_max_top2",
        {"max_epochs": 6},
        checkpoint={"monitor": "score", "mode": "max", "save_top_k": 2},
    ),
    _s("ckpt_monitor_all", {"max_epochs": 4}, checkpoint={"monitor": "score", "save_top_k": -1}),
    _s("ckpt_monitor_top2_last", {"max_epochs": 5}, checkpoint={**TOPK, "save_last": True}),
    _s(
        "ckpt_every_n_steps_dividing",
        {"max_epochs": 2},
        checkpoint={"every_n_train_steps": 3, "save_top_k": -1},
    ),
    _s(
        "ckpt_every_n_steps_not_dividing",
        {"max_epochs": 2},
        checkpoint={"every_n_train_steps": 4, "save_top_k": -1},
    ),
    _s("ckpt_every_n_steps_top1", {"max_epochs": 2}, checkpoint={"every_n_train_steps": 2}),
    _s(
        "ckpt_every_n_steps_monitor",
        {"max_epochs": 3},
        checkpoint={"every_n_train_steps": 2, **TOPK},
    ),
    _s(
        "ckpt_every_n_epochs_2",
        {"max_epochs": 5},
        checkpoint={"every_n_epochs": 2, "save_top_k": -1},
    ),
    _s(
        "ckpt_every_n_epochs_monitor_mid_val",
        {"max_epochs": 4, "val_check_interval": 0.5},
        checkpoint={"every_n_epochs": 2, **TOPK},
    ),
    _s(
        "ckpt_val_half_monitor", {"max_epochs": 3, "val_check_interval": 0.5}, checkpoint=dict(TOPK)
    ),
    _s(
        "ckpt_val_every_2_monitor",
        {"max_epochs": 5, "check_val_every_n_epoch": 2},
        checkpoint=dict(TOPK),
    ),
    _s(
        "ckpt_filename_template",
        {"max_epochs": 3},
        checkpoint={"filename": "{epoch:02d}-{score:.1f}", **TOPK},
    ),
    _s(
        "ckpt_filename_no_metric_names",
        {"max_epochs": 3},
        checkpoint={
            "filename": "m-{epoch}-{step}",
            "auto_insert_metric_name": False,
            "save_top_k": -1,
        },
    ),
    _s("ckpt_max_steps_mid_epoch", {"max_steps": 8}, checkpoint=dict(TOPK)),
    _s("ckpt_max_steps_epoch_end", {"max_steps": 12}, checkpoint=dict(TOPK)),
    # -- EarlyStopping -------------------------------------------------------------------------------
    _s(
        "early_stop_patience_1",
        {"max_epochs": 10},
        early_stopping={"monitor": "score", "patience": 1},
    ),
    _s(
        "early_stop_patience_3",
        {"max_epochs": 12},
        early_stopping={"monitor": "score", "patience": 3},
    ),
    _s(
        "early_stop_min_delta",
        {"max_epochs": 12},
        early_stopping={"monitor": "score", "patience": 2, "min_delta": 1.5},
    ),
    _s(
        "early_stop_max_mode",
        {"max_epochs": 12},
        early_stopping={"monitor": "score", "patience": 2, "mode": "max"},
    ),
    _s(
        "early_stop_mid_epoch",
        {"max_epochs": 6, "val_check_interval": 0.5},
        early_stopping={"monitor": "score", "patience": 2},
    ),
    _s(
        "early_stop_with_checkpoint",
        {"max_epochs": 12},
        early_stopping={"monitor": "score", "patience": 2},
        checkpoint=dict(TOPK),
    ),
    _s(
        "early_stop_threshold",
        {"max_epochs": 12},
        early_stopping={"monitor": "score", "stopping_threshold": 1.5},
    ),
    _s(
        "early_stop_min_epochs",
        {"max_epochs": 12, "min_epochs": 6},
        early_stopping={"monitor": "score", "patience": 1},
    ),
    _s(
        "early_stop_train_epoch_end_metric",
        {"max_epochs": 12},
        train=4,
        train_epoch_score=True,
        early_stopping={
            "monitor": "train_score",
            "mode": "max",
            "patience": 1,
            "check_on_train_epoch_end": True,
        },
    ),
    _s(
        "ckpt_monitor_train_epoch_end_metric",
        {"max_epochs": 6},
        train=4,
        no_val=True,
        train_epoch_score=True,
        checkpoint={"monitor": "train_score", "mode": "min", "save_top_k": 2},
    ),
    _s("stop_on_last_batch", {"max_epochs": 4}, stop_at_step=6, checkpoint=dict(TOPK)),
    _s("stop_mid_epoch", {"max_epochs": 4}, stop_at_step=4, checkpoint=dict(TOPK)),
    # -- logging cadence and the learning-rate monitor ----------------------------------------------
    _s("log_every_2", {"max_epochs": 2, "log_every_n_steps": 2}),
    _s("log_every_4", {"max_epochs": 2, "log_every_n_steps": 4}, train=7),
    _s("log_every_50_default", {"max_epochs": 2, "log_every_n_steps": 50}),
    _s("self_log_in_train_batch_end", {"max_epochs": 2}, log_in_batch_end=True),
    _s(
        "self_log_in_train_batch_end_every_2",
        {"max_epochs": 2, "log_every_n_steps": 2, "accumulate_grad_batches": 2},
        log_in_batch_end=True,
    ),
    _s("lr_monitor_step", {"max_epochs": 2}, lr_monitor={"logging_interval": "step"}),
    _s("lr_monitor_epoch", {"max_epochs": 2}, lr_monitor={"logging_interval": "epoch"}),
    _s(
        "lr_monitor_step_every_3",
        {"max_epochs": 2, "log_every_n_steps": 3},
        lr_monitor={"logging_interval": "step"},
    ),
    # -- self.log options: on_step/on_epoch, reduce_fx, prog_bar, logger, batch_size, per stage --------
    _s(
        "log_opts_train_defaults", {"max_epochs": 2}, extra_logs=[{"stage": "train", "name": "x_a"}]
    ),
    _s(
        "log_opts_train_step_and_epoch",
        {"max_epochs": 2},
        extra_logs=[
            {"stage": "train", "name": "x_a", "on_step": True, "on_epoch": True, "prog_bar": True}
        ],
    ),
    _s(
        "log_opts_train_epoch_reduce",
        {"max_epochs": 2},
        extra_logs=[
            {"stage": "train", "name": "x_mean", "on_step": False, "on_epoch": True},
            {
                "stage": "train",
                "name": "x_sum",
                "on_step": False,
                "on_epoch": True,
                "reduce_fx": "sum",
            },
            {
                "stage": "train",
                "name": "x_max",
                "on_step": False,
                "on_epoch": True,
                "reduce_fx": "max",
            },
            {
                "stage": "train",
                "name": "x_min",
                "on_step": False,
                "on_epoch": True,
                "reduce_fx": "min",
            },
        ],
    ),
    _s(
        "log_opts_train_logger_false",
        {"max_epochs": 2},
        extra_logs=[
            {"stage": "train", "name": "x_hidden", "logger": False, "prog_bar": True},
            {"stage": "train", "name": "x_shown", "on_epoch": True},
        ],
    ),
    _s(
        "log_opts_train_every_2_accumulate",
        {"max_epochs": 2, "log_every_n_steps": 2, "accumulate_grad_batches": 2},
        extra_logs=[
            {"stage": "train", "name": "x_a", "on_step": True, "on_epoch": True},
        ],
    ),
    _s(
        "log_opts_train_batch_size",
        {"max_epochs": 1},
        extra_logs=[
            {"stage": "train", "name": "x_w", "on_step": False, "on_epoch": True, "batch_size": 5},
        ],
    ),
    _s("log_opts_val_defaults", {"max_epochs": 2}, extra_logs=[{"stage": "val", "name": "x_v"}]),
    _s(
        "log_opts_val_reduce_prog_bar",
        {"max_epochs": 2},
        extra_logs=[
            {"stage": "val", "name": "x_vmax", "reduce_fx": "max", "prog_bar": True},
            {"stage": "val", "name": "x_vsum", "reduce_fx": "sum", "logger": False},
        ],
    ),
    _s(
        "log_opts_val_on_step",
        {"max_epochs": 2},
        extra_logs=[{"stage": "val", "name": "x_v", "on_step": True, "on_epoch": False}],
    ),
    _s(
        "log_opts_val_step_and_epoch_mid_epoch",
        {"max_epochs": 2, "val_check_interval": 3},
        extra_logs=[
            {"stage": "val", "name": "x_v", "on_step": True, "on_epoch": True, "prog_bar": True}
        ],
    ),
    _s(
        "log_opts_val_mid_epoch",
        {"max_epochs": 2, "val_check_interval": 3},
        extra_logs=[
            {"stage": "val", "name": "x_v"},
            {"stage": "train", "name": "x_t", "on_epoch": True},
        ],
    ),
    # -- resume with ckpt_path="last" ------------------------------------------------------------------
    _s(
        "resume_epoch_boundary",
        [{"max_epochs": 2}, {"max_epochs": 4, "ckpt_path": "last"}],
        checkpoint={"save_last": True},
    ),
    _s(
        "resume_mid_epoch_steps",
        [{"max_steps": 4}, {"max_steps": 10, "ckpt_path": "last"}],
        checkpoint={"save_last": True, "every_n_train_steps": 2},
    ),
    _s(
        "resume_mid_epoch_topk",
        [{"max_steps": 8}, {"max_epochs": 4, "ckpt_path": "last"}],
        checkpoint={**TOPK, "save_last": True},
    ),
    _s(
        "resume_finished_run",
        [{"max_epochs": 2}, {"max_epochs": 2, "ckpt_path": "last"}],
        checkpoint={"save_last": True},
    ),
    _s(
        "resume_accumulate",
        [
            {"max_steps": 3, "accumulate_grad_batches": 2},
            {"max_epochs": 3, "accumulate_grad_batches": 2, "ckpt_path": "last"},
        ],
        checkpoint={"save_last": True, "every_n_train_steps": 1},
    ),
    _s(
        "resume_early_stopping_state",
        [{"max_epochs": 3}, {"max_epochs": 12, "ckpt_path": "last"}],
        checkpoint={"save_last": True},
        early_stopping={"monitor": "score", "patience": 3},
    ),
]

DIFFERENCES: dict[str, str] = {}  # filled at the end of this file

# Saves counted once: Lightning writes ``last.ckpt`` as a second file (a second
# ``on_save_checkpoint``); ours links ``last`` to the checkpoint just written.
IGNORED_COUNTS = ("on_save_checkpoint", "module.on_save_checkpoint")

DIFFERENCES.update(
    {
        "resume_accumulate": (
            "resuming from a checkpoint written at an epoch's last batch starts the next epoch "
            "with on_train_epoch_start; Lightning skips that hook for the resumed epoch"
        ),
    }
)
_LAST = (
    "`last` moves to the newest state at every save trigger (a last-only checkpoint when no "
    "top-k one was written there); Lightning updates last.ckpt at an epoch's end only when a "
    "top-k checkpoint was saved, so resuming from it could repeat epochs"
)
DIFFERENCES.update({"ckpt_monitor_top2_last": _LAST, "ckpt_top_zero_last": _LAST})
