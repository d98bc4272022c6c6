import subprocess
import sys
import time
from collections import namedtuple

import mlx.core as mx
import numpy as np
import pytest

from mlx_audio.data import DataLoader, default_collate, to_mlx
from mlx_audio.data.collate import CollateError

Pair = namedtuple("Pair", "x y")


def test_default_collate_returns_numpy_with_mlx_default_dtypes():
    batch = default_collate(
        [(np.ones(3, np.float16), 1, 0.5, True, "a"), (np.zeros(3, np.float16), 2, 1.5, False, "b")]
    )
    x, ints, floats, flags, names = batch
    assert isinstance(batch, list)  # torch's default_collate turns tuples into lists
    assert x.dtype == np.float16 and x.shape == (2, 3)
    assert ints.dtype == np.int32 and floats.dtype == np.float32 and flags.dtype == np.bool_
    assert names == ("a", "b")  # a tuple field's strings: a tuple, as torch


def test_default_collate_dicts_lists_namedtuples_numpy_scalars():
    out = default_collate([{"a": np.int64(1), "b": [1, 2]}, {"a": np.int64(2), "b": [3, 4]}])
    assert out["a"].dtype == np.int64
    assert isinstance(out["b"], list) and out["b"][0].tolist() == [1, 3]
    nt = default_collate([Pair(1, 2.0), Pair(3, 4.0)])
    assert isinstance(nt, Pair) and nt.x.tolist() == [1, 3]


def test_default_collate_errors_are_clear():
    with pytest.raises(
        CollateError, match=r"sample 1 has shape \(4,\) but sample 0 has shape \(3,\)"
    ):
        default_collate([np.zeros(3), np.zeros(4)])
    with pytest.raises(CollateError, match="cannot collate object"):
        default_collate([object(), object()])
    with pytest.raises(CollateError, match="None"):
        default_collate([None, None])


def test_to_mlx_keeps_structure_and_dtypes():
    tree = to_mlx(
        (
            {"m": np.ones((2, 2), np.float16)},
            np.array([1, 2], np.int64),
            ["x", "y"],
            Pair(np.zeros(1), 3),
        )
    )
    assert isinstance(tree, tuple)
    assert tree[0]["m"].dtype == mx.float16
    assert tree[1].dtype == mx.int64
    assert tree[2] == ["x", "y"]
    assert isinstance(tree[3], Pair) and tree[3].x.dtype == mx.float32
    assert tree[3].y == 3 and type(tree[3].y) is int  # Python scalars stay (torch)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_shape_mismatch_names_dataset_indices(num_workers):
    data = [np.zeros(3, np.float32)] * 5 + [np.zeros(4, np.float32)]
    loader = DataLoader(data, batch_size=3, num_workers=num_workers)
    with pytest.raises(
        ValueError, match=r"index 5 has shape \(4,\) but the sample at index 3 has shape \(3,\)"
    ):
        list(loader)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_converts_default_and_user_collate_batches_alike(num_workers):
    data = [({"mel": np.full((2, 3), i, np.float32)}, i, f"s{i}") for i in range(6)]
    (batch,) = list(DataLoader(data, batch_size=6, num_workers=num_workers))
    features, labels, names = batch
    assert isinstance(batch, list) and isinstance(features, dict)  # tuples collate to lists (torch)
    assert features["mel"].shape == (6, 2, 3) and features["mel"].dtype == mx.float32
    assert labels.dtype == mx.int32 and labels.tolist() == list(range(6))
    assert names == tuple(f"s{i}" for i in range(6))  # as torch (a tuple field)
    (raw,) = list(
        DataLoader(data, batch_size=6, num_workers=num_workers, collate_fn=default_collate)
    )
    assert isinstance(raw[0]["mel"], mx.array) and raw[0]["mel"][5, 0, 0].item() == 5
    assert raw[1].dtype == mx.int32 and raw[2] == names  # strings stay str

    def numpy_pairs(samples):  # a torch-style collate returning numpy and Python numbers
        return np.stack([s[0]["mel"] for s in samples]), len(samples)

    (mel, count) = next(iter(DataLoader(data, batch_size=6, collate_fn=numpy_pairs)))
    assert isinstance(mel, mx.array) and mel.shape == (6, 2, 3)
    assert count == 6 and type(count) is int  # numpy becomes mx.array; Python numbers stay


