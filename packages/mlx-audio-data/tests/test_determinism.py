"""Same seed -> same batches, whatever num_workers or worker_type; epochs are (seed, epoch)."""

import random

import numpy as np
import pytest
from data_testing import as_numpy, assert_same_batches

from mlx_audio.data import DataLoader, IterableDataset, get_worker_info

CONFIGS = [dict(num_workers=0), dict(num_workers=2), dict(num_workers=3, worker_type="thread")]


def epochs(loader, n=2):
    return [list(loader) for _ in range(n)]


@pytest.mark.parametrize("config", CONFIGS[1:])
def test_map_style_batches_do_not_depend_on_workers(images, config):
    reference = epochs(DataLoader(images, batch_size=32, shuffle=True, seed=5))
    other = epochs(DataLoader(images, batch_size=32, shuffle=True, seed=5, **config))
    for a, b in zip(reference, other):
        assert_same_batches(a, b)


def test_epochs_differ_and_set_epoch_replays(images):
    loader = DataLoader(images, batch_size=64, shuffle=True, seed=1)
    first, second = epochs(loader)
    assert not np.array_equal(as_numpy(first[0][1]), as_numpy(second[0][1]))
    loader.set_epoch(0)
    assert_same_batches(first, list(loader))
    assert loader.epoch == 1


def test_seed_from_numpy_global_rng_and_generator(images):
    np.random.seed(123)
    a = DataLoader(images, batch_size=64, shuffle=True)
    first = list(a)
    np.random.seed(123)
    assert_same_batches(first, list(DataLoader(images, batch_size=64, shuffle=True)))
    g1 = DataLoader(images, batch_size=64, shuffle=True, generator=np.random.default_rng(9))
    g2 = DataLoader(images, batch_size=64, shuffle=True, generator=np.random.default_rng(9))
    assert_same_batches(list(g1), list(g2))
    assert g1.seed == g2.seed


def noisy(sample, rng):
    image, label = sample
    return image + rng.standard_normal(image.shape).astype(np.float32), label


def global_noise(sample):
    image, label = sample
    return image + np.float32(np.random.rand()), label


@pytest.mark.parametrize("config", CONFIGS)
def test_transform_rng_is_per_sample_and_reproducible(images, config):
    reference = epochs(
        DataLoader(images, batch_size=16, shuffle=True, seed=2, cpu_transforms=noisy)
    )
    other = epochs(
        DataLoader(images, batch_size=16, shuffle=True, seed=2, cpu_transforms=[noisy], **config)
    )
    for a, b in zip(reference, other):
        assert_same_batches(a, b)
    clean = list(DataLoader(images, batch_size=16, shuffle=True, seed=2))
    assert not np.allclose(as_numpy(clean[0][0]), as_numpy(reference[0][0][0]))
    # new epoch, new noise: without shuffle each epoch sees the same images in the same order, so
    # only a transform RNG drawn anew for each (seed, epoch, index) tells the epochs apart
    first, second = epochs(
        DataLoader(images, batch_size=16, seed=2, cpu_transforms=[noisy], **config)
    )
    assert len(first) == len(second) == len(images) // 16
    for a, b, start in zip(first, second, range(0, len(images), 16)):
        np.testing.assert_array_equal(as_numpy(a[1]), images.labels[start : start + 16])
        np.testing.assert_array_equal(as_numpy(b[1]), images.labels[start : start + 16])
        noise_a = as_numpy(a[0]) - images.images[start : start + 16]
        noise_b = as_numpy(b[0]) - images.images[start : start + 16]
        assert all(not np.allclose(x, y) for x, y in zip(noise_a, noise_b)), start


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_seed_numpy_and_random_per_worker(images, persistent):
    """torch-style: each worker's global RNGs are seeded from (seed, epoch, worker id)."""

    def make():
        return DataLoader(
            images,
            batch_size=8,
            seed=4,
            num_workers=2,
            persistent_workers=persistent,
            cpu_transforms=global_noise,
        )

    run1, run2 = epochs(make()), epochs(make())
    for a, b in zip(run1, run2):
        assert_same_batches(a, b)
    b0, b1 = (
        as_numpy(run1[0][0][0]) - images.images[:8],
        as_numpy(run1[0][1][0]) - images.images[8:16],
    )
    assert not np.allclose(b0[0], b1[0])  # workers 0 and 1 drew different numbers
    # new epoch, new numbers: no shuffle, so the same worker sees the same images in both
    # epochs; only its global RNGs make them differ: a new worker's are seeded for the new
    # epoch, a persistent worker's go on (as in torch)
    for first, second in zip(*run1):
        np.testing.assert_array_equal(as_numpy(first[1]), as_numpy(second[1]))
        assert not np.allclose(as_numpy(first[0]), as_numpy(second[0]))


class ShardedStream(IterableDataset):
    """Yields its share of range(n); each worker's samples carry a random draw."""

    def __init__(self, n=40):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        wid, count = (info.id, info.num_workers) if info else (0, 1)
        for i in range(wid, self.n, count):
            yield np.array([i, random.random()])


def test_iterable_sharding_and_determinism():
    loader = DataLoader(ShardedStream(), batch_size=4, num_workers=2, seed=8)
    batches = [as_numpy(b) for b in loader]
    ids = sorted(int(i) for b in batches for i in b[:, 0])
    assert ids == list(range(40))
    assert as_numpy(batches[0])[:, 0].tolist() == [0, 2, 4, 6] and batches[1][:, 0].tolist() == [
        1,
        3,
        5,
        7,
    ]
    again = [as_numpy(b) for b in DataLoader(ShardedStream(), batch_size=4, num_workers=2, seed=8)]
    assert_same_batches(batches, again)
    in_process = [as_numpy(b) for b in DataLoader(ShardedStream(), batch_size=4)]
    assert sorted(int(i) for b in in_process for i in b[:, 0]) == list(range(40))


class NoisyItems:
    """Randomness drawn inside __getitem__, through the loader's per-sample generator."""

    def __len__(self):
        return 40

    def __getitem__(self, index):
        from mlx_audio.data import sample_rng

        return sample_rng().standard_normal(3).astype(np.float32)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_getitem_randomness_is_per_sample_and_resumes_exactly(num_workers):
    import json

    from mlx_audio.data import DataLoader

    def make(workers):
        return DataLoader(NoisyItems(), batch_size=4, shuffle=True, seed=5, num_workers=workers)

    reference = [np.array(b) for b in make(0)]
    loader = make(num_workers)
    seen = []
    for i, batch in enumerate(loader):
        seen.append(np.array(batch))
        if i == 3:
            state = json.loads(json.dumps(loader.state_dict()))
            break
    resumed = make(num_workers)
    resumed.load_state_dict(state)
    for a, b in zip(seen + [np.array(b) for b in resumed], reference, strict=True):
        np.testing.assert_array_equal(a, b)
