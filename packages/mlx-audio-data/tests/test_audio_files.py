"""Real audio files in: windowed decoding in every format, AudioFolder / AudioManifest,
padding and bucketing of mixed lengths, log-mel on the accelerator."""

from __future__ import annotations

import json
import os

import mlx.core as mx
import numpy as np
import pytest
import soundfile as sf

from mlx_audio.data import (
    AudioFolder,
    AudioManifest,
    BucketBatchSampler,
    DataLoader,
    LogMel,
    PadCollate,
    PadOrCrop,
    RandomCrop,
    audio_info,
    load_audio,
    log_mel_spectrogram,
    pad_collate,
)
from mlx_audio.data.audio import AudioDecodeError

RATE = 16000


def tone(seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return (
        np.stack([wave * (c + 1) / channels for c in range(channels)], 1) if channels > 1 else wave
    )


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_audio_reads_a_window_in_every_libsndfile_format(tmp_path, ext):
    path = tmp_path / f"a.{ext}"
    sf.write(path, tone(3.0, channels=2), RATE)
    full, rate = load_audio(path, mono=False)
    window, _ = load_audio(path, mono=False, offset=1.0, duration=0.5)
    assert rate == RATE and full.shape[0] == 2 and window.shape == (2, RATE // 2)
    assert audio_info(path)[1:] == (RATE, 2)
    if ext in ("wav", "flac"):  # lossless: the window is exactly that slice
        np.testing.assert_array_equal(window, full[:, RATE : RATE + RATE // 2])
    mono, _ = load_audio(path, offset=1.0, duration=0.5)
    np.testing.assert_allclose(mono, window.mean(0), atol=1e-6)
    resampled, new_rate = load_audio(path, sample_rate=8000, offset=1.0, duration=0.5)
    assert new_rate == 8000 and resampled.shape == (4000,) and resampled.dtype == np.float32


def test_load_audio_seeks_instead_of_decoding_everything(tmp_path):
    path = tmp_path / "long.flac"
    sf.write(path, np.zeros(RATE * 600, np.float32), RATE)  # 10 minutes
    import time

    start = time.perf_counter()
    for _ in range(20):
        load_audio(path, offset=500.0, duration=0.1)
    windowed = time.perf_counter() - start
    start = time.perf_counter()
    load_audio(path)
    whole = time.perf_counter() - start
    assert windowed < whole, (windowed, whole)  # 20 windows cost less than one full decode


def test_integer_frames_from_pyav_scale_as_libsndfile_does(tmp_path):
    """16-bit PCM decoded by PyAV (a Matroska file, which libsndfile does not read) comes out as
    a float read of a WAV would: /32768, in [-1, 1) (it was /32767, -1.00003 at the bottom)."""
    av = pytest.importorskip("av")
    pcm = np.array([[-32768, -16384, 0, 16384, 32767] * 400], np.int16)
    path = tmp_path / "pcm.mka"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    wave, rate = load_audio(path)
    assert rate == 8000 and wave.dtype == np.float32
    np.testing.assert_array_equal(wave, pcm[0].astype(np.float32) / 32768)
    np.testing.assert_array_equal(load_audio(path, dtype=np.int16)[0], pcm[0])


def test_m4a_through_the_ffmpeg_extra(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "a.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone(2.0)[None, :], format="flt", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    wave, rate = load_audio(path, offset=0.5, duration=0.5)
    assert rate == RATE and wave.shape == (RATE // 2,) and 0.3 < np.abs(wave).max() < 0.7


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio" * 20)
    with pytest.raises(AudioDecodeError, match="bad.wav"):
        load_audio(bad)
    with pytest.raises(ValueError, match="offset"):
        load_audio(bad, offset=-1)


def make_folder(root, lengths=(0.5, 1.0, 1.5), classes=("dog", "cat")):
    for c, name in enumerate(classes):
        os.makedirs(root / name / "sub", exist_ok=True)
        for i, seconds in enumerate(lengths):
            folder = root / name / ("sub" if i % 2 else "")
            sf.write(folder / f"{i}.wav", tone(seconds, 200 + 100 * c), RATE)
    (root / "cat" / "notes.txt").write_text("not audio")


def test_audio_folder_is_an_image_folder_for_audio(tmp_path):
    make_folder(tmp_path)
    data = AudioFolder(tmp_path, sample_rate=8000)
    assert data.classes == ["cat", "dog"] and data.class_to_idx == {"cat": 0, "dog": 1}
    assert len(data) == 6 and data.targets == [0, 0, 0, 1, 1, 1]
    wave, label = data[4]
    # sorted paths: dog/0.wav, dog/2.wav, dog/sub/1.wav -> index 4 is the 1.5 s file, at 8 kHz
    assert label == 1 and wave.dtype == np.float32 and wave.shape == (12000,)
    assert data.lengths().tolist() == [4000, 12000, 8000] * 2
    with pytest.raises(FileNotFoundError, match="no class folders"):
        AudioFolder(tmp_path / "cat" / "sub")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="empty"):
        AudioFolder(tmp_path)
    assert len(AudioFolder(tmp_path, allow_empty=True)) == 6


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_audio_manifest_rows_with_windows_labels_and_captions(tmp_path, kind):
    os.makedirs(tmp_path / "clips")
    sf.write(tmp_path / "clips" / "a.wav", tone(2.0), RATE)
    sf.write(tmp_path / "clips" / "b.flac", tone(1.0, 300), RATE)
    rows = [
        {
            "path": "clips/a.wav",
            "label": "yes",
            "caption": "a tone",
            "offset": 0.5,
            "duration": 1.0,
        },
        {"path": str(tmp_path / "clips" / "b.flac"), "label": "no", "caption": "another"},
    ]
    manifest = tmp_path / f"m.{kind}"
    if kind == "csv":
        manifest.write_text(
            "path,label,caption,offset,duration\n"
            "clips/a.wav,yes,a tone,0.5,1.0\n" + f"{rows[1]['path']},no,another,,\n"
        )
    else:
        manifest.write_text("\n".join(json.dumps(r) for r in rows))
    data = AudioManifest(manifest)
    assert len(data) == 2 and data.classes == ["no", "yes"]
    wave, label, caption = data[0]
    assert wave.shape == (RATE,) and label == 1 and caption == "a tone"
    assert data.lengths().tolist() == [RATE, RATE]
    item = AudioManifest(manifest, as_dict=True)[1]
    assert set(item) == {"audio", "label", "caption"} and item["label"] == 0


def test_audio_manifest_errors_point_at_the_row(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nmissing.wav,1\n")
    with pytest.raises(FileNotFoundError, match="row 2.*missing.wav"):
        AudioManifest(manifest)
    manifest.write_text("file,label\nx.wav,1\n")
    with pytest.raises(ValueError, match="'path' column"):
        AudioManifest(manifest)
    (tmp_path / "m.jsonl").write_text('{"path": "x.wav"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        AudioManifest(tmp_path / "m.jsonl")


def test_pad_collate_shapes_lengths_and_masks():
    waves = [np.ones(n, np.float32) for n in (3, 5, 4)]
    padded, lengths = pad_collate(waves)
    assert padded.shape == (3, 5) and lengths.tolist() == [3, 5, 4] and lengths.dtype == np.int32
    assert padded[0].tolist() == [1, 1, 1, 0, 0]
    samples = [(np.full((2, n), 1.0, np.float32), i, f"s{i}") for i, n in enumerate((3, 7))]
    waves, labels, names, lengths, mask = PadCollate(-1.0, pad_to_multiple_of=4, return_mask=True)(
        samples
    )
    assert waves.shape == (2, 2, 8) and waves[0, 0, 3] == -1.0 and labels.tolist() == [0, 1]
    assert names == ["s0", "s1"] and mask.shape == (2, 8) and mask.sum(1).tolist() == [3, 7]
    dicts = [{"audio": np.zeros((n, 4), np.float32), "label": 1} for n in (2, 6)]
    out = PadCollate(axis=0, pad_to_lengths=[4, 8, 16])(dicts)
    assert out["audio"].shape == (2, 8, 4) and out["audio_lengths"].tolist() == [2, 6]
    with pytest.raises(ValueError, match="longer than the largest"):
        PadCollate(pad_to_lengths=[4])([np.zeros(5)])
    with pytest.raises(ValueError, match="only axis"):
        pad_collate([np.zeros((2, 3)), np.zeros((3, 3))])


def test_crops_are_seeded_per_sample_and_exact_lengths():
    wave = np.arange(10, dtype=np.float32)
    rng = np.random.default_rng(0)
    crop = RandomCrop(4)(wave, rng=rng)
    assert crop.shape == (4,) and crop[1] - crop[0] == 1
    assert RandomCrop(12)(wave, rng=rng).tolist() == list(range(10)) + [0, 0]
    assert PadOrCrop(4, align="center")((wave, 3))[0].tolist() == [3, 4, 5, 6]
    assert PadOrCrop(3)({"audio": wave, "label": 1})["audio"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_folder_of_mixed_lengths_trains_through_the_loader(tmp_path, num_workers):
    make_folder(tmp_path, lengths=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5))
    data = AudioFolder(tmp_path, sample_rate=8000)
    sampler = BucketBatchSampler(data.lengths(), batch_size=2, num_buckets=3, seed=0)
    loader = DataLoader(
        data,
        batch_sampler=sampler,
        collate_fn=PadCollate(pad_to_lengths=sampler.boundaries),
        cpu_transforms=[RandomCrop(9000)],
        num_workers=num_workers,
        mlx_transforms=LogMel(8000, n_fft=256, hop_length=128, n_mels=16),
    )
    shapes = set()
    seen = []
    for mel, labels, lengths in loader:
        assert lengths.dtype == mx.int32 and int(lengths.max()) <= 9000
        assert isinstance(mel, mx.array) and mel.shape[:2] == (2, 16)
        shapes.add(mel.shape)
        seen.extend(labels.tolist())
    assert sorted(seen) == sorted(data.targets) and len(shapes) <= len(sampler.boundaries)

    def waves(workers):  # same seed: same crops and batches, with or without workers
        return [
            np.array(w)
            for w, *_ in DataLoader(
                data,
                batch_sampler=BucketBatchSampler(data.lengths(), 2, 3),
                collate_fn=PadCollate(pad_to_lengths=sampler.boundaries),
                cpu_transforms=[RandomCrop(9000)],
                num_workers=workers,
                seed=7,
            )
        ]

    for a, b in zip(waves(0), waves(num_workers), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bucket_sampler_covers_every_index_once_and_is_seeded():
    lengths = np.random.default_rng(0).integers(100, 1000, 103)
    sampler = BucketBatchSampler(lengths, batch_size=8, num_buckets=4, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(103)) and len(batches) == len(
        sampler
    )
    for batch in batches:  # each batch from one bucket
        assert len({int(sampler.bucket_of[i]) for i in batch}) == 1
    assert list(sampler) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    dropped = BucketBatchSampler(lengths, 8, 4, drop_last=True, seed=3)
    assert all(len(b) == 8 for b in dropped) and len(list(dropped)) == len(dropped)
    ordered = list(BucketBatchSampler(lengths, 8, 4, shuffle=False))
    assert [int(sampler.bucket_of[b[0]]) for b in ordered] == sorted(
        int(sampler.bucket_of[b[0]]) for b in ordered
    )
    random_batches = [lengths[i : i + 8] for i in range(0, 103, 8)]
    random_padding = 1 - lengths.sum() / sum(b.max() * len(b) for b in random_batches)
    assert sampler.padding_fraction() < random_padding
    with pytest.raises(ValueError, match="exceeds the last boundary"):
        BucketBatchSampler(lengths, 8, boundaries=[500])


def test_bucket_sampler_resumes_exactly_through_the_loader():
    lengths = np.arange(1, 41)
    data = [np.ones(n, np.float32) for n in lengths]

    def make():
        return DataLoader(
            data, batch_sampler=BucketBatchSampler(lengths, 4, 4), collate_fn=pad_collate, seed=5
        )

    reference = [np.array(b[0]) for b in make()]
    loader = make()
    for i, _ in enumerate(loader):
        if i == 3:
            state = json.loads(json.dumps(loader.state_dict()))
            break
    resumed = make()
    resumed.load_state_dict(state)
    rest = [np.array(b[0]) for b in resumed]
    assert len(rest) == len(reference) - 4
    for a, b in zip(rest, reference[4:]):
        np.testing.assert_array_equal(a, b)


def test_log_mel_on_the_accelerator_matches_numpy():
    waves = np.random.default_rng(0).standard_normal((3, 24000)).astype(np.float32) * 0.3
    reference = np.stack([log_mel_spectrogram(w, 48000, top_db=80.0) for w in waves])
    np.testing.assert_allclose(
        np.array(LogMel(48000, top_db=80.0)(mx.array(waves))), reference, atol=1e-4
    )
    last = log_mel_spectrogram(waves[0], 16000, 400, 160, 80, channels_last=True)
    ours = LogMel(16000, 400, 160, 80, channels_last=True)({"audio": waves[:1], "label": 1})[
        "audio"
    ][0]
    assert last.shape[-1] == 80
    np.testing.assert_allclose(np.array(ours), last, atol=1e-4)
    compiled = mx.compile(
        LogMel(48000, top_db=80.0).features
    )  # inside a compiled step, as in a training_step
    np.testing.assert_allclose(np.array(compiled(mx.array(waves))), reference, atol=1e-4)


def test_integer_pcm_gives_the_features_of_the_float_waveform():
    """NOTE [integer PCM]: int16 from the workers (half the bytes) = the float read of the file."""
    from mlx_audio.data.features import pcm_to_float

    pcm = (np.random.default_rng(1).standard_normal((2, 24000)) * 6000).astype(np.int16)
    pcm[0, :2] = (-32768, 32767)
    floats = pcm.astype(np.float32) / 32768
    np.testing.assert_array_equal(pcm_to_float(pcm), floats)
    np.testing.assert_array_equal(
        pcm_to_float(np.array([0, 128, 255], np.uint8)), np.array([-1, 0, 127 / 128], np.float32)
    )
    assert pcm_to_float(floats) is floats
    reference = log_mel_spectrogram(floats[0], 48000)
    np.testing.assert_allclose(log_mel_spectrogram(pcm[0], 48000), reference, atol=1e-5)
    on_device = LogMel(48000)(mx.array(pcm))
    np.testing.assert_allclose(
        np.array(on_device), np.array(LogMel(48000)(mx.array(floats))), atol=1e-5
    )
    np.testing.assert_allclose(np.array(on_device[0]), reference, atol=1e-4)


def test_load_audio_as_int16_gives_the_files_pcm(tmp_path):
    from mlx_audio.data import load_audio

    pcm = (np.random.default_rng(2).standard_normal(RATE) * 8000).astype(np.int16)
    pcm[:2] = (-32768, 32767)
    path = str(tmp_path / "pcm.wav")
    sf.write(path, pcm, RATE, subtype="PCM_16")
    wave, rate = load_audio(path, dtype=np.int16)
    assert rate == RATE and wave.dtype == np.int16
    np.testing.assert_array_equal(wave, pcm)
    np.testing.assert_array_equal(load_audio(path)[0], pcm.astype(np.float32) / 32768)
    unsigned, _ = load_audio(path, dtype=np.uint8)
    assert unsigned.dtype == np.uint8 and unsigned[0] == 0 and unsigned[1] == 255
