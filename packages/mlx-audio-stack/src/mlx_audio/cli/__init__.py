"""``mlx-audio``: train an audio classifier on a folder or manifest of audio files, evaluate it,
predict with it and plot its run, without writing Python (``python -m mlx_audio`` too).

    mlx-audio train --data clips/ --config run.yaml --trainer.max_epochs 20
    mlx-audio evaluate --run runs/mlx-audio --data val.csv
    mlx-audio predict --run runs/mlx-audio --data new_clips/ --out predictions.csv
    mlx-audio plot runs/mlx-audio
    mlx-audio zero-shot --model laion/clap-htsat-unfused --data clips/ --labels "dog,siren,rain"
"""

from __future__ import annotations

import argparse
import difflib
import sys
import warnings
from typing import Any


class _NotYaml(str):
    """A flag's value that YAML cannot read: reported by ``main`` in one line, naming the key
    (argparse's own error would print the whole usage first)."""


def _value(text: str) -> Any:
    import yaml

    from .config import yaml_error

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        return _NotYaml(f"not a YAML value: {text!r} ({yaml_error(error)[1]})")


def parser() -> argparse.ArgumentParser:
    from .config import flags

    top = argparse.ArgumentParser(
        prog="mlx-audio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --trainer.max_epoch is a mistake, not max_epochs
    )
    commands = top.add_subparsers(
        dest="command", required=True, metavar="{train,evaluate,predict,plot,zero-shot}"
    )

    train = commands.add_parser(
        "train",
        allow_abbrev=False,
        help="train a classifier (checkpoints, logs, progress) on audio files",
        description="Train an audio classifier (log-mels + AudioCNN) with the Trainer. Every "
        "setting below can also come from --config (YAML, same names by section); flags win.",
    )
    train.add_argument(
        "--data",
        help="training data: a folder of class folders, or a CSV/TSV/JSONL manifest (data.train)",
    )
    train.add_argument(
        "--val-data",
        help="validation data, same forms (data.val); default: hold out data.val_fraction",
    )
    train.add_argument("--model", choices=model_names(), help="model.name")
    train.add_argument(
        "--config", help="a YAML file of settings (see --print-config for all of them)"
    )
    train.add_argument(
        "--print-config",
        "--print_config",  # Lightning CLI's spelling
        action="store_true",
        help="print the resolved settings as YAML and exit",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from <trainer.default_root_dir>/checkpoints/last",
    )
    group = train.add_argument_group(
        "settings (section.key; values are YAML: 5, 1e-3, null, [16, 32])"
    )
    for key, help_text in flags():
        group.add_argument(
            f"--{key}",
            dest=key,
            type=_value,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=help_text,
        )

    for name, text in (
        (
            "evaluate",
            "accuracy and confusion matrix (text + PNG) of a trained run on labelled data",
        ),
        ("predict", "the predicted class of every file, as CSV or JSONL"),
    ):
        command = commands.add_parser(name, help=text, description=text, allow_abbrev=False)
        command.add_argument(
            "--run",
            required=True,
            help="the folder `mlx-audio train` wrote (trainer.default_root_dir)",
        )
        command.add_argument(
            "--data", required=True, help="a folder of class folders or a manifest"
        )
        command.add_argument(
            "--checkpoint", default="best", help="best (default), last, or a checkpoint folder"
        )
        if name == "evaluate":
            command.add_argument(
                "--out", help="where confusion.txt/.png go (default: <run>/evaluation)"
            )
            command.add_argument(
                "--data.label_column",
                dest="label_column",
                metavar="COLUMN",
                help="a manifest's column of class names (default: the run's data.label_column)",
            )
        else:
            command.add_argument(
                "--out",
                default="predictions.csv",
                help="output file: .csv (default), .jsonl or .json",
            )

    plot = commands.add_parser(
        "plot",
        allow_abbrev=False,
        help="PNGs of a run's curves and learning rate (needs matplotlib)",
        description="Write <run>/curves.png and <run>/lr.png from the run's CSV log.",
    )
    plot.add_argument("run", help="the run folder")

    zero = commands.add_parser(
        "zero-shot",
        allow_abbrev=False,
        help="classify files against label names with CLAP, no training",
        description="Compare every file with the prompts built from --labels (CLAP): CSV of "
        "the best label per file; the accuracy too where the data's classes are among the labels.",
    )
    zero.add_argument(
        "--model",
        required=True,
        help="a CLAP folder (config.json, weights, tokenizer.json) or a Hub repo id",
    )
    zero.add_argument("--data", required=True, help="a folder of class folders or a manifest")
    zero.add_argument(
        "--labels", required=True, help="comma-separated label names, e.g. 'dog,siren,rain'"
    )
    zero.add_argument(
        "--template", default="This is a sound of {}.", help="the prompt; {} is the label"
    )
    zero.add_argument("--out", default="zero_shot.csv", help="output file: .csv, .jsonl or .json")
    return top


def model_names() -> list[str]:
    import typing

    from .config import ModelSettings

    return list(typing.get_args(typing.get_type_hints(ModelSettings)["name"]))


