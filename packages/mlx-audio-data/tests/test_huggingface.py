"""Hugging Face ``datasets`` through our DataLoader, unchanged: a map-style ``Dataset`` (numpy
format) batches like any map-style dataset, and a streaming ``IterableDataset`` is split across
our workers (NOTE [Hugging Face streams]) -- every example exactly once, with any number of
shards."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mlx_audio.data import DataLoader

datasets = pytest.importorskip("datasets")


def _table(n: int):
    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict(
        {"audio": rng.standard_normal((n, 16)).astype(np.float32).tolist(), "label": list(range(n))}
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_map_style_dataset_batches_as_its_rows(workers):
    table = _table(10).with_format("numpy")
    batches = list(DataLoader(table, batch_size=4, num_workers=workers))
    assert [len(np.array(b["label"])) for b in batches] == [4, 4, 2]
    labels = np.concatenate([np.array(b["label"]) for b in batches])
    assert labels.tolist() == list(range(10))
    np.testing.assert_allclose(np.array(batches[0]["audio"]), np.array(table[:4]["audio"]))


@pytest.mark.parametrize("shards", [1, 3, 4])
@pytest.mark.parametrize("workers", [0, 2, 3])
def test_streaming_dataset_gives_every_example_once_across_workers(shards, workers):
    stream = _table(24).to_iterable_dataset(num_shards=shards)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "error", message=".*every sample arrives"
        )  # no such advice: it is sharded
        batches = list(DataLoader(stream, batch_size=4, num_workers=workers))
    labels = sorted(int(v) for b in batches for v in np.array(b["label"]).tolist())
    assert labels == list(range(24))


@pytest.fixture
def audio_rows(tmp_path):
    """Four 1 s clips: three at 16 kHz, one at 8 kHz; one of them given as bytes."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths = []
    for i, rate in enumerate([16000, 16000, 8000, 16000]):
        path = str(tmp_path / f"clip{i}.wav")
        sf.write(path, (0.1 * rng.standard_normal(rate)).astype(np.float32), rate, subtype="FLOAT")
        paths.append(path)
    return paths


@pytest.mark.parametrize("num_workers", [0, 2])
def test_audio_feature_is_decoded_without_torch(audio_rows, num_workers):
    """NOTE [Hugging Face Audio]: datasets >= 4 decodes Audio with torchcodec (torch); the loader
    decodes such columns itself, to datasets 3's {"array", "sampling_rate", "path"} layout."""
    datasets = pytest.importorskip("datasets")
    from mlx_audio.data import load_audio

    values = [
        {"bytes": None, "path": p} if i != 3 else {"bytes": open(p, "rb").read(), "path": None}
        for i, p in enumerate(audio_rows)
    ]
    ds = datasets.Dataset.from_dict({"audio": values, "label": [0, 1, 0, 1]}).cast_column(
        "audio", datasets.Audio(sampling_rate=16000)
    )
    loader = DataLoader(ds, batch_size=2, num_workers=num_workers)
    batches = list(loader)
    assert len(batches) == 2 and loader.dataset is ds
    audio = np.concatenate([np.asarray(b["audio"]["array"]) for b in batches])
    assert audio.shape == (4, 16000) and audio.dtype == np.float32
    assert [r for b in batches for r in np.asarray(b["audio"]["sampling_rate"]).tolist()] == [
        16000
    ] * 4
    assert [p for b in batches for p in b["audio"]["path"]] == [*audio_rows[:3], None]
    assert [v for b in batches for v in np.asarray(b["label"]).tolist()] == [0, 1, 0, 1]
    for i, path in enumerate(audio_rows):  # the 8 kHz clip resampled to the column's rate
        np.testing.assert_allclose(audio[i], load_audio(path, sample_rate=16000)[0], atol=1e-6)
