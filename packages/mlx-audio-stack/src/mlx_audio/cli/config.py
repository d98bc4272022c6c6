"""The command line's one schema: every setting, its type, default and valid values; read from
YAML, overridden by ``--section.key value`` flags, validated with errors naming the key."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .values import ConfigError as ConfigError  # the command's modules import it from here
from .values import check, describe, expressible, yaml_text
from .values import yaml_error as yaml_error


@dataclass
class DataSettings:
    # class folders (AudioFolder) or a CSV/TSV/JSONL manifest; several: drawn by data.weights
    train: str | list[str] = ""
    weights: list[float] | None = None  # several data.train sources: their weights (null: equal)
    val: str | None = None  # same; without it, val_fraction of train is held out
    val_fraction: float = 0.1
    sample_rate: int = 16000
    clip_seconds: float = 1.0  # training clips are randomly cropped (padded) to this length
    batch_size: int = 32
    num_workers: int = 2
    caption_template: str = (
        "{label}"  # model.name clap, class folders: the caption of a clip of class {label}
    )
    label_column: str = "label"  # a manifest's column of class names
    on_error: Literal["raise", "skip"] = "raise"  # a file failing while training: stop, or drop it
    # augmentation of the training clips, in the workers (seeded per clip; off by default)
    noise_dir: str | None = None  # add a noise file of this folder to each clip (p 0.5) ...
    noise_snr_db: list[float] = field(
        default_factory=lambda: [5.0, 20.0]
    )  # ... at an SNR in this range
    rir_dir: str | None = None  # convolve with a room impulse response of this folder (p 0.5)
    gain_db: float = 0.0  # a random gain in [-gain_db, gain_db] dB (p 0.5); 0: off
    in_memory: bool = (
        False  # cnn: decode every clip once into the accelerator's memory, batch there
    )
    batching: Literal["fixed", "duration"] = "fixed"  # duration: whole clips, max_duration a batch
    max_duration: float | None = None  # duration: seconds of audio a batch, padding included
    num_buckets: int = 10  # duration: buckets of similar durations (boundaries from the data)
    quadratic_duration: float | None = None  # duration: a clip of d s counts d + d**2 / this
    max_batch_size: int | None = None  # duration: at most this many clips a batch
    pad_to_multiple_of: int | None = None  # duration: null pads to the bucket's boundary


@dataclass
class ModelSettings:
    name: Literal["cnn", "clap", "clap-audio-classifier"] = "cnn"
    # clap: fine-tune `pretrained` contrastively on captions; clap-audio-classifier: the audio
    # tower of the CLAP folder `pretrained` (the backbone) under a new linear head, one class a clip
    # cnn: one class per clip (softmax) or several (sigmoid + BCE, monitored by val_mAP); auto:
    # multilabel when the manifest has a `labels` column (names separated by `;`)
    task: Literal["auto", "multiclass", "multilabel"] = "auto"
    pretrained: str | None = None  # clap: a CLAP folder (config.json, weights, tokenizer.json)
    freeze_backbone: bool = False  # clap-audio-classifier: train only the head (a linear probe)
    unfreeze_at_epoch: int = 0  # clap-audio-classifier: the backbone is frozen before this epoch
    backbone_lr_ratio: float = 0.1  # clap-audio-classifier: the backbone's rate / the head's
    layer_decay: float | None = None  # clap-audio-classifier: rate x decay ** depth (BEiT)
    freeze_text: bool = True  # clap: keep the text encoder as it is
    max_tokens: int = 64  # clap: captions are cut/padded to this many tokens
    n_mels: int = 40
    n_fft: int = 400
    hop_length: int = 160
    f_min: float = 0.0
    top_db: float | None = 80.0
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dropout: float = 0.1
    spec_augment: bool = False  # SpecAugment while training: 2 frequency + 2 time masks
    mixup_alpha: float = 0.0  # mixup of training batches, lam ~ Beta(alpha, alpha); 0: off
    cutmix_alpha: float = 0.0  # cutmix along time (with mixup: each batch picks one); 0: off


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


# NOTE [trainer settings]: the `trainer` section is generated from `Trainer.__init__`, not kept
# by hand: one key per argument (its name, its annotation as the type, its default), with the help
# text from the Trainer's docstring (`Args:`), then the application's own keys below. Left out, by
# the rule in NOT_SETTINGS: arguments whose values are Python objects or have no YAML form, and
# those the application decides itself. tests/test_cli.py fails when a Trainer argument is in
# neither list.
NOT_SETTINGS = {
    "callbacks": "Python objects; the command makes its ModelCheckpoint (and EarlyStopping) from "
    "trainer.monitor, mode, save_top_k and early_stopping_patience",
    "logger": "Python objects; trainer.loggers names them",
    "enable_checkpointing": "the command always checkpoints: evaluate and predict read the run's "
    "best and last checkpoints",
    "max_time": "a timedelta or a dict as well as a string: no one YAML type",
    "devices": "one device per process: `mlx.launch` starts the processes and 'auto' takes them",
    "deterministic": "accepted by the Trainer for Lightning code, no effect in MLX",
    "benchmark": "accepted by the Trainer for Lightning code, no effect in MLX",
    "inference_mode": "accepted by the Trainer for Lightning code, no effect in MLX",
    "barebones": "the command always checkpoints and logs (evaluate and predict read the run), "
    "which barebones turns off",
    "reload_dataloaders_every_n_epochs": "the command passes its loaders to fit: there is no "
    "dataloader hook to reload from",
}
# The command's defaults where they differ from the Trainer's (an application's choices; the
# Trainer's `None` defaults shown as what they resolve to).
CLI_DEFAULTS: dict[str, Any] = {
    "max_epochs": 10,
    "gradient_clip_val": 1.0,
    "precision": "32-true",
    "seed": 0,
    "default_root_dir": "runs/mlx-audio",
    "log_every_n_steps": None,  # the command fits it to the run's length (CLI_NOTES)
    "enable_progress_bar": True,
}
# What the command does with a setting beyond the Trainer's meaning (shown in --help).
CLI_NOTES = {
    "log_every_n_steps": "null: fitted to the run, about 100 points, at most every 50 steps",
}
# Types narrower than the Trainer's annotation, checked here so that the error names the key.
CLI_TYPES: dict[str, Any] = {
    "precision": Literal["32-true", "bf16-mixed", "bf16-true", "16-true", "32", "bf16", "16-mixed"],
    "profiler": Literal["simple", "advanced"] | None,  # a name: profiler objects are Python's
    "strategy": Literal["auto", "ddp", "single_device"],
    "default_root_dir": str,  # the run folder, which evaluate and predict read
    # batches or a fraction only: YAML 1.1 reads a "DD:HH:MM:SS" time as a base-60 int
    "val_check_interval": int | float | None,
}


@dataclass
class AppSettings:
    """The `trainer` section's keys that are the command's, not the Trainer's."""

    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])
    monitor: str = "val_accuracy"
    mode: Literal["min", "max"] = "max"
    save_top_k: int = 1
    early_stopping_patience: int | None = None
    # a number: keep an exponential moving average of the weights (EMAWeightAveraging(decay)),
    # used for validation, saved in the checkpoints and by evaluate/predict
    ema_decay: float | None = None


