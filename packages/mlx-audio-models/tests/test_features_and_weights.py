"""Feature-extractor parity on real waveforms; the torch-free .bin reader, honest and hostile."""

import os
import pickle
import shutil
import subprocess
import sys
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


SMALL_BIN = """
import sys, torch
torch.manual_seed(0)
base = torch.randn(6, 5)
state = {
    "w": torch.randn(4, 3),
    "half": torch.randn(3, 2).half(),
    "bf16": torch.randn(2, 2).bfloat16(),
    "ints": torch.arange(7),
    "scalar": torch.tensor(3.5),
    "view": base[1:5, ::2],          # an offset, non-contiguous view of a shared storage
    "shared": base,
    "flags": torch.tensor([True, False]),
}
torch.save(state, sys.argv[1])
"""

FUZZ = """
import pickle, random, shutil, sys, zipfile
import numpy as np
from mlx_audio.models.clap.weights import load_torch_bin

checked = np.lib.stride_tricks.as_strided
violations = []
def bounded(x, shape=None, strides=None, **kw):  # the invariant: no view past its buffer
    if shape and all(n > 0 for n in shape):
        extent = sum((n - 1) * s for n, s in zip(shape, strides)) + x.itemsize
        if min(strides) < 0 or extent > x.nbytes:
            violations.append((shape, strides, x.nbytes))
            raise MemoryError("out-of-bounds view prevented by the test harness")
    return checked(x, shape=shape, strides=strides, **kw)
np.lib.stride_tricks.as_strided = bounded

source, scratch, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
with zipfile.ZipFile(source) as archive:
    members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
pkl = next(name for name in members if name.endswith("data.pkl"))
rng = random.Random(0)
outcomes = {"loaded": 0, "refused": 0}
for trial in range(trials):
    files = dict(members)
    kind = trial % 4
    data = bytearray(files[pkl])
    if kind in (0, 1):                       # flip bytes of the pickle (sizes, strides, offsets, opcodes)
        for _ in range(1 + kind * 3):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 2:                          # truncate the pickle or a storage
        victim = rng.choice([n for n in files if n != pkl] + [pkl])
        files[victim] = files[victim][: rng.randrange(max(1, len(files[victim])))]
    else:                                    # small integers (sizes, strides, offsets) made big
        for i in range(len(data) - 1):
            if data[i] == ord("K") and rng.random() < 0.15:  # BININT1 <byte>
                data[i + 1] = rng.choice([0, 1, 7, 200, 255])
    if kind != 2:
        files[pkl] = bytes(data)
    path = f"{scratch}/fuzz.bin"
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in files.items():
            archive.writestr(name, blob)
    try:
        arrays = load_torch_bin(path)
        outcomes["loaded"] += 1
        for value in arrays.values():            # a loaded tensor only holds bytes of its storage
            value.tobytes()
    except (pickle.UnpicklingError, ValueError) as error:
        assert "fuzz.bin" in str(error), error   # every refusal names the file
        outcomes["refused"] += 1
print("OUTCOMES", outcomes["loaded"], outcomes["refused"], len(violations))
"""


def test_fuzzed_bin_files_never_crash_or_read_outside_their_storage(anchor, tmp_path):
    """1,000 mutated copies of a real torch-written .bin: each loads or is refused with an
    error naming the file; the process never crashes (it runs in a subprocess, so a segfault
    would fail the test) and no tensor is built from bytes outside its storage."""
    source = tmp_path / "small.bin"
    anchor(SMALL_BIN, str(source))
    exact = load_torch_bin(str(source))
    assert (
        exact["view"].shape == (4, 3)
        and exact["bf16"].dtype == np.float32
        and exact["scalar"] == 3.5
    )
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ)
    result = subprocess.run(
        [sys.executable, str(script), str(source), str(tmp_path), "1000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded, refused, out_of_bounds = map(int, result.stdout.split("OUTCOMES")[1].split())
    assert loaded + refused == 1000 and refused > 300, (loaded, refused)
    assert out_of_bounds == 0, f"{out_of_bounds} files would have been read outside their storage"


def test_a_crafted_size_past_the_storage_is_refused(anchor, tmp_path):
    """'w' is a (4, 3) tensor; the same file with its size edited to (200, 3) would make
    as_strided read 2.4 KB past the storage (other memory, or a crash): it is refused."""
    source = tmp_path / "small.bin"
    anchor(SMALL_BIN, str(source))
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    pkl = next(name for name in members if name.endswith("data.pkl"))
    assert b"K\x04K\x03\x86" in members[pkl]
    members[pkl] = members[pkl].replace(b"K\x04K\x03\x86", b"K\xc8K\x03\x86", 1)
    crafted = tmp_path / "crafted.bin"
    with zipfile.ZipFile(crafted, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    with pytest.raises(
        pickle.UnpicklingError, match=r"crafted\.bin: tensor reads element \d+ of a storage of 12"
    ):
        load_torch_bin(str(crafted))
