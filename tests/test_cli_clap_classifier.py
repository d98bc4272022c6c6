"""`mlx-audio train --model.name clap-audio-classifier`: a CLAP folder's audio tower under a new
head, as a linear probe or fine-tuned (BackboneFinetuning-style: frozen until an epoch, then at a
lower rate); a tiny CLAP built here (no network), tone clips generated here."""

from __future__ import annotations

import json
import shutil

import mlx.core as mx
import numpy as np
import pytest

from mlx_audio.cli import main

CLASSES = {"low": 220.0, "mid": 440.0, "high": 880.0}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Noisy tones of three pitches, 0.4-1.2 s at 16 kHz, in class folders."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for label, pitch in CLASSES.items():
        (root / "train" / label).mkdir(parents=True)
        for i in range(12):
            t = np.arange(int(16000 * rng.uniform(0.4, 1.2))) / 16000
            wave = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(root / "train" / label / f"{i}.wav", wave, 16000)
    return root


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    """A small random CLAP in transformers' format (no tokenizer: the classifier needs none),
    with a preprocessor_config.json for 16 mel bins over 1 s at 16 kHz."""
    from mlx_audio.models.clap import CLAP, ClapConfig

    folder = tmp_path_factory.mktemp("clap")
    text = {"vocab_size": 16, "hidden_size": 32, "num_hidden_layers": 1}
    text |= {"num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 16}
    audio = {"spec_size": 64, "num_mel_bins": 16, "window_size": 4, "patch_size": 4}
    audio |= {"patch_stride": 4, "patch_embeds_hidden_size": 16, "hidden_size": 32}
    audio |= {"depths": [1, 1], "num_attention_heads": [2, 2]}
    config = {"text_config": text, "audio_config": audio, "projection_dim": 16}
    CLAP(ClapConfig.from_dict(config)).save_pretrained(str(folder))
    features = {"feature_size": 16, "sampling_rate": 16000, "hop_length": 160}
    features |= {"max_length_s": 1, "fft_window_size": 400, "frequency_max": 8000}
    features |= {"truncation": "rand_trunc", "padding": "repeatpad"}
    (folder / "preprocessor_config.json").write_text(json.dumps(features))
    return folder


COMMON = [
    "--model.name",
    "clap-audio-classifier",
    "--data.batch_size",
    "12",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.loggers",
    "[csv]",
    "--optimizer.lr",
    "1e-2",
    "--scheduler.name",
    "constant",
]


def tower(folder):
    from mlx_audio.models.clap import CLAP

    return flatten_params(CLAP.from_pretrained(str(folder)), ("audio_encoder", "audio_projection"))


def flatten_params(module, prefixes):
    from mlx.utils import tree_flatten

    return {
        k: np.array(v) for k, v in tree_flatten(module.parameters()) if k.split(".")[0] in prefixes
    }


def checkpoint_backbone(directory):
    weights = mx.load(str(directory / "model.safetensors"))
    return {
        k[len("backbone.") :]: np.array(v) for k, v in weights.items() if k.startswith("backbone.")
    }


def checkpoints(out):
    return sorted(
        (p for p in (out / "checkpoints").iterdir() if p.name.startswith("epoch=")),
        key=lambda p: p.name,
    )


def test_linear_probe_trains_only_the_head(tiny_clap, clips, tmp_path, capsys):
    out = tmp_path / "probe"
    args = ["train", "--data", str(clips / "train"), "--trainer.default_root_dir", str(out)]
    args += [*COMMON, "--model.pretrained", str(tiny_clap), "--model.freeze_backbone", "true"]
    assert main([*args, "--trainer.max_epochs", "2"]) == 0
    assert "val_accuracy=" in capsys.readouterr().out
    saved = json.loads((out / "run.json").read_text())
    assert saved["model"] == "clap-audio-classifier"
    before = tower(tiny_clap)
    for directory in checkpoints(out):
        after = checkpoint_backbone(directory)
        assert set(after) >= set(before)
        for key, value in before.items():
            np.testing.assert_array_equal(after[key], value, err_msg=key)
    # evaluate and predict read the run (CLAP's features, at its extractor's rate)
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(out),
                "--data",
                str(clips / "train"),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    assert "accuracy" in capsys.readouterr().out and (tmp_path / "ev" / "confusion.txt").exists()
    predicted = tmp_path / "pred.csv"
    assert (
        main(
            [
                "predict",
                "--run",
                str(out),
                "--data",
                str(clips / "train" / "low"),
                "--out",
                str(predicted),
            ]
        )
        == 0
    )
    rows = predicted.read_text().splitlines()
    assert rows[0] == "path,label,probability" and len(rows) == 13


def test_fine_tune_unfreezes_the_backbone_at_its_epoch(tiny_clap, clips, tmp_path, capsys):
    out = tmp_path / "fine"
    args = ["train", "--data", str(clips / "train"), "--trainer.default_root_dir", str(out)]
    args += [*COMMON, "--model.pretrained", str(tiny_clap), "--model.unfreeze_at_epoch", "1"]
    args += ["--model.backbone_lr_ratio", "0.5", "--trainer.max_epochs", "2"]
    args += ["--trainer.save_top_k", "-1"]
    assert main(args) == 0
    before = tower(tiny_clap)
    first, second = checkpoints(out)
    epoch0, epoch1 = checkpoint_backbone(first), checkpoint_backbone(second)
    key = "audio_projection.linear1.weight"
    assert key in before
    np.testing.assert_array_equal(epoch0[key], before[key])  # frozen in epoch 0
    assert not np.array_equal(epoch1[key], before[key])  # trained in epoch 1
    state = json.loads((second / "trainer_state.json").read_text())["callbacks"]
    (group,) = state["ScaledBackbone"]["param_groups"]
    assert group["lr"] == 0.5 and group["scale"] and "backbone." + key in group["names"]
    # a run stopped after epoch 0 and resumed ends with the same weights, bit for bit
    cut = tmp_path / "cut"
    args[args.index(str(out))] = str(cut)
    assert main([*args, "--trainer.max_epochs", "1"]) == 0
    assert main([*args, "--resume"]) == 0
    resumed = mx.load(str(checkpoints(cut)[-1] / "model.safetensors"))
    full = mx.load(str(second / "model.safetensors"))
    assert set(resumed) == set(full)
    for name, value in full.items():
        np.testing.assert_array_equal(np.array(resumed[name]), np.array(value), err_msg=name)


@pytest.mark.parametrize(
    "change, message",
    [
        (None, "needs --model.pretrained: a local CLAP folder"),
        ("missing", "is not a folder"),
        ("no_weights", "has no model.safetensors or pytorch_model.bin"),
        ("not_clap", "config.json is not a CLAP config"),
    ],
)
def test_a_wrong_pretrained_folder_is_one_message_and_exit_2(
    tiny_clap,
    clips,
    tmp_path,
    capsys,
    change,
    message,
):
    args = [
        "train",
        "--data",
        str(clips / "train"),
        "--trainer.default_root_dir",
        str(tmp_path / "r"),
    ]
    folder = tmp_path / "clap"
    if change is not None:
        shutil.copytree(tiny_clap, folder)
        if change == "missing":
            shutil.rmtree(folder)
        elif change == "no_weights":
            (folder / "model.safetensors").unlink()
        else:
            (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
        args += ["--model.pretrained", str(folder)]
    assert main([*args, *COMMON]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_freeze_and_unfreeze_together_is_refused(tiny_clap, clips, tmp_path, capsys):
    args = ["train", "--data", str(clips / "train"), "--model.pretrained", str(tiny_clap)]
    args += ["--model.freeze_backbone", "true", "--model.unfreeze_at_epoch", "1", *COMMON]
    assert main(args) == 2
    assert "set one of them" in capsys.readouterr().err


def test_a_folder_without_a_preprocessor_config_gets_the_models_mel_bins(tiny_clap, tmp_path):
    """A folder from save_pretrained has no preprocessor_config.json: the extractor's mel bins
    come from the model's config (transformers' default, 64, made its input the wrong shape)."""
    from mlx_audio.cli.clap_tasks import extractor_for
    from mlx_audio.models.clap.config import ClapAudioConfig

    bare = tmp_path / "bare"
    shutil.copytree(tiny_clap, bare)
    (bare / "preprocessor_config.json").unlink()
    assert extractor_for(str(bare)).feature_size == 16  # read from its config.json
    (bare / "config.json").unlink()
    assert extractor_for(str(bare), ClapAudioConfig()).feature_size == 64  # the config given
