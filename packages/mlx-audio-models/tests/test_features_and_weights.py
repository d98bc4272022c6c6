"""Feature-extractor parity on real waveforms; the torch-free .bin reader, honest and hostile."""

import os
import pickle
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_audio.models.clap import CLAP, ClapFeatureExtractor
from mlx_audio.models.clap.weights import load_torch_bin


def speech(tmp_path) -> np.ndarray:
    """A few seconds of synthesized speech at 48 kHz (espeak-ng, installed by the Makefile)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    wav = tmp_path / "speech.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-w",
            str(wav),
            "the quick brown fox jumps over the lazy dog near the river bank",
        ],
        check=True,
    )
    import soundfile

    from mlx_audio.data.audio import load_audio

    wave, rate = load_audio(str(wav), sample_rate=48_000)
    assert rate == 48_000 and soundfile.info(str(wav)).duration > 2
    return wave.astype(np.float64)


REFERENCE = """
import sys, numpy as np
from transformers import ClapFeatureExtractor
data = dict(np.load(sys.argv[1]))
out = {}
for truncation in ("rand_trunc", "fusion"):
    extractor = ClapFeatureExtractor(truncation=truncation)
    for name, wave in data.items():
        np.random.seed(7)
        features = extractor([wave], sampling_rate=48000, return_tensors="np")
        out[f"{truncation}/{name}"] = features["input_features"]
        out[f"{truncation}/{name}/longer"] = features["is_longer"]
np.savez(sys.argv[2], **out)
"""


def test_feature_extractor_matches_transformers(anchor, tmp_path):
    rng = np.random.default_rng(0)
    voice = speech(tmp_path)
    waves = {
        "speech": voice,
        "speech_x4": np.tile(voice, 4),  # longer than 10 s
        "tone_3s": np.sin(2 * np.pi * 440 * np.arange(3 * 48000) / 48000),
        "noise_12s": rng.standard_normal(12 * 48000) * 0.1,
    }
    np.savez(tmp_path / "waves.npz", **waves)
    anchor(REFERENCE, str(tmp_path / "waves.npz"), str(tmp_path / "ref.npz"))
    ref = np.load(tmp_path / "ref.npz")
    worst = 0.0
    for truncation in ("rand_trunc", "fusion"):
        ours = ClapFeatureExtractor(truncation=truncation)
        for name, wave in waves.items():
            got = ours([wave], sampling_rate=48000, random_state=7)
            expected = ref[f"{truncation}/{name}"].transpose(0, 1, 3, 2)
            assert got["input_features"].shape == expected.shape
            error = float(np.abs(got["input_features"] - expected).max())
            print(truncation, name, error)
            worst = max(worst, error)
            np.testing.assert_array_equal(got["is_longer"], ref[f"{truncation}/{name}/longer"])
    print("feature extractor max abs error (dB):", worst)
    assert worst < 1e-4


def test_feature_extractor_errors():
    with pytest.raises(ValueError, match="48000 Hz, got 16000"):
        ClapFeatureExtractor()(np.zeros(100), sampling_rate=16000)
    with pytest.raises(ValueError, match="truncation"):
        ClapFeatureExtractor(truncation="cut")


BIN = """
import sys, torch
from transformers import ClapConfig, ClapModel
import json
torch.manual_seed(0)
model = ClapModel(ClapConfig(**json.loads(sys.argv[2])))
model.save_pretrained(sys.argv[1])                      # safetensors
torch.save(model.state_dict(), sys.argv[1] + "/pytorch_model.bin")  # the laion repos' format
"""


def test_torch_written_bin_loads_without_torch(anchor, tmp_path):
    from conftest import tiny_config

    anchor(BIN, str(tmp_path), tiny_config())
    from_safetensors = CLAP.from_pretrained(str(tmp_path))
    os.remove(tmp_path / "model.safetensors")
    from_bin = CLAP.from_pretrained(str(tmp_path))
    for (k, a), (_, b) in zip(
        tree_flatten(from_safetensors.parameters()), tree_flatten(from_bin.parameters())
    ):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=k)
    arrays = load_torch_bin(str(tmp_path / "pytorch_model.bin"))
    assert arrays["text_model.embeddings.word_embeddings.weight"].shape == (99, 32)


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/mlx_audio_pickle_executed"


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / "pytorch_model.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle posix\.system"):
        load_torch_bin(str(path))
    assert not os.path.exists(MARKER)
    with open(tmp_path / "config.json", "w") as f:
        f.write("{}")
    with pytest.raises(pickle.UnpicklingError):
        CLAP.from_pretrained(str(tmp_path))
    assert not os.path.exists(MARKER)