def test_unbatched_loading_converts_samples():
    out = list(DataLoader([(np.ones(2, np.float32), 3)] * 2, batch_size=None))
    assert len(out) == 2 and isinstance(out[0][0], mx.array) and out[0][0].shape == (2,)
    assert out[0][1] == 3 and type(out[0][1]) is int  # torch's default_convert: ints stay ints
    assert isinstance(out[0], list)  # and tuples become lists


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize(
    "samples, error, message",
    [
        (
            [(np.zeros(2), 1), (np.zeros(2), 2), (np.zeros(2), None)],
            TypeError,
            r"index 2 has NoneType None where the sample at index 0 has int",
        ),
        ([{"a": 1, "b": 2}, {"a": 1}], KeyError, r"index 1 has no key 'b'"),
        (
            [np.zeros(2), np.array([1, "x"], dtype=object)],
            TypeError,
            r"index 1 has an object-dtype array",
        ),
        ([(5,), ("5",)], TypeError, r"index 1 has str '5' where the sample at index 0 has int"),
    ],
)
@pytest.mark.filterwarnings(
    "error::pytest.PytestUnhandledThreadExceptionWarning"
)  # NOTE [queue teardown]
def test_bad_samples_name_the_index_and_field(samples, error, message, num_workers):
    with pytest.raises(error, match=message):
        list(DataLoader(samples, batch_size=len(samples), num_workers=num_workers))


def test_mixed_ints_and_floats_become_floats_not_truncated():
    assert default_collate([1, 2.5]).tolist() == [1.0, 2.5]
    assert default_collate([2**40, 1]).dtype == np.int64  # beyond int32: int64, never overflow


class MlxSamples:
    """A dataset returning mx.array (e.g. features computed with MLX)."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return mx.full((3,), index, dtype=mx.float32), index


@pytest.mark.parametrize("context", [None, "spawn"])
def test_datasets_may_return_mx_arrays(context):
    workers = {} if context is None else {"num_workers": 2, "multiprocessing_context": context}
    batches = list(DataLoader(MlxSamples(), batch_size=4, **workers))
    assert [b[0][:, 0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all(isinstance(b[0], mx.array) and b[0].dtype == mx.float32 for b in batches)


def test_mx_arrays_in_forked_workers_fail_clearly_instead_of_hanging():
    mx.eval(mx.ones(3) * 2)  # MLX has run in this process: a forked child could not
    loader = DataLoader(
        MlxSamples(), batch_size=4, num_workers=2, multiprocessing_context="fork", timeout=60
    )
    with pytest.raises(RuntimeError, match="forked from a process that had loaded MLX.*spawn"):
        list(loader)


class MlxComputedNumpy:
    """Computes with MLX but returns numpy: the work itself would wait forever in a fork."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return np.array(mx.fft.rfft(mx.ones(8) * index).real)


@pytest.mark.timeout(60)
def test_mlx_work_in_forked_workers_fails_clearly_instead_of_hanging():
    mx.eval(mx.ones(3) * 2)
    loader = DataLoader(
        MlxComputedNumpy(), batch_size=2, num_workers=1, multiprocessing_context="fork"
    )
    start = time.monotonic()
    with pytest.raises(
        RuntimeError, match=r"forked from a process that had loaded MLX.*\(called mlx.core.ones\)"
    ):
        list(loader)  # no timeout set: before the fix this never returned
    assert time.monotonic() - start < 30
    spawned = DataLoader(
        MlxComputedNumpy(), batch_size=2, num_workers=1, multiprocessing_context="spawn"
    )
    assert [b.shape for b in spawned] == [(2, 5), (2, 5)]


def test_mlx_imported_but_unused_still_works_in_forked_workers():
    """MLX that was only imported (nothing allocated) survives fork: no false alarm there."""
    script = (
        "import numpy as np, mlx.core as mx\n"
        "from mlx_audio.data import DataLoader\n"
        "class D:\n"
        "    def __len__(self): return 4\n"
        "    def __getitem__(self, i): return np.array(mx.ones(3) * i)\n"
        "if __name__ == '__main__':\n"
        "    out = [b.tolist() for b in DataLoader(D(), batch_size=2, num_workers=1, multiprocessing_context='fork')]\n"
        "    assert out[1][1] == [3.0, 3.0, 3.0], out\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
