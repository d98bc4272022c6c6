import numpy as np
import pytest

from mlx_audio.data.audio import (
    hz_to_mel,
    load_audio,
    log_mel_spectrogram,
    mel_filterbank,
    mel_to_hz,
    resample,
    stft,
)


def test_mel_scales_round_trip_and_known_points():
    hz = np.array([0.0, 500.0, 1000.0, 4000.0, 14000.0])
    for scale in ("slaney", "htk"):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz, scale), scale), hz, rtol=1e-9, atol=1e-9)
    assert hz_to_mel(1000.0, "slaney") == pytest.approx(15.0)  # 1000 / (200/3)
    assert hz_to_mel(1000.0, "htk") == pytest.approx(999.9855, rel=1e-6)


def test_filterbank_shape_support_and_slaney_area():
    fb = mel_filterbank(48000, 1024, 64, 50, 14000)
    assert fb.shape == (513, 64) and fb.dtype == np.float32
    freqs = np.linspace(0, 24000, 513)
    assert not fb[freqs > 14000.5].any() and not fb[freqs < 49.5].any()
    # Slaney normalisation: each triangle has area 1 in Hz (up to sampling of the grid)
    areas = fb.sum(axis=0) * (freqs[1] - freqs[0])
    np.testing.assert_allclose(areas[20:], 1.0, rtol=0.05)  # wide enough to sample well
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(16000, 512, 40, 0, 9000)


def test_stft_finds_a_sine_and_matches_a_direct_dft():
    rate, n_fft, hop = 16000, 512, 128
    t = np.arange(rate) / rate
    wave = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    spec = stft(wave, n_fft, hop)
    assert spec.shape == (1 + rate // hop, n_fft // 2 + 1)
    assert np.argmax(np.abs(spec[20])) == round(1000 * n_fft / rate)
    frame = np.pad(wave, n_fft // 2, mode="reflect")[5 * hop : 5 * hop + n_fft]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    direct = np.array(
        [
            np.sum(frame * window * np.exp(-2j * np.pi * k * np.arange(n_fft) / n_fft))
            for k in range(n_fft // 2 + 1)
        ]
    )
    np.testing.assert_allclose(spec[5], direct, rtol=1e-3, atol=1e-2)


def test_log_mel_layout_and_top_db():
    wave = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32)
    mel = log_mel_spectrogram(wave, 48000, n_fft=1024, hop_length=480, n_mels=64, top_db=80)
    assert mel.shape == (2, 64, 101) and mel.dtype == np.float32
    assert mel.max() - mel.min() <= 80 + 1e-3


def test_load_and_resample_real_file(tmp_path):
    soundfile = pytest.importorskip("soundfile", reason="audio extra not installed")
    rate = 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    path = tmp_path / "tone.wav"
    soundfile.write(path, np.stack([tone, tone], axis=1), rate)
    wave, sr = load_audio(str(path))
    assert sr == rate and wave.shape == (rate,)
    np.testing.assert_allclose(wave, tone, atol=1e-4)
    down, sr = load_audio(str(path), sample_rate=16000)
    assert sr == 16000 and abs(len(down) - 16000) <= 1
    spec = np.abs(np.fft.rfft(down))
    assert abs(np.argmax(spec) * 16000 / len(down) - 440) < 2
    with pytest.raises(ValueError):
        resample(tone, 0, 16000)
