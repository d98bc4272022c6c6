"""Worker-side waveform augmentation (audiomentations' semantics): seeded per sample, so the
same with 0 or N workers and across a mid-epoch resume; SNR, gain and shift statistics."""

import json

import numpy as np
import pytest
import soundfile
from scipy import stats

from mlx_audio.data import AudioFolder, DataLoader, Dataset
from mlx_audio.data.audio.augment import (
    AddBackgroundNoise,
    ApplyImpulseResponse,
    Compose,
    Gain,
    OneOf,
    Shift,
    SpeedPerturbation,
)

RATE = 8000


def write(path, wave):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.asarray(wave, dtype=np.float32), RATE, subtype="FLOAT")


@pytest.fixture
def noise_dir(tmp_path):
    rng = np.random.default_rng(0)
    for i, n in enumerate((3000, 9000, 500)):  # shorter and longer than the clips
        write(tmp_path / "noise" / f"n{i}.wav", rng.standard_normal(n) * 0.3)
    return tmp_path / "noise"


@pytest.fixture
def rir_dir(tmp_path):
    ir = np.zeros(200, np.float32)
    ir[0], ir[50], ir[150] = 1.0, 0.5, 0.25
    write(tmp_path / "rir" / "room.wav", ir)
    return tmp_path / "rir"


class Tones(Dataset):
    def __len__(self):
        return 24

    def __getitem__(self, index):
        t = np.arange(4000) / RATE
        return np.sin(2 * np.pi * (200 + 20 * index) * t).astype(np.float32) * 0.5, index


def pipeline(noise_dir, rir_dir):
    return Compose(
        [
            Gain(-6, 6, p=0.8),
            Shift(-0.2, 0.2, p=0.5),
            OneOf(
                [
                    AddBackgroundNoise(noise_dir, 5, 20, p=1.0, sample_rate=RATE),
                    ApplyImpulseResponse(rir_dir, p=1.0, sample_rate=RATE),
                ]
            ),
        ]
    )


@pytest.mark.parametrize("num_workers", [0, 2])
def test_augmented_batches_do_not_depend_on_workers_and_resume_exactly(
    noise_dir, rir_dir, num_workers
):
    def make(workers):
        return DataLoader(
            Tones(),
            batch_size=4,
            shuffle=True,
            seed=11,
            num_workers=workers,
            cpu_transforms=[pipeline(noise_dir, rir_dir)],
        )

    reference = [np.array(w) for w, _ in make(0)]
    assert not np.allclose(reference[0], np.array(next(iter(DataLoader(Tones(), 4)))[0]))
    loader = make(num_workers)
    seen = []
    for i, (wave, _) in enumerate(loader):
        seen.append(np.array(wave))
        if i == 2:
            state = json.loads(json.dumps(loader.state_dict()))
            break
    resumed = make(num_workers)
    resumed.load_state_dict(state)
    for a, b in zip(seen + [np.array(w) for w, _ in resumed], reference, strict=True):
        np.testing.assert_array_equal(a, b)
    second = [np.array(w) for w, _ in make(0)]  # a new loader replays epoch 0 ...
    np.testing.assert_array_equal(second[0], reference[0])


def test_a_dataset_transform_draws_from_the_sample_generator(tmp_path, noise_dir):
    for i in range(4):
        write(tmp_path / "data" / "a" / f"{i}.wav", np.full(2000, 0.1 * (i + 1)))
    data = AudioFolder(tmp_path / "data", transform=Gain(-10, 10, p=1.0))
    one = [np.array(w) for w, _ in DataLoader(data, batch_size=2, seed=3)]
    two = [np.array(w) for w, _ in DataLoader(data, batch_size=2, seed=3, num_workers=2)]
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_background_noise_is_mixed_at_the_drawn_snr(noise_dir):
    """audiomentations' rule: noise scaled to rms(signal) / 10^(snr/20); SNR ~ U(min, max)."""
    rng = np.random.default_rng(1)
    clean = rng.standard_normal(4000).astype(np.float32) * 0.1
    exact = AddBackgroundNoise(noise_dir, 12.0, 12.0, p=1.0, sample_rate=RATE)
    for seed in range(5):
        noisy = exact(clean, rng=np.random.default_rng(seed))
        snr = 20 * np.log10(np.sqrt(np.mean(clean**2)) / np.sqrt(np.mean((noisy - clean) ** 2)))
        assert snr == pytest.approx(12.0, abs=1e-3)
    spread = AddBackgroundNoise(noise_dir, 3.0, 30.0, p=1.0, sample_rate=RATE)
    snrs = []
    for seed in range(300):
        noisy = spread(clean, rng=np.random.default_rng(seed))
        snrs.append(20 * np.log10(np.std(clean) / np.sqrt(np.mean((noisy - clean) ** 2))))
    assert stats.kstest((np.array(snrs) - 3.0) / 27.0, "uniform").pvalue > 0.01
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(spread(silent, rng=np.random.default_rng(0)), silent)


