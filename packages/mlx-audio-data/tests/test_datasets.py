import numpy as np
import pytest

from mlx_audio.data import (
    ArrayDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    random_split,
)


def test_tutorial_import_path_is_the_same_class():
    from mlx_audio.data.data.dataset import Dataset as TutorialDataset

    assert TutorialDataset is Dataset


def test_array_dataset_items_and_batches():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    ds = ArrayDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi, x[3])
    assert yi == 3
    bx, by = ds.__getitems__([7, 2, 5])
    np.testing.assert_array_equal(bx, x[[7, 2, 5]])
    np.testing.assert_array_equal(by, [7, 2, 5])
    cx, _ = ds.__getitems__([4, 5, 6])  # contiguous fast path returns a copy, not a view
    cx[:] = -1
    assert x[4, 0] == 8


def test_array_dataset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same first dimension"):
        ArrayDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        ArrayDataset()


def test_subset_and_concat():
    ds = ArrayDataset(np.arange(10))
    sub = Subset(ds, [9, 0, 4])
    assert [int(sub[i][0]) for i in range(3)] == [9, 0, 4]
    np.testing.assert_array_equal(sub.__getitems__([0, 2])[0], [9, 4])
    cat = ConcatDataset([ds, Subset(ds, [1, 2])])
    assert len(cat) == 12
    assert int(cat[10][0]) == 1 and int(cat[-1][0]) == 2 and int(cat[0][0]) == 0
    assert len(ds + ds) == 20
    with pytest.raises(ValueError, match="should not exceed"):  # torch's error for this
        cat[-13]


def test_concat_rejects_iterable():
    class Stream(IterableDataset):
        def __iter__(self):
            yield 1

    with pytest.raises(TypeError):
        ConcatDataset([Stream()])


def test_random_split_counts_fractions_and_seed():
    ds = ArrayDataset(np.arange(10))
    a, b = random_split(ds, [7, 3], seed=0)
    assert len(a) == 7 and len(b) == 3
    assert sorted(a.indices + b.indices) == list(range(10))
    c, d = random_split(ds, [0.7, 0.3], seed=0)
    assert c.indices == a.indices and d.indices == b.indices
    parts = random_split(ArrayDataset(np.arange(11)), [0.5, 0.5], seed=1)
    assert [len(p) for p in parts] == [6, 5]
    with pytest.raises(ValueError, match="sum to"):
        random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="seed or generator"):
        random_split(ds, [5, 5], seed=1, generator=np.random.default_rng())


def test_array_dataset_take_into_buffers_and_bounds():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ds = ArrayDataset(x)
    buffers = []

    def alloc(shape, dtype):
        buffers.append(np.full(shape, -1, dtype))
        return buffers[-1]

    (out,) = ds.take([5, -1, 0], alloc)
    assert out is buffers[0]
    np.testing.assert_array_equal(out, x[[5, 5, 0]])
    with pytest.raises(IndexError, match="out of range"):
        ds.take([6])
    with pytest.raises(IndexError, match="out of range"):
        ds.take([-7], alloc)
