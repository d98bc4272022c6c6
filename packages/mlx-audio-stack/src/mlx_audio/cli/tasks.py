"""What the commands do: an audio classifier (log-mels on the accelerator + ``AudioCNN``)
trained, evaluated and run over files with the library's own parts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

import mlx.core as mx
import numpy as np

from mlx_audio.data import (
    AudioFolder,
    AudioManifest,
    DataLoader,
    PadCollate,
)
from mlx_audio.data.audio import AudioDecodeError
from mlx_audio.train import Preempted, Trainer, TrainModule
from mlx_audio.train.callbacks import EarlyStopping, EMAWeightAveraging, LearningRateMonitor

from . import augment, batching, clips, outputs, runs
from .classifier import AudioClassifier
from .config import ConfigError, Settings, dump, trainer_kwargs
from .data import MANIFEST_SUFFIXES, DataError
from .plots import plot_confusion

DATA_ERRORS = (DataError, AudioDecodeError)  # what the command reports as the data's mistake


def dataset(path: str, sample_rate: int) -> Any:
    """A folder of class folders (``AudioFolder``) or a manifest file (``AudioManifest``)."""
    if os.path.isdir(path):
        return AudioFolder(path, sample_rate=sample_rate)
    if os.path.isfile(path) and path.lower().endswith(MANIFEST_SUFFIXES):
        return AudioManifest(path, sample_rate=sample_rate)
    if not os.path.exists(path):
        raise ConfigError(f"--data {path}: no such file or folder")
    raise DataError(
        f"--data {path}: expected a folder of class folders or a manifest ({', '.join(MANIFEST_SUFFIXES)})"
    )


def files_of(data: Any) -> list[str]:
    return [path for path, *_ in data.files()]


def datasets(settings: Settings, sample_rate: int) -> tuple[Any, Any, list[str]]:
    """The training and validation sets (``data.val``, or ``data.val_fraction`` of each class
    held out), every file checked, and the classes (``clips.training``)."""
    return clips.training(settings, sample_rate)


def loaders(settings: Settings) -> tuple[DataLoader, DataLoader, list[str]]:
    d = settings.data
    workers = augment.InWorkers(settings)  # before reading the data: a wrong folder fails at once
    train, val, classes = datasets(settings, d.sample_rate)  # clips cut to data.clip_seconds
    if d.in_memory:
        return (
            DataLoader(
                clips.in_memory(train, settings, "train"), batch_size=d.batch_size, shuffle=True
            ),
            DataLoader(clips.in_memory(val, settings, "val"), batch_size=d.batch_size),
            classes,
        )
    transforms = [workers] if workers.chain is not None else None
    if d.batching == "duration":  # whole clips, padded (NOTE [batch shapes])
        return (*batching.loaders(train, val, settings, transforms), classes)
    several = batching.weights(settings) is not None  # a mux of data.train's sources
    return (
        DataLoader(
            train,
            batch_size=1 if several else d.batch_size,
            shuffle=False if several else True,
            batch_sampler=batching.sampler(train, settings, shuffle=True) if several else None,
            num_workers=d.num_workers,
            collate_fn=clips.DropUnreadable(),
            cpu_transforms=transforms,
        ),
        DataLoader(
            val,
            batch_size=d.batch_size,
            num_workers=d.num_workers,
            collate_fn=clips.DropUnreadable(),
        ),
        classes,
    )


def make_loggers(settings: Settings, version: int = 0) -> list[Any]:
    """The loggers named in ``trainer.loggers``, the file-based ones at ``version_<version>``;
    TensorBoard only where tensorboardX is installed (said once), so the default list works
    with the plain install."""
    import importlib.util

    from mlx_audio import loggers as lg

    root = settings.trainer.default_root_dir
    names = list(settings.trainer.loggers)
    if "tensorboard" in names and importlib.util.find_spec("tensorboardX") is None:
        names.remove("tensorboard")
        runs.say(
            "no TensorBoard log (tensorboardX is not installed: pip install 'mlx-audio-loggers[tensorboard]')"
        )
    made = {
        "csv": lambda: lg.CSVLogger(root, name="logs", version=version),
        "tensorboard": lambda: lg.TensorBoardLogger(root, name="tensorboard", version=version),
        "wandb": lambda: lg.WandbLogger(save_dir=root),
        "mlflow": lambda: lg.MLflowLogger(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI")),
    }
    return [made[name]() for name in names]


def trainer_for(
    settings: Settings,
    for_training: bool = True,
    run: dict[str, Any] | None = None,
    extra: Sequence[Any] = (),
) -> Trainer:
    """The Trainer of ``settings``; for training with the run folder's checkpoints (and
    run.json, with ``run``'s fields, at each: NOTE [run folder]), loggers, early stopping and
    the ``extra`` callbacks."""
    t = settings.trainer
    callbacks: list[Any] = []
    if for_training:
        callbacks = [
            *extra,
            runs.RunCheckpoint(
                t.default_root_dir,
                run or {},
                monitor=t.monitor,
                mode=t.mode,
                save_top_k=t.save_top_k,
            ),
            LearningRateMonitor(),
        ]
        if t.ema_decay is not None:  # its range is checked with the settings (config.load)
            callbacks.append(EMAWeightAveraging(decay=t.ema_decay))
        if settings.model.name == "clap-audio-classifier":
            from .clap_classifier import callbacks as model_callbacks

            callbacks += model_callbacks(settings)
        if t.early_stopping_patience is not None:
            callbacks.append(
                EarlyStopping(monitor=t.monitor, mode=t.mode, patience=t.early_stopping_patience)
            )
    return Trainer(
        **trainer_kwargs(t),  # every Trainer argument of the section (NOTE [trainer settings])
        logger=make_loggers(settings, runs.log_version(t.default_root_dir))
        if for_training
        else False,
        callbacks=callbacks,
        enable_checkpointing=for_training,
    )


def train(settings: Settings, resume: bool) -> dict[str, Any]:
    """Train into the run folder (NOTE [run folder]); the model is built after the Trainer has
    seeded everything (``trainer.seed``), so a seed gives the same run."""
    model: TrainModule
    augment.check(settings)
    batching.check(settings)
    ckpt_path = runs.start(settings, resume)
    root = settings.trainer.default_root_dir
    if ckpt_path is not None:  # NOTE [what a resumed run may change]
        runs.check_resume(settings, root)
    clap = settings.model.name == "clap"
    if clap:
        from . import clap_tasks

        if settings.trainer.monitor == "val_accuracy":  # the classifier's default
            settings.trainer.monitor = "val_retrieval_accuracy"
        extractor = clap_tasks.extractor_of(settings)
        train_set, val_set, classes = datasets(settings, int(extractor.sampling_rate))
        train_loader, val_loader = clap_tasks.loaders(settings, train_set, val_set, extractor)
    elif settings.model.name == "clap-audio-classifier":
        from . import clap_classifier as probe

        probe.check(settings)
        extractor = probe.extractor_of(settings)
        train_set, val_set, classes = datasets(settings, int(extractor.sampling_rate))
        train_loader, val_loader = probe.loaders(settings, train_set, val_set, extractor)
    else:
        train_loader, val_loader, classes = loaders(settings)
    if ckpt_path is not None:
        runs.check_classes(root, classes, ", ".join(batching.sources(settings.data.train)))
    multilabel = not clap and getattr(train_loader.dataset.targets, "ndim", 1) == 2
    if multilabel and settings.trainer.monitor == "val_accuracy":  # the classifier's default
        settings.trainer.monitor, settings.trainer.mode = "val_mAP", "max"
    sampler, extra = train_loader.batch_sampler, []
    if isinstance(sampler, batching.DynamicBucketingSampler):  # no len() when it shuffles
        runs.fit_log_interval(settings, int(sampler.stats()["batches"]), ckpt_path)
        if settings.data.batching == "duration":
            seconds = train_loader.dataset.seconds
            print(batching.report(sampler, seconds, settings, root))
            extra.append(batching.PaddingMonitor(sampler, seconds, settings.data.sample_rate))
    else:
        runs.fit_log_interval(settings, len(train_loader), ckpt_path)
    if ckpt_path is not None:
        runs.report_changes(settings, root)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "config.yaml"), "w") as f:
        f.write(dump(settings))
    fields: dict[str, Any] = {"classes": classes, "model": settings.model.name, "clap": None}
    fields["task"] = "multilabel" if multilabel else "multiclass"
    trainer = trainer_for(settings, run=fields, extra=extra)  # seeds MLX, numpy and random
    if clap:
        model = clap_tasks.CaptionedCLAP(settings)
    elif settings.model.name == "clap-audio-classifier":
        model = probe.ClapClassifierModule(settings, len(classes))
    else:
        model = AudioClassifier(settings, len(classes), multilabel)
    try:
        trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path)
    except (KeyboardInterrupt, Preempted) as error:
        raise runs.interrupted(trainer, root, error) from None
    clips.report_skipped(train_loader.dataset, root)
    callback = trainer.checkpoint_callback
    best = callback.best_model_path if callback is not None and callback.best_model_path else None
    if clap:
        clap_model = cast("clap_tasks.CaptionedCLAP", model)  # built above for model.name "clap"
        fields["clap"] = clap_tasks.export(settings, clap_model, best, os.path.join(root, "clap"))
    runs.write(root, trainer, fields, "finished")
    return {
        "best": best,
        "score": callback.best_model_score if callback else None,
        "clap": fields["clap"],
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }


def restore(run: str, checkpoint: str | None) -> tuple[Settings, list[str], TrainModule, str]:
    """A trained run folder: its settings, classes, model and the checkpoint to load."""
    from .config import load

    config = os.path.join(run, "config.yaml")
    if not os.path.isfile(config):
        raise FileNotFoundError(
            f"--run {run}: no config.yaml (a folder written by `mlx-audio train`)"
        )
    settings = load(config, {})
    saved = runs.read(run)
    if saved.get("model") == "clap":
        clap = os.path.join(run, saved["clap"]) if saved.get("clap") else f"{run}/clap"
        raise ValueError(
            f"--run {run} fine-tuned CLAP: classify with `mlx-audio zero-shot --model {clap} ...`"
        )
    classes = saved["classes"]
    path = runs.checkpoint(run, saved, checkpoint)
    multilabel = saved.get("task") == "multilabel"
    if saved.get("model") == "clap-audio-classifier":  # audio read at its extractor's rate
        from .clap_classifier import restored

        return settings, classes, restored(settings, len(classes)), path
    return settings, classes, AudioClassifier(settings, len(classes), multilabel), path


def predictions(
    run: str,
    data_path: str,
    checkpoint: str | None,
    labelled: bool = False,
    label_column: str | None = None,
) -> tuple[list[str], np.ndarray, Any, list[str]]:
    settings, classes, module, path = restore(run, checkpoint)
    if label_column is not None:  # evaluate's --data.label_column: the data's, not the run's
        settings.data.label_column = label_column
    data = clips.for_run(data_path, settings, classes if labelled else None)
    duration = settings.data.batching == "duration"  # whole clips, padded as in training
    loader: DataLoader[Any] = DataLoader(
        data,
        batch_size=settings.data.batch_size,
        num_workers=settings.data.num_workers,
        cpu_transforms=getattr(module, "cpu_transforms", None),  # clap-audio-classifier's
        collate_fn=PadCollate(pad_to_multiple_of=batching.padding(settings)) if duration else None,
    )
    settings.trainer.enable_progress_bar = False
    outputs = trainer_for(settings, for_training=False).predict(module, loader, ckpt_path=path)
    if not outputs:  # None: trainer.limit_predict_batches is 0 (Lightning's skipped loop)
        raise ValueError(
            f"nothing to predict: no batches from {data_path} (trainer.limit_predict_batches="
            f"{settings.trainer.limit_predict_batches})"
        )
    probs = np.concatenate([np.array(p) for p in outputs])
    return classes, probs, data, [str(p) for p in data.paths]


def multilabel_run(run: str) -> bool:
    return bool(runs.read(run).get("task") == "multilabel")


def evaluate_multilabel(
    classes: list[str], probs: np.ndarray, targets: Any, out: str
) -> dict[str, Any]:
    """A multi-label run: each class's average precision and their mean (mAP), as validation
    computes them (``AveragePrecision``, torchmetrics' numbers), in ``out/average_precision.txt``."""
    from mlx_audio.train.metrics import AveragePrecision

    metric = AveragePrecision("multilabel", num_labels=len(classes), average="none")
    metric.update(mx.array(probs), mx.array(np.asarray(targets, np.int32)))
    per = np.array(metric.compute())
    width = max(len(c) for c in classes) + 2
    text = "".join(f"{c:<{width}}{v:.4f}\n" for c, v in zip(classes, per))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "average_precision.txt"), "w") as f:
        f.write("class average precision\n" + text)
    return {"mAP": float(per.mean()), "clips": len(probs), "text": text}


