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
        warnings.filterwarnings("error", message=".*every sample arrives")  # no such advice: it is sharded
        batches = list(DataLoader(stream, batch_size=4, num_workers=workers))
    labels = sorted(int(v) for b in batches for v in np.array(b["label"]).tolist())
    assert labels == list(range(24))