def _annotation(parameter: inspect.Parameter) -> Any:
    """A Trainer argument's annotation as a type (None: a library class, not a YAML value)."""
    hint = parameter.annotation
    if isinstance(hint, str):  # `from __future__ import annotations` in trainer.py
        try:
            hint = eval(hint, {"Any": Any})  # the library's own annotation text
        except NameError:
            return None
    return hint


def trainer_arguments() -> list[tuple[str, Any, Any]]:
    """(name, type, default) of each Trainer argument the `trainer` section holds."""
    from mlx_audio.train import Trainer

    found = []
    for name, parameter in inspect.signature(Trainer.__init__).parameters.items():
        if name == "self" or name in NOT_SETTINGS:
            continue
        kind = CLI_TYPES.get(name, _annotation(parameter))
        if kind is None or not expressible(kind):
            continue  # not a setting until NOT_SETTINGS says why (tests/test_cli.py)
        found.append((name, kind, CLI_DEFAULTS.get(name, parameter.default)))
    return found


def trainer_help() -> dict[str, str]:
    """The first sentence of each argument's entry in the Trainer's docstring (``Args:``)."""
    from mlx_audio.train import Trainer

    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    lines = (inspect.getdoc(Trainer.__init__) or "").splitlines()
    for line in lines[lines.index("Args:") + 1 :] if "Args:" in lines else []:
        if line and not line.startswith(" "):
            break  # the next section
        entry = re.match(r"    (\w+)(?: \(.*?\))?: (.*)", line)
        if entry:
            current = entries[entry.group(1)] = [entry.group(2)]
        elif current is not None and line.strip():
            current.append(line.strip())
    helps = {}
    for name, parts in entries.items():
        text = " ".join(parts).replace("``", "")
        first = re.match(r"(.*?\.)(?:\s|$)", text)
        helps[name] = first.group(1) if first else text
    return helps