def test_gain_is_uniform_in_decibels_and_applies_with_probability_p():
    wave = np.ones(10, np.float32)
    gain = Gain(-12, 12, p=0.5)
    outs = [gain(wave, rng=np.random.default_rng(s))[0] for s in range(600)]
    db = 20 * np.log10(np.array(outs))
    changed = db[np.abs(db) > 1e-6]
    assert 0.4 < len(changed) / len(db) < 0.6
    assert stats.kstest((changed + 12) / 24, "uniform").pvalue > 0.01


def test_shift_rolls_over_or_fills_zeros():
    wave = np.arange(1, 11, dtype=np.float32)
    roll = Shift(3, 3, shift_unit="samples", p=1.0)(wave, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(roll, np.roll(wave, 3))
    left = Shift(-0.2, -0.2, rollover=False, p=1.0)(wave, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(left, [3, 4, 5, 6, 7, 8, 9, 10, 0, 0])
    seconds = Shift(0.001, 0.001, "seconds", False, p=1.0, sample_rate=RATE)
    np.testing.assert_array_equal(seconds(wave, rng=np.random.default_rng(0))[:9], [0] * 8 + [1])
    sample = {"audio": wave, "label": 3}  # a dict sample: the "audio" entry is transformed
    out = Shift(1, 1, "samples", p=1.0)(sample, rng=np.random.default_rng(0))
    assert out["label"] == 3 and out["audio"][0] == 10


def test_speed_perturbation_resamples_like_torchaudio_speed():
    t = np.arange(RATE) / RATE
    wave = np.sin(2 * np.pi * 400 * t).astype(np.float32)
    fast = SpeedPerturbation(RATE, [1.25], p=1.0)(wave, rng=np.random.default_rng(0))
    assert abs(len(fast) - RATE / 1.25) <= 1  # torchaudio: ceil(n * orig / (orig * factor))
    spectrum = np.abs(np.fft.rfft(fast))
    assert np.argmax(spectrum) * RATE / len(fast) == pytest.approx(500, abs=3)  # 400 Hz x 1.25
    same = SpeedPerturbation(RATE, [1.0], p=1.0)(wave, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(same, wave)


def test_impulse_response_is_a_convolution(rir_dir):
    wave = np.zeros(400, np.float32)
    wave[10] = 1.0
    out = ApplyImpulseResponse(rir_dir, p=1.0, sample_rate=RATE)(wave, rng=np.random.default_rng(0))
    assert out.shape == wave.shape
    assert np.flatnonzero(np.abs(out) > 1e-4).tolist() == [10, 60, 160]
    np.testing.assert_allclose(out[[10, 60, 160]], [0.5, 0.25, 0.125], atol=1e-5)  # peak 0.5
    longer = ApplyImpulseResponse(rir_dir, p=1.0, leave_length_unchanged=False, sample_rate=RATE)
    assert longer(wave, rng=np.random.default_rng(0)).shape == (599,)


def test_multichannel_clips_keep_their_channels(noise_dir, rir_dir):
    wave = np.random.default_rng(0).standard_normal((2, 4000)).astype(np.float32) * 0.1
    for transform in (
        Gain(p=1.0),
        Shift(p=1.0),
        AddBackgroundNoise(noise_dir, p=1.0, sample_rate=RATE),
        ApplyImpulseResponse(rir_dir, p=1.0, sample_rate=RATE),
    ):
        out = transform(wave, rng=np.random.default_rng(1))
        assert out.shape == (2, 4000) and out.dtype == np.float32
    fast = SpeedPerturbation(RATE, [1.1], p=1.0)(wave, rng=np.random.default_rng(1))
    assert fast.shape[0] == 2 and abs(fast.shape[1] - 4000 / 1.1) <= 1


def test_the_file_cache_is_not_pickled(noise_dir):
    import pickle

    noise = AddBackgroundNoise(noise_dir, p=1.0, sample_rate=RATE)
    noise(np.ones(100, np.float32), rng=np.random.default_rng(0))
    assert noise._cache and not pickle.loads(pickle.dumps(noise))._cache


def test_bad_arguments_are_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        Gain(p=1.5)
    with pytest.raises(ValueError, match="min_gain_db must be <= max_gain_db"):
        Gain(6, -6)
    with pytest.raises(ValueError, match=r"shifts must be in \[-1, 1\], got -2"):
        Shift(-2, 0.5)
    with pytest.raises(ValueError, match="shift_unit must be"):
        Shift(shift_unit="ms")
    with pytest.raises(FileNotFoundError, match="no audio files"):
        AddBackgroundNoise(tmp_path, sample_rate=RATE)
    with pytest.raises(FileNotFoundError, match="neither an audio file nor a folder"):
        ApplyImpulseResponse(tmp_path / "missing", sample_rate=RATE)
    with pytest.raises(ValueError, match="factors must be positive"):
        SpeedPerturbation(RATE, [0.0])