def unknown_option(top: argparse.ArgumentParser, command: str, extra: list[str]) -> str:
    """The error for arguments no option of ``command`` takes, with argparse's close matches."""
    found = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    sub = found[0].choices[command] if found and command in found[0].choices else top
    known = [o for action in sub._actions for o in action.option_strings]
    options = [x for x in extra if x.startswith("-")]
    if not options:
        return f"unexpected argument {extra[0]!r} (see mlx-audio {command} --help)"
    name = options[0].split("=", 1)[0]
    known = [o for o in known if o not in ("-h", "--help")]
    close = [o for o in known if o.startswith(name)] if len(name) > 3 else []  # a cut-off name
    leaf = name.rsplit(".", 1)[-1]  # the right setting under another section (--trainer.in_memory)
    close = close or [o for o in known if "." in name and o.rsplit(".", 1)[-1] == leaf]
    close = close or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close[:3])}?)" if close else ""
    hint = hint or f" (see mlx-audio {command} --help)"
    return f"unknown option {name}{hint}"


def status_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A library warning as the command's one status line (no file and source line)."""
    text = str(message)
    if "different batch shapes" in text:  # the compiled step's retrace warning
        text = (
            text.split(";")[0] + ": each shape compiles once (seconds, memory); fewer shapes: "
            "--data.batching duration with a smaller --data.num_buckets or a "
            "--data.pad_to_multiple_of, or --data.batching fixed, or --trainer.compile false"
        )
    print(f"mlx-audio: warning: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    try:  # Ctrl-C while the libraries load: one line too (the imports are in here for that)
        top = parser()
        args, extra = top.parse_known_args(argv)
        if extra:
            print(
                f"mlx-audio {args.command}: error: {unknown_option(top, args.command, extra)}",
                file=sys.stderr,
            )
            return 2
        from . import outputs, runs, tasks  # noqa: F401 (loaded here: Ctrl-C while loading)
    except KeyboardInterrupt:
        print("mlx-audio: interrupted", file=sys.stderr)
        return 130

    with warnings.catch_warnings():  # the library's warnings as status lines, filters undone
        warnings.showwarning = status_line
        return run(args)


def run(args: argparse.Namespace) -> int:
    from . import outputs, tasks
    from .config import ConfigError, dump, load
    from .runs import Interrupted

    try:
        if args.command == "train":
            overrides = {k: v for k, v in vars(args).items() if "." in k}
            for key, value in overrides.items():
                if isinstance(value, _NotYaml):
                    raise ConfigError(f"command line: {key}: {value}")
            for flag, key in (
                ("data", "data.train"),
                ("val_data", "data.val"),
                ("model", "model.name"),
            ):
                if getattr(args, flag) is not None:
                    if key in overrides:
                        raise ConfigError(
                            f"--{flag.replace('_', '-')} and --{key} both given (--{flag.replace('_', '-')} "
                            f"is short for --{key}): give one"
                        )
                    overrides[key] = getattr(args, flag)
            settings = load(args.config, overrides)
            if args.print_config:
                print(dump(settings), end="")
                return 0
            if not settings.data.train:
                raise ConfigError("no training data: pass --data PATH (or data.train in --config)")
            result = tasks.train(settings, args.resume)
            score = "-" if result["score"] is None else f"{result['score']:.4g}"
            print(
                f"mlx-audio: best checkpoint {result['best']} ({settings.trainer.monitor}={score})"
            )
            if result.get("clap"):
                print(
                    f"mlx-audio: fine-tuned CLAP written to {result['clap']} (mlx-audio zero-shot --model {result['clap']})"
                )
        elif args.command == "evaluate":
            out = args.out or f"{args.run}/evaluation"
            report = tasks.evaluate(args.run, args.data, args.checkpoint, out, args.label_column)
            if "mAP" in report:  # a multi-label run
                print(report["text"], end="")
                print(f"mAP: {report['mAP']:.4f} on {report['clips']} clips; per class in {out}")
                return 0
            print(report["confusion"], end="")
            print(
                f"accuracy: {report['accuracy']:.4f} on {report['clips']} clips; confusion matrix in {out}"
                + ("" if report["png"] else " (text only: install matplotlib for the PNG)")
            )
        elif args.command == "predict":
            outputs.check(args.out)
            count = tasks.predict(args.run, args.data, args.checkpoint, args.out)
            print(f"mlx-audio: {count} predictions in {args.out}")
        elif args.command == "zero-shot":
            outputs.check(args.out)
            result = tasks.zero_shot(
                args.model,
                args.data,
                [x.strip() for x in args.labels.split(",")],
                args.template,
                args.out,
            )
            accuracy = (
                ""
                if result["accuracy"] is None
                else f"; accuracy {result['accuracy']:.4f} on {result['labelled']} labelled files"
            )
            print(f"mlx-audio: {result['count']} files classified in {args.out}{accuracy}")
        else:
            from .plots import plot_run

            for path in plot_run(args.run):
                print(path)
    except tasks.DATA_ERRORS as error:  # the data files' mistake: one message, exit status 1
        print(f"mlx-audio {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (
        ConfigError,
        FileNotFoundError,
        ImportError,
        ValueError,
    ) as error:  # the command line's: 2
        print(f"mlx-audio {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as stopped:  # NOTE [run folder]: the checkpoint is written already
        print(f"mlx-audio {args.command}: {stopped}", file=sys.stderr)
        return stopped.status
    except KeyboardInterrupt:  # before or after training: nothing to keep
        print(f"mlx-audio {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