def evaluate(
    run: str, data_path: str, checkpoint: str | None, out: str, label_column: str | None = None
) -> dict[str, Any]:
    classes, probs, data, _ = predictions(run, data_path, checkpoint, True, label_column)
    if multilabel_run(run):
        return evaluate_multilabel(classes, probs, data.targets, out)
    labels = np.asarray(data.targets)  # numbered by the run's classes
    predicted = probs.argmax(axis=-1)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    os.makedirs(out, exist_ok=True)
    width = max(max(len(c) for c in classes), len(str(confusion.max()))) + 2
    text = "true \\ predicted\n" + " " * width + "".join(f"{c:>{width}}" for c in classes) + "\n"
    text += "".join(
        f"{c:>{width}}" + "".join(f"{v:>{width}}" for v in row) + "\n"
        for c, row in zip(classes, confusion)
    )
    with open(os.path.join(out, "confusion.txt"), "w") as f:
        f.write(text)
    png = plot_confusion(confusion, classes, os.path.join(out, "confusion.png"))
    return {
        "accuracy": float((predicted == labels).mean()),
        "clips": len(labels),
        "confusion": text,
        "png": png,
    }


def predict(run: str, data_path: str, checkpoint: str | None, out: str) -> int:
    classes, probs, _, files = predictions(run, data_path, checkpoint)
    if multilabel_run(run):  # every class at or above 0.5, and each class's probability
        tagged = [
            {"path": p, "labels": ";".join(c for c, v in zip(classes, r) if v >= 0.5)}
            | {c: float(v) for c, v in zip(classes, r)}
            for p, r in zip(files, probs)
        ]
        outputs.write(out, tagged, ["path", "labels", *classes])
        return len(tagged)
    rows = [
        {"path": p, "label": classes[int(r.argmax())], "probability": float(r.max())}
        for p, r in zip(files, probs)
    ]
    outputs.write(out, rows, ["path", "label", "probability"])
    return len(rows)