def _field(default: Any, factory: Any = dataclasses.MISSING) -> Any:
    return (
        field(default_factory=factory)
        if factory is not dataclasses.MISSING
        else field(default=default)
    )


TRAINER_ARGUMENTS = trainer_arguments()


def trainer_kwargs(section: Any) -> dict[str, Any]:
    """The Trainer's arguments from a `trainer` section."""
    return {name: getattr(section, name) for name, _, _ in TRAINER_ARGUMENTS}


if typing.TYPE_CHECKING:

    class TrainerSettings(AppSettings):  # what the type checker sees: the Trainer's keys are Any
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

else:
    _app = typing.get_type_hints(AppSettings)
    TrainerSettings = dataclasses.make_dataclass(
        "TrainerSettings",
        [
            *((name, kind, _field(default)) for name, kind, default in TRAINER_ARGUMENTS),
            *(
                (f.name, _app[f.name], _field(f.default, f.default_factory))
                for f in dataclasses.fields(AppSettings)
            ),
        ],
        namespace={
            "__doc__": "The `trainer` section: the Trainer's arguments, then the command's.",
            "__module__": __name__,
        },
    )


@dataclass
class Settings:
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)


LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")


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
        setattr(target, key, check(f"{source}: {section}.{key}", kinds[key], value))
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
        if not os.path.isfile(path):
            raise ConfigError(f"--config: config file not found: {path}")
        with open(path) as f:
            try:
                loaded = yaml.safe_load(f) or {}
            except yaml.YAMLError as error:
                where, problem = yaml_error(error)
                raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{path}: expected a mapping of sections (data, model, optimizer, scheduler, trainer)"
            )
        apply(settings, loaded, path)
    apply(settings, overrides, "command line")
    d, m = settings.data, settings.model
    for key, value, least in (
        ("data.clip_seconds", d.clip_seconds, "> 0"),
        ("data.sample_rate", d.sample_rate, "> 0"),
        ("data.batch_size", d.batch_size, "> 0"),
        ("data.gain_db", d.gain_db, ">= 0"),
        ("model.mixup_alpha", m.mixup_alpha, ">= 0"),
        ("model.cutmix_alpha", m.cutmix_alpha, ">= 0"),
    ):
        if value < 0 or (value == 0 and least == "> 0"):
            raise ConfigError(
                f"{source_of(key, path, overrides)}: {key}: must be {least}, got {value}"
            )
    decay = settings.trainer.ema_decay
    if decay is not None and not 0.0 < decay < 1.0:  # 1: the average never moves; 0: no average
        raise ConfigError(
            f"{source_of('trainer.ema_decay', path, overrides)}: trainer.ema_decay: must be in "
            f"(0, 1), e.g. 0.999, got {decay} (null: no weight averaging)"
        )
    if len(snr := settings.data.noise_snr_db) != 2 or snr[0] > snr[1]:
        where = source_of("data.noise_snr_db", path, overrides)
        raise ConfigError(
            f"{where}: data.noise_snr_db: expected [min, max] dB, min <= max, got {snr}"
        )
    return settings


def source_of(key: str, path: str | None, overrides: dict[str, Any]) -> str:
    """Where a setting's value came from, as the errors name it."""
    return "command line" if key in overrides or path is None else path


def dump(settings: Settings) -> str:
    import yaml

    return yaml.safe_dump(dataclasses.asdict(settings), sort_keys=False)


def flags() -> list[tuple[str, str]]:
    """(``section.key``, help) for every setting: the ``--section.key`` flags."""
    out = []
    helps = {"trainer": trainer_help()}  # NOTE [trainer settings]
    for section, kind in typing.get_type_hints(Settings).items():
        defaults = kind()
        for key, hint in typing.get_type_hints(kind).items():
            note = CLI_NOTES.get(key, "") if section == "trainer" else ""
            default = yaml_text(getattr(defaults, key)) + (f"; {note}" if note else "")
            text = f"{describe(hint)} (default {default})"
            if key in helps.get(section, {}):
                text += ": " + helps[section][key].replace("%", "%%")  # argparse's % formatting
            out.append((f"{section}.{key}", text))
    return out
