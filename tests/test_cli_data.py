"""`mlx-audio` on the data real users bring (issue 26): test folders that lack a class or add
one, integer labels, unreadable files (before and while training), flat folders to predict,
manifests with another label column, one class, tiny validation sets and long recordings.
Every data mistake is one message and exit status 1, never a traceback."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mlx_audio.cli import classifier, main, tasks
from mlx_audio.cli.config import load

PITCHES = {"high": 880.0, "low": 220.0, "mid": 440.0}
QUICK = [
    "--trainer.max_epochs",
    "1",
    "--model.channels",
    "[8]",
    "--data.batch_size",
    "8",
    "--data.num_workers",
    "0",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.loggers",
    "[csv]",
]


def tone(path: Path, pitch: float, seconds: float, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), rate)


def corrupt_flac(path: Path) -> None:
    """A FLAC whose header reads (16000 frames) but whose frames do not decode."""
    tone(path, 440.0, 1.0)
    data = bytearray(path.read_bytes())
    for i in range(200, len(data)):
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name, pitch in PITCHES.items():
        for i in range(6):
            tone(root / "train" / name / f"{i}.wav", pitch, 0.4 + 0.1 * i)
        for i in range(2):
            tone(root / "test" / name / f"{i}.wav", pitch, 0.5)
    return root


@pytest.fixture(scope="module")
def run(clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    args = ["train", "--data", str(clips / "train"), "--trainer.default_root_dir", str(out)]
    assert main([*args, *QUICK]) == 0
    return out


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def train_labels(tmp_path: Path, *flags: str) -> list[int]:
    """Every label the training loader yields for ``flags`` (in process, no workers)."""
    settings = load(None, dict(zip(flags[::2], flags[1::2])) | {"data.num_workers": 0})
    settings.trainer.default_root_dir = str(tmp_path / "run")
    train, _, _ = tasks.loaders(settings)
    return [int(v) for _, labels in train for v in np.array(labels)]


def test_evaluate_numbers_the_test_labels_by_the_runs_classes(run, clips, tmp_path, capsys):
    test = tmp_path / "test"
    shutil.copytree(clips / "test", test)
    shutil.rmtree(test / "high")  # the run knows high, low, mid
    assert (
        main(["predict", "--run", str(run), "--data", str(test), "--out", str(tmp_path / "p.csv")])
        == 0
    )
    rows = rows_of(tmp_path / "p.csv")
    right = np.mean([r["label"] == Path(r["path"]).parent.name for r in rows])
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--data", str(test)]) == 0
    out = capsys.readouterr().out
    assert f"accuracy: {right:.4f} on 4 clips" in out, out
    matrix = (run / "evaluation" / "confusion.txt").read_text().splitlines()
    assert matrix[2].split() == ["high", "0", "0", "0"]  # no high clips: an empty row


def test_evaluate_names_a_class_the_run_does_not_know(run, clips, tmp_path, capsys):
    test = tmp_path / "test"
    shutil.copytree(clips / "test", test)
    shutil.copytree(test / "low", test / "owl")
    assert main(["evaluate", "--run", str(run), "--data", str(test)]) == 1
    err = capsys.readouterr().err
    assert "['owl'] are not among the classes ['high', 'low', 'mid']" in err
    assert len(err.strip().splitlines()) == 1


def test_evaluate_reads_a_manifests_class_column_named_on_its_command_line(
    run, clips, tmp_path, capsys
):
    """The message for a manifest without the run's label column names --data.label_column, and
    evaluate takes it (the test data's column, not the run's)."""
    files = sorted((clips / "test").glob("*/*.wav"))
    manifest = tmp_path / "test.csv"
    manifest.write_text("path,category\n" + "".join(f"{p},{p.parent.name}\n" for p in files))
    args = ["evaluate", "--run", str(run), "--data", str(manifest), "--out", str(tmp_path / "e")]
    assert main(args) == 2  # a setting to give (as train's)
    err = capsys.readouterr().err
    assert "has no 'label' column (columns: category, path)" in err and "--data.label_column" in err
    assert main([*args, "--data.label_column", "category"]) == 0
    assert main(["evaluate", "--run", str(run), "--data", str(clips / "test")]) == 0
    assert (tmp_path / "e" / "confusion.txt").read_text() == (
        run / "evaluation" / "confusion.txt"
    ).read_text()  # the same clips and labels as the class folders


def test_integer_labels_are_class_names(clips, tmp_path):
    manifest = tmp_path / "ints.csv"
    files = sorted((clips / "train").glob("*/*.wav"))
    numbers = {"high": 1, "low": 2, "mid": 3}
    manifest.write_text("path,label\n" + "".join(f"{p},{numbers[p.parent.name]}\n" for p in files))
    labels = train_labels(tmp_path, "data.train", str(manifest), "data.val_fraction", 0.2)
    assert sorted(set(labels)) == [0, 1, 2]  # "1".."3" -> 0..2, never 3 (past the outputs)


def test_the_classifier_refuses_a_label_past_its_classes():
    import mlx.core as mx

    module = classifier.AudioClassifier(load(None, {}), 3)
    with pytest.raises(ValueError, match="label index 3 is not a class of this model"):
        module.on_train_batch_start((mx.zeros((2, 16000)), mx.array([0, 3])), 0)


def test_every_unreadable_file_is_listed_before_training(clips, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(clips / "train", data)
    (data / "low" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (data / "mid" / "empty.flac").write_bytes(b"")
    (data / "low" / "._0.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS: not data
    shutil.copytree(data / "low", data / "__MACOSX" / "low")
    shutil.copy(data / "low" / "1.wav", data / "stray.wav")
    shutil.copy(data / "low" / "1.wav", data / "low" / "1.wave")
    (data / "mid" / "notes.txt").write_text("recorded on tuesday")
    args = ["train", "--data", str(data), "--trainer.default_root_dir", str(tmp_path / "r")]
    assert main([*args, *QUICK]) == 1
    captured = capsys.readouterr()
    assert "2 of 20 files cannot be read" in captured.err
    assert "broken.wav" in captured.err and "empty.flac" in captured.err
    assert "Traceback" not in captured.err and "._0" not in captured.out + captured.err
    for name in ("stray.wav", "1.wave", "notes.txt"):
        assert name in captured.out, captured.out
    assert "__MACOSX" not in captured.out
    assert main([*args, *QUICK, "--data.on_error", "skip"]) == 0
    assert "left out" in capsys.readouterr().out
    assert "broken.wav" in (tmp_path / "r" / "skipped.txt").read_text()


def test_a_file_failing_while_training_stops_in_one_line_or_is_skipped(clips, tmp_path, capfd):
    """Process workers: the error comes back from one, its warning is printed by one (capfd)."""
    data = tmp_path / "data"
    shutil.copytree(clips / "train", data)
    corrupt_flac(data / "mid" / "bad.flac")
    args = ["train", "--data", str(data), "--trainer.default_root_dir", str(tmp_path / "r"), *QUICK]
    args += ["--data.num_workers", "2", "--data.val_fraction", "0.01"]  # raised in a worker
    assert main(args) == 1
    err = capfd.readouterr().err
    assert "cannot read" in err and "bad.flac" in err and "data.on_error: skip" in err
    assert len(err.strip().splitlines()) == 1, err
    args[args.index(str(tmp_path / "r"))] = str(tmp_path / "r2")  # "r" holds the failed run
    assert main([*args, "--data.on_error", "skip"]) == 0
    out = capfd.readouterr()
    assert "dropped while training" in out.out and "bad.flac" in out.err  # warned
    assert "bad.flac" in (tmp_path / "r2" / "skipped.txt").read_text()


def test_predict_reads_a_flat_folder_a_file_and_a_tree(run, clips, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, path in enumerate(sorted((clips / "test").glob("*/*.wav"))):
        shutil.copy(path, flat / f"{i}.wav")
    out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(run), "--data", str(flat), "--out", str(out)]) == 0
    assert len(rows_of(out)) == 6
    one = str(flat / "0.wav")
    assert main(["predict", "--run", str(run), "--data", one, "--out", str(out)]) == 0
    assert [r["path"] for r in rows_of(out)] == [one]
    (flat / "later").mkdir()
    shutil.copy(flat / "0.wav", flat / "later" / "x.wav")  # one sub-folder beside the files
    assert main(["predict", "--run", str(run), "--data", str(flat), "--out", str(out)]) == 0
    assert len(rows_of(out)) == 7


def test_manifest_label_column_and_one_class(clips, tmp_path, capsys):
    files = sorted((clips / "train").glob("*/*.wav"))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,class\n" + "".join(f"{p},{p.parent.name}\n" for p in files))
    assert main(["train", "--data", str(manifest), *QUICK]) == 2  # a setting names the column
    err = capsys.readouterr().err
    assert "has no 'label' column (columns: class, path)" in err and "--data.label_column" in err
    labels = train_labels(tmp_path, "data.train", str(manifest), "data.label_column", "class")
    assert sorted(set(labels)) == [0, 1, 2]
    one = tmp_path / "one.csv"
    one.write_text("path,label\n" + "".join(f"{p},dog\n" for p in files))
    assert main(["train", "--data", str(one), *QUICK]) == 1
    assert "one class ('dog')" in capsys.readouterr().err
    assert main(["train", "--data", "/nowhere/at/all"]) == 2  # a path that is not there
    assert "--data /nowhere/at/all: no such file or folder" in capsys.readouterr().err


def test_a_manifest_with_another_separator_is_named_so(clips, tmp_path, capsys):
    """A ';'- or tab-separated .csv (or a comma-separated .tsv) reads as one column: the error
    says which separator the header has and which the suffix expects."""
    files = sorted((clips / "train").glob("*/*.wav"))
    for name, sep, said in (
        ("semi.csv", ";", "separated by ';', a .csv manifest by ','"),
        ("tabs.csv", "\t", "separated by tabs, a .csv manifest by ','"),
        ("commas.tsv", ",", "separated by ',', a .tsv manifest by tabs"),
    ):
        manifest = tmp_path / name
        manifest.write_text(f"path{sep}label\n" + "".join(f"{p}{sep}x\n" for p in files))
        assert main(["train", "--data", str(manifest), *QUICK]) == 1
        err = capsys.readouterr().err
        assert "needs a header line with a 'path' column" in err and said in err, err
        assert len(err.strip().splitlines()) == 1


def test_class_names_differing_only_in_case_or_spaces_are_warned_of(clips, tmp_path, capsys):
    files = sorted((clips / "train").glob("*/*.wav"))
    names = {"high": "high", "low": "Low", "mid": "mid"}  # and one "low " below
    rows = [f"{p},{names[p.parent.name]}" for p in files] + [f"{files[6]},low "]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    args = ["train", "--data", str(manifest), "--trainer.default_root_dir", str(tmp_path / "r")]
    assert main([*args, *QUICK]) == 0
    err = "".join(capsys.readouterr())  # the data's summary, with its warnings
    assert (
        "class names that differ only in case or surrounding spaces are different classes: "
        "'Low', 'low '" in err
    ), err


def test_the_validation_split_is_stratified_and_summarised(tmp_path, capsys):
    for name, count in (("common", 30), ("rare", 6), ("scarce", 4)):
        for i in range(count):
            tone(tmp_path / "data" / name / f"{i}.wav", 300.0, 0.25)
    settings = load(None, {"data.train": str(tmp_path / "data"), "data.val_fraction": 0.25})
    _, val, classes = tasks.datasets(settings, 16000)
    held = [classes[int(val[i][1])] for i in range(len(val))]
    assert {c: held.count(c) for c in classes} == {"common": 8, "rare": 2, "scarce": 1}
    out = capsys.readouterr().out
    assert "3 classes, 40 files, 10.0 s" in out and "stratified by class" in out
    assert "11 validation clips are too few to choose a checkpoint reliably" in out


def test_a_crop_of_a_long_recording_reads_only_the_crop(tmp_path, monkeypatch):
    for name, pitch in (("a", 300.0), ("b", 600.0)):
        tone(tmp_path / "data" / name / "long.wav", pitch, 600.0)  # ten minutes
        tone(tmp_path / "val" / name / "short.wav", pitch, 0.5)
    read = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        read.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    labels = train_labels(
        tmp_path, "data.train", str(tmp_path / "data"), "data.val", str(tmp_path / "val")
    )
    assert len(labels) == 2 and read and -1 not in read and max(read) <= 16000


def test_the_header_check_shows_progress_on_large_sets(tmp_path, capsys):
    from mlx_audio.cli import data

    paths = []
    for i in range(600):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], np.zeros(160, np.float32), 16000)
    table = data.check_headers(data.Table("x", paths, [0.0] * 600, [None] * 600), "raise")
    assert np.allclose(table.seconds, 0.01) and "checking files: 600/600" in capsys.readouterr().err


def test_in_memory_decodes_once_onto_the_device_and_trains(clips, tmp_path, capsys):
    """data.in_memory (issue 30): the clips are decoded once into a device-resident
    ArrayDataset (its memory printed), batched there, the same labels as from the files."""
    flags = ["data.train", str(clips / "train"), "trainer.seed", 3]
    settings = load(None, dict(zip(flags[::2], flags[1::2])) | {"data.in_memory": True})
    settings.trainer.default_root_dir = str(tmp_path / "run")
    train, val, classes = tasks.loaders(settings)
    assert train.dataset.on_device and val.dataset.on_device and classes == sorted(PITCHES)
    printed = capsys.readouterr().out
    assert "data.in_memory: 15 train clips on the device" in printed and " MiB" in printed
    from_files = sorted(train_labels(tmp_path, *flags))
    assert sorted(int(v) for _, labels in train for v in np.array(labels)) == from_files
    out = tmp_path / "trained"
    args = ["train", "--data", str(clips / "train"), "--trainer.default_root_dir", str(out)]
    assert main([*args, *QUICK, "--data.in_memory", "true"]) == 0
    assert (out / "checkpoints").is_dir() or any(out.rglob("*.safetensors"))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data.gain_db", "6"], "decodes every clip once, before training, so data.gain_db"),
        (["--data.noise_dir", "NOISE"], "so data.noise_dir (drawn per clip in the loader's workers)"),
        (["--model.name", "clap-audio-classifier"], "model.name cnn only, not clap-audio-classifier"),
        (["--model.name", "clap"], "data.in_memory: model.name cnn only, not clap"),
        (["--data.clip_seconds", "100000"], "GiB as float32 (twice that while they are gathered)"),
    ],
)  # fmt: skip
def test_in_memory_refuses_what_it_cannot_honour_in_one_line(
    clips, tmp_path, capsys, flags, message
):
    """data.in_memory would silently drop the workers' augmentations, ignore a CLAP model, or
    run the machine out of memory: each is refused before any clip is decoded (exit 2)."""
    flags = [str(clips / "train") if f == "NOISE" else f for f in flags]
    args = ["train", "--data", str(clips / "train"), "--trainer.default_root_dir", str(tmp_path)]
    assert main([*args, *QUICK, "--data.in_memory", "true", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("fraction", ["0", "1", "-0.2", "1.5"])
def test_a_val_fraction_outside_0_1_is_refused(clips, tmp_path, capsys, fraction):
    """0 held one clip of every class out all the same (at least one per class)."""
    args = ["train", "--data", str(clips / "train"), "--trainer.default_root_dir", str(tmp_path)]
    assert main([*args, *QUICK, "--data.val_fraction", fraction]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.val_fraction: the share of each class held out" in err[0], err