def zero_shot(
    model_path: str, data_path: str, labels: list[str], template: str, out: str
) -> dict[str, Any]:
    """CLAP zero-shot classification of every file against ``labels`` (prompts from ``template``)."""
    from mlx_audio.models.clap import zero_shot_classify

    from .clap_tasks import extractor_for, load_clap

    if not labels or any(not label.strip() for label in labels):
        raise ValueError(
            f"--labels needs non-empty label names separated by commas, got {labels!r}"
        )
    model = load_clap(model_path)
    model.eval()
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise FileNotFoundError(
            f"--model {model_path}: no tokenizer.json beside the weights (needed to read the labels)"
        )
    fusion = model.config.audio_config.enable_fusion
    extractor = extractor_for(model_path, model.config.audio_config)
    data = dataset(data_path, extractor.sampling_rate)
    rows, right, known = [], 0, 0
    names = list(getattr(data, "classes", []))
    for index, path in enumerate(files_of(data)):
        item = data[index]
        wave = item[0] if isinstance(item, tuple) else item
        features = extractor(
            [np.asarray(wave)], sampling_rate=extractor.sampling_rate, random_state=0
        )
        is_longer = mx.array(features["is_longer"]) if fusion else None
        probs = np.array(
            zero_shot_classify(
                model, mx.array(features["input_features"]), labels, tokenizer, template, is_longer
            )
        )[0]
        best = labels[int(probs.argmax())]
        rows.append({"path": path, "label": best, "probability": float(probs.max())})
        if isinstance(item, tuple) and names and names[int(item[1])] in labels:
            known += 1
            right += int(names[int(item[1])] == best)
    outputs.write(out, rows, ["path", "label", "probability"])
    return {"count": len(rows), "accuracy": right / known if known else None, "labelled": known}
