"""The command line's one schema: every setting, its type, default and valid values; read from
YAML, overridden by ``--section.key value`` flags, validated with errors naming the key."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin


@dataclass
class DataSettings:
    train: str = ""  # a folder of class folders (AudioFolder) or a CSV/TSV/JSONL manifest
    val: str | None = None  # same; without it, val_fraction of train is held out
    val_fraction: float = 0.1
    sample_rate: int = 16000
    clip_seconds: float = 1.0  # training clips are randomly cropped (padded) to this length
    batch_size: int = 32
    num_workers: int = 2
    caption_template: str = (
        "{label}"  # model.name clap, class folders: the caption of a clip of class {label}
    )


@dataclass
class ModelSettings:
    name: Literal["cnn", "clap"] = "cnn"  # clap: fine-tune `pretrained` contrastively on captions
    pretrained: str | None = None  # clap: a CLAP folder (config.json, weights, tokenizer.json)
    freeze_text: bool = True  # clap: keep the text encoder as it is
    max_tokens: int = 64  # clap: captions are cut/padded to this many tokens
    n_mels: int = 40
    n_fft: int = 400
    hop_length: int = 160
    f_min: float = 0.0
    top_db: float | None = 80.0
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dropout: float = 0.1


@dataclass
class OptimizerSettings:
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.01
    momentum: float = 0.9  # sgd only


@dataclass
class SchedulerSettings:
    name: Literal["warmup_cosine", "constant"] = "warmup_cosine"
    warmup_fraction: float = 0.05
    min_lr: float = 2e-5


@dataclass
class TrainerSettings:
    max_epochs: int = 10
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0
    precision: Literal[
        "32-true", "bf16-mixed", "bf16-true", "16-true", "32", "bf16", "16-mixed"
    ] = "32-true"
    seed: int = 0
    default_root_dir: str = "runs/mlx-audio"
    log_every_n_steps: int = 50
    check_val_every_n_epoch: int = 1
    enable_progress_bar: bool = True
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])
    monitor: str = "val_accuracy"
    mode: Literal["min", "max"] = "max"
    save_top_k: int = 1
    early_stopping_patience: int | None = None


@dataclass
class Settings:
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)


LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type or not one of the valid values."""


def _describe(kind: Any) -> str:
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(kind))
    return str(kind).replace("typing.", "")


def _check(key: str, kind: Any, value: Any) -> Any:
    origin = get_origin(kind)
    args = get_args(kind)
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{key}: {value!r} is not valid; valid values: {', '.join(repr(a) for a in args)}"
            )
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(key, inner[0], value)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list ({_describe(kind)}), got {value!r}")
        return [_check(f"{key}[{i}]", args[0], v) for i, v in enumerate(value)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{key}: expected {kind.__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


def apply(settings: Settings, values: dict[str, Any], source: str) -> None:
    """Set ``{"section": {"key": value}}`` (from YAML) or ``{"section.key": value}`` (flags)."""
    hints = typing.get_type_hints(Settings)
    for name, value in values.items():
        section, _, key = name.partition(".")
        if section not in hints:
            raise ConfigError(
                f"{source}: unknown section {section!r}; valid sections: {', '.join(hints)}"
            )
        if not key:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{source}: {section} must be a mapping of settings, got {value!r}"
                )
            apply(settings, {f"{section}.{k}": v for k, v in value.items()}, source)
            continue
        target = getattr(settings, section)
        kinds = typing.get_type_hints(type(target))
        if key not in kinds:
            raise ConfigError(
                f"{source}: unknown setting {section}.{key}; valid: {', '.join(f'{section}.{k}' for k in kinds)}"
            )
        setattr(target, key, _check(f"{source}: {section}.{key}", kinds[key], value))
    for logger in settings.trainer.loggers:
        if logger not in LOGGERS:
            raise ConfigError(
                f"{source}: trainer.loggers: {logger!r} is not valid; valid values: {', '.join(LOGGERS)}"
            )


def load(path: str | None, overrides: dict[str, Any]) -> Settings:
    """Defaults, then the YAML file, then the flags."""
    import yaml

    settings = Settings()
    if path is not None:
        with open(path) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{path}: expected a mapping of sections (data, model, optimizer, scheduler, trainer)"
            )
        apply(settings, loaded, path)
    apply(settings, overrides, "command line")
    return settings


def dump(settings: Settings) -> str:
    import yaml

    return yaml.safe_dump(dataclasses.asdict(settings), sort_keys=False)


def flags() -> list[tuple[str, str]]:
    """(``section.key``, help) for every setting: the ``--section.key`` flags."""
    out = []
    for section, kind in typing.get_type_hints(Settings).items():
        defaults = kind()
        for key, hint in typing.get_type_hints(kind).items():
            out.append(
                (f"{section}.{key}", f"{_describe(hint)} (default {getattr(defaults, key)!r})")
            )
    return out
