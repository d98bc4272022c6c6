"""NOTE [trainer settings]: the command line's `trainer` section is generated from the Trainer's
arguments and its help from the Trainer's docstring; every Trainer argument is either a setting
or left out with a reason; existing configs load as before; `--print_config` is Lightning's
spelling of `--print-config`."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from mlx_audio.cli import config as cli_config
from mlx_audio.cli import main
from mlx_audio.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def arguments(trainer: type = Trainer) -> list[str]:
    return [n for n in inspect.signature(trainer.__init__).parameters if n != "self"]


def unclassified() -> set[str]:
    """Trainer arguments that are neither a setting nor left out with a reason."""
    import mlx_audio.train

    exposed = {name for name, _, _ in cli_config.trainer_arguments()}
    return set(arguments(mlx_audio.train.Trainer)) - exposed - set(cli_config.NOT_SETTINGS)


def test_the_section_is_exactly_the_trainers_yaml_arguments_then_the_commands():
    exposed = [name for name, _, _ in cli_config.TRAINER_ARGUMENTS]
    assert not unclassified() and set(exposed).isdisjoint(cli_config.NOT_SETTINGS)
    assert set(cli_config.NOT_SETTINGS) <= set(arguments())  # no stale reasons
    assert exposed == [a for a in arguments() if a not in cli_config.NOT_SETTINGS]  # their order
    keys = [f.name for f in dataclasses.fields(cli_config.TrainerSettings)]
    assert keys == exposed + [
        "loggers",
        "monitor",
        "mode",
        "save_top_k",
        "early_stopping_patience",
        "ema_decay",
    ]
    signature = inspect.signature(Trainer.__init__).parameters
    for name, kind, default in cli_config.TRAINER_ARGUMENTS:
        assert cli_config.expressible(kind), name
        assert default == cli_config.CLI_DEFAULTS.get(name, signature[name].default), name
    # the settings that were hand-kept before keep their defaults
    defaults = cli_config.TrainerSettings()
    assert {k: getattr(defaults, k) for k in cli_config.CLI_DEFAULTS} == {
        "max_epochs": 10,
        "gradient_clip_val": 1.0,
        "precision": "32-true",
        "seed": 0,
        "default_root_dir": "runs/mlx-audio",
        "log_every_n_steps": None,  # fitted to the run by the command (tests/test_cli_runs.py)
        "enable_progress_bar": True,
    }
    assert {"accumulate_grad_batches": 1, "check_val_every_n_epoch": 1}.items() <= vars(
        defaults
    ).items()


def test_a_new_trainer_argument_must_be_classified(monkeypatch):
    """An argument added to Trainer.__init__ is a setting by the rule (a YAML type and an entry
    in the docstring) or listed in NOT_SETTINGS; anything else fails the test above."""

    class Newer(Trainer):
        def __init__(self, future_object: object = None, future_limit: int | float = 0.0, **kw):
            super().__init__(**kw)

    monkeypatch.setattr("mlx_audio.train.Trainer", Newer)
    assert unclassified() >= {"future_object"}  # a Python object, not in NOT_SETTINGS
    exposed = {name for name, _, _ in cli_config.trainer_arguments()}
    assert "future_limit" in exposed and "future_limit" not in cli_config.trainer_help()


def test_help_text_is_the_trainers_docstring(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")  # argparse does not wrap (nor break 32-true)
    helps = cli_config.trainer_help()
    doc = inspect.getdoc(Trainer.__init__)
    assert set(helps) == set(arguments())  # the docstring documents every argument
    assert helps["max_epochs"] == "Stop after this many epochs."
    assert helps["compile"].startswith("Run the training step as one mx.compiled graph")
    flags = dict(cli_config.flags())
    for name, _, _ in cli_config.TRAINER_ARGUMENTS:
        assert helps[name] and flags[f"trainer.{name}"].endswith(": " + helps[name]), name
        assert f"    {name}: {helps[name].split()[0]}" in doc
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name, _, _ in cli_config.TRAINER_ARGUMENTS:
        assert f"--trainer.{name}" in shown and " ".join(helps[name].split()) in shown, name


def test_print_config_lightning_spelling_and_the_new_keys(tmp_path, capsys):
    args = ["train", "--data", "x", "--trainer.val_check_interval", "0.5"]
    assert main([*args, "--print_config"]) == 0
    text = capsys.readouterr().out
    assert main([*args, "--print-config"]) == 0 and capsys.readouterr().out == text
    (tmp_path / "c.yaml").write_text(text)
    settings = cli_config.load(str(tmp_path / "c.yaml"), {"trainer.fast_dev_run": 2})
    kwargs = cli_config.trainer_kwargs(settings.trainer)
    assert kwargs["val_check_interval"] == 0.5 and kwargs["fast_dev_run"] == 2
    assert kwargs["max_epochs"] == 10 and "logger" not in kwargs and "loggers" not in kwargs
    Trainer(**kwargs, logger=False)  # every setting is a valid Trainer argument as it stands


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--trainer.val_check_interval", "often"],
            "command line: trainer.val_check_interval: expected int | float | null, got 'often' (str)",
        ),
        (["--trainer.fast_dev_run", "[1]"], "trainer.fast_dev_run: expected bool | int, got [1]"),
        (
            ["--trainer.default_root_dir", "null"],
            "trainer.default_root_dir: expected str, got no value",
        ),
        (
            ["--trainer.strategy", "fsdp"],
            "trainer.strategy: 'fsdp' is not valid; valid values: 'auto', 'ddp', 'single_device'",
        ),
        (
            ["--trainer.profiler", "pytorch"],
            "trainer.profiler: 'pytorch' is not valid; valid values: 'simple', 'advanced'",
        ),
    ],
)
def test_bad_values_of_generated_keys_name_the_key(args, message, capsys):
    assert main(["train", "--data", "x", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1


def test_lightning_flags_are_settings_with_their_types():
    """The debugging and launch flags reach the Trainer from YAML and flags (profiler and
    strategy by name only: a profiler object is Python's)."""
    settings = cli_config.load(
        None,
        {"trainer.profiler": "simple", "trainer.overfit_batches": 2, "trainer.strategy": "ddp"},
    )
    t = settings.trainer
    assert (t.profiler, t.overfit_batches, t.strategy, t.detect_anomaly) == (
        "simple",
        2,
        "ddp",
        False,
    )
    assert {"barebones", "reload_dataloaders_every_n_epochs"} <= set(cli_config.NOT_SETTINGS)


def test_the_demo_config_loads_unchanged():
    settings = cli_config.load(str(ROOT / "examples" / "demo.yaml"), {})
    t = settings.trainer
    assert (t.max_epochs, t.seed, t.gradient_clip_val, t.default_root_dir) == (
        6,
        42,
        1.0,
        "demo_run",
    )
    assert (t.loggers, t.monitor, t.mode) == (["csv", "tensorboard"], "val_accuracy", "max")
