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
import sys
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
        prog="mlx-audio", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(
        dest="command", required=True, metavar="{train,evaluate,predict,plot,zero-shot}"
    )

    train = commands.add_parser(
        "train",
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
    train.add_argument("--model", choices=["cnn", "clap"], help="model.name")
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
        command = commands.add_parser(name, help=text, description=text)
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
        else:
            command.add_argument(
                "--out",
                default="predictions.csv",
                help="output file: .csv (default), .jsonl or .json",
            )

    plot = commands.add_parser(
        "plot",
        help="PNGs of a run's curves and learning rate (needs matplotlib)",
        description="Write <run>/curves.png and <run>/lr.png from the run's CSV log.",
    )
    plot.add_argument("run", help="the run folder")

    zero = commands.add_parser(
        "zero-shot",
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


def main(argv: list[str] | None = None) -> int:
    try:  # Ctrl-C while the libraries load: one line too (the imports are in here for that)
        args = parser().parse_args(argv)
        from . import outputs, tasks
        from .config import ConfigError, dump, load
        from .runs import Interrupted
    except KeyboardInterrupt:
        print("mlx-audio: interrupted", file=sys.stderr)
        return 130

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
            report = tasks.evaluate(args.run, args.data, args.checkpoint, out)
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
    except tasks.DATA_ERRORS as error:  # the data's mistake: one message, exit status 1
        print(f"mlx-audio {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (ConfigError, FileNotFoundError, ImportError, ValueError) as error:
        print(f"mlx-audio {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as stopped:  # NOTE [run folder]: the checkpoint is written already
        print(f"mlx-audio {args.command}: {stopped}", file=sys.stderr)
        return stopped.status
    except KeyboardInterrupt:  # before or after training: nothing to keep
        print(f"mlx-audio {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
