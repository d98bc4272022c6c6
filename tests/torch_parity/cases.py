"""Cases run through torch.utils.data (anchor venv) and through mlx_audio.data: same code,
same inputs, results as plain Python values (a port of behaviour that torch's own
test/test_dataloader.py checks). Runs under both interpreters: imports only numpy/stdlib;
the framework comes in as ``L`` (a namespace of its names) and ``tolist`` (tensor/array ->
Python lists)."""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

CASES: dict[str, Any] = {}


def to_python(value: Any, is_array: Any) -> Any:
    """Arrays (``is_array(value)``) and containers of them as plain Python lists and dicts."""
    if is_array(value):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_python(v, is_array) for v in value]
    if isinstance(value, dict):
        return {k: to_python(v, is_array) for k, v in value.items()}
    return value


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def run_case(name: str, L: Any, tolist: Any) -> Any:
    try:
        return {"ok": CASES[name](L, tolist)}
    except Exception as error:  # the kind of error is part of the behaviour
        return {"error": _kind(error)}


def _kind(error: BaseException) -> list[str]:
    """The standard exception classes ``error`` is an instance of (ours may be several at
    once, e.g. a ValueError that is also torch's RuntimeError: ``except`` clauses written
    for torch still catch it)."""
    kinds = (
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
        AssertionError,
        StopIteration,
    )
    return sorted(k.__name__ for k in kinds if isinstance(error, k)) or [type(error).__name__]


class Range:  # a plain map-style dataset (no base class), as torch accepts
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.float32(i)


def values(L, tolist, loader) -> list:
    return [tolist(b) for b in loader]


# -- batching, drop_last, len ------------------------------------------------------------------
for _n in (10, 12):
    for _bs in (1, 3, 4, 5):
        for _drop in (False, True):

            def _batches(L, tolist, n=_n, bs=_bs, drop=_drop):
                loader = L.DataLoader(Range(n), batch_size=bs, drop_last=drop)
                return {"len": len(loader), "batches": values(L, tolist, loader)}

            _batches.__name__ = f"batches_n{_n}_bs{_bs}_drop{int(_drop)}"
            case(_batches)


@case
def unbatched_samples(L, tolist):
    return values(L, tolist, L.DataLoader(Range(5), batch_size=None))


@case
def unbatched_len(L, tolist):
    return len(L.DataLoader(Range(5), batch_size=None))


@case
def shuffle_covers_everything(L, tolist):
    loader = L.DataLoader(Range(23), batch_size=4, shuffle=True)
    flat = sorted(v for b in values(L, tolist, loader) for v in b)
    return {"len": len(loader), "values": flat}


@case
def batch_sampler_given(L, tolist):
    sampler = L.BatchSampler(L.SequentialSampler(range(7)), batch_size=3, drop_last=False)
    return {
        "lists": list(sampler),
        "loader": values(L, tolist, L.DataLoader(Range(7), batch_sampler=sampler)),
        "len": len(sampler),
    }


@case
def batch_sampler_drop_last(L, tolist):
    return [list(L.BatchSampler(L.SequentialSampler(range(n)), 3, True)) for n in (5, 6, 7)]


@case
def sequential_sampler(L, tolist):
    return list(L.SequentialSampler(range(4)))


@case
def random_sampler_lengths(L, tolist):
    out = []
    for kwargs in (
        {},
        {"replacement": True},
        {"replacement": True, "num_samples": 17},
        {"num_samples": 9},
    ):
        sampler = L.RandomSampler(range(6), **kwargs)
        drawn = list(sampler)
        out.append([len(sampler), len(drawn), all(0 <= i < 6 for i in drawn)])
    return out


@case
def random_sampler_without_replacement_is_a_permutation(L, tolist):
    return sorted(L.RandomSampler(range(9)))


@case
def random_sampler_num_samples_above_length(L, tolist):
    drawn = list(L.RandomSampler(range(4), num_samples=10))
    return [len(drawn), sorted(collections.Counter(drawn).values())]


@case
def subset_random_sampler(L, tolist):
    sampler = L.SubsetRandomSampler([3, 7, 9, 1])
    return {"len": len(sampler), "values": sorted(sampler)}


@case
def weighted_sampler_zero_weight_never_drawn(L, tolist):
    drawn = list(L.WeightedRandomSampler([0.0, 1.0, 0.0, 2.0], 50))
    return {"len": len(drawn), "set": sorted(set(drawn))}


@case
def weighted_sampler_without_replacement(L, tolist):
    return sorted(L.WeightedRandomSampler([1.0, 1.0, 1.0], 3, replacement=False))


@case
def weighted_sampler_too_many_without_replacement(L, tolist):
    drawn = list(L.WeightedRandomSampler([1.0, 0.0, 1.0], 3, replacement=False))
    return [sorted(drawn), drawn[-1]]  # the zero weight comes last


@case
def weighted_sampler_bad_num_samples(L, tolist):
    return L.WeightedRandomSampler([1.0, 2.0], 0)


@case
def weighted_sampler_bad_replacement(L, tolist):
    return L.WeightedRandomSampler([1.0, 2.0], 2, replacement=1)


# -- datasets ------------------------------------------------------------------------------------
@case
def subset_order_and_list_index(L, tolist):
    sub = L.Subset(Range(10), [7, 2, 5])
    return {
        "items": [float(sub[i]) for i in range(len(sub))],
        "loader": values(L, tolist, L.DataLoader(sub, batch_size=2)),
    }


@case
def subset_subclass_getitem_is_used(L, tolist):
    class Doubled(L.Subset):
        def __getitem__(self, i):
            return super().__getitem__(i) * 2

    return values(L, tolist, L.DataLoader(Doubled(Range(6), [1, 2, 3, 4]), batch_size=2))


@case
def concat_indexing(L, tolist):
    data = L.ConcatDataset([Range(3), Range(2), Range(4)])
    return {
        "len": len(data),
        "items": [float(data[i]) for i in range(len(data))],
        "neg": float(data[-1]),
        "sizes": list(data.cumulative_sizes),
    }


@case
def concat_index_out_of_range(L, tolist):
    data = L.ConcatDataset([Range(3), Range(2)])
    return float(data[-6])


@case
def concat_via_plus(L, tolist):
    class R(L.Dataset):
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return np.float32(i)

    data = R(2) + R(3)
    return [len(data), [float(data[i]) for i in range(5)]]


@case
def concat_rejects_iterable(L, tolist):
    class It(L.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    return len(L.ConcatDataset([Range(2), It()]))


@case
def random_split_sizes(L, tolist):
    parts = L.random_split(Range(10), [3, 7])
    return [len(p) for p in parts] + [
        sorted(int(p.dataset[i]) for p in parts for i in p.indices) == list(range(10))
    ]


@case
def random_split_fractions(L, tolist):
    return [len(p) for p in L.random_split(Range(11), [0.5, 0.3, 0.2])]


@case
def random_split_bad_lengths(L, tolist):
    return L.random_split(Range(10), [3, 3])


@case
def stack_dataset_tuple_and_dict(L, tolist):
    a = L.StackDataset(Range(3), Range(3))
    b = L.StackDataset(x=Range(2), y=Range(2))
    return [len(a), [float(v) for v in a[2]], sorted(b[1]), float(b[1]["y"])]


@case
def stack_dataset_of_tensor_datasets_batches(L, tolist):
    """A StackDataset of TensorDatasets (ours: ArrayDataset, whose batch fetch is one array a
    field) and of a Subset of one, through a DataLoader."""
    x = L.as_array(np.arange(20, dtype=np.float32).reshape(10, 2))
    data = L.TensorDataset(x, L.as_array(np.arange(10)))
    stack = L.StackDataset(data, L.Subset(data, list(range(9, -1, -1))))
    return values(L, tolist, L.DataLoader(stack, batch_size=4))


@case
def stack_dataset_length_mismatch(L, tolist):
    return L.StackDataset(Range(3), Range(4))


class Stream:
    """An iterable over 0..n-1, sharded by worker when ``shard``."""

    @staticmethod
    def make(L, n, shard):
        class S(L.IterableDataset):
            def __iter__(self):
                info = L.get_worker_info()
                if shard and info is not None:
                    return iter(range(info.id, n, info.num_workers))
                return iter(range(n))

            def __len__(self):
                return n

        return S()


for _workers in (0, 2, 3):
    for _bs in (None, 2, 3):
        for _shard in (True, False):

            def _stream(L, tolist, workers=_workers, bs=_bs, shard=_shard):
                loader = L.DataLoader(Stream.make(L, 10, shard), batch_size=bs, num_workers=workers)
                return values(L, tolist, loader)

            _stream.__name__ = f"iterable_w{_workers}_bs{_bs}_shard{int(_shard)}"
            case(_stream)


@case
def iterable_drop_last_sharded(L, tolist):
    return values(
        L,
        tolist,
        L.DataLoader(Stream.make(L, 11, True), batch_size=2, num_workers=2, drop_last=True),
    )


@case
def iterable_len(L, tolist):
    return [
        len(L.DataLoader(Stream.make(L, 10, False), batch_size=b, drop_last=d))
        for b in (3, 4)
        for d in (False, True)
    ]


@case
def chain_and_plus(L, tolist):
    a = Stream.make(L, 3, False)
    b = Stream.make(L, 2, False)
    chained = L.ChainDataset([a, b])
    return [list(chained), len(chained), list(a + b)]


@case
def iterable_with_shuffle_is_an_error(L, tolist):
    return L.DataLoader(Stream.make(L, 3, False), shuffle=True)


@case
def get_worker_info_in_main_process(L, tolist):
    return L.get_worker_info() is None


@case
def worker_info_fields(L, tolist):
    class Info(L.IterableDataset):
        def __iter__(self):
            info = L.get_worker_info()
            yield np.array([info.id, info.num_workers, int(info.dataset is not None)])

    return values(L, tolist, L.DataLoader(Info(), batch_size=None, num_workers=2))


@case
def worker_info_has_torchs_fields(L, tolist):
    """torch 2.13's WorkerInfo: id, num_workers, seed, dataset, rng, worker_method (its repr
    lists them), none of them assignable or deletable."""
    import json

    class Info(L.IterableDataset):
        def __iter__(self):
            info = L.get_worker_info()
            names = ["id", "num_workers", "seed", "dataset", "rng", "worker_method"]
            refused = []
            for name in names:
                for how in ("set", "delete"):
                    try:
                        setattr(info, name, 1) if how == "set" else delattr(info, name)
                    except AttributeError:
                        refused.append(f"{how} {name}")
            shown = repr(info)
            yield json.dumps(
                {
                    "fields": [name for name in names if f"{name}=" in shown],
                    "kept": [info.id, info.num_workers, info.dataset is self],
                    "rng": info.rng is None,
                    "worker_method": info.worker_method,
                    "refused": refused,
                }
            )

    loader = L.DataLoader(Info(), batch_size=None, num_workers=2)
    return [json.loads(b) for b in loader]


def _unpicklable_init_case(context):
    def fn(L, tolist):
        """A local worker_init_fn cannot be pickled for spawn/forkserver workers: torch warns that
        pickling failed and raises the pickling error from iter()."""
        import warnings

        def init(worker_id):
            pass

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = L.DataLoader(
                Range(4), num_workers=2, worker_init_fn=init, multiprocessing_context=context
            )
            where, raised = "iter", None
            try:
                batches = iter(loader)
                where = "next"
                next(batches)
                where = "nowhere"
            except Exception as error:
                raised = type(error).__name__
        warned = [
            [w.category.__name__, str(w.message).split(".")[0]]
            for w in caught
            if "pickle" in str(w.message)
        ]
        return {"raised": raised, "where": where, "warned": warned}

    fn.__name__ = f"worker_init_fn_unpicklable_{context}"
    case(fn)


for _context in ("spawn", "forkserver"):
    _unpicklable_init_case(_context)


# -- collation -------------------------------------------------------------------------------------
Point = collections.namedtuple("Point", ["x", "y"])


@case
def collate_nested_structures(L, tolist):
    samples = [
        {"a": np.full(2, i, np.float32), "b": (i, float(i) / 2), "c": [i, i + 1], "name": f"s{i}"}
        for i in range(3)
    ]
    batch = L.default_collate(samples)
    return {
        "a": tolist(batch["a"]),
        "b": [tolist(batch["b"][0]), tolist(batch["b"][1])],
        "c": [tolist(c) for c in batch["c"]],
        "name": batch["name"],
        "types": [type(batch["b"]).__name__, type(batch["c"]).__name__],
    }


@case
def collate_namedtuple(L, tolist):
    batch = L.default_collate([Point(1, 2.0), Point(3, 4.0)])
    return [type(batch).__name__, tolist(batch.x), tolist(batch.y)]


@case
def collate_bools_and_numpy_scalars(L, tolist):
    return [
        tolist(L.default_collate([True, False])),
        tolist(L.default_collate([np.float32(1.5), np.float32(2.5)])),
    ]


@case
def collate_shape_mismatch(L, tolist):
    return L.default_collate([np.zeros(2), np.zeros(3)])


@case
def collate_uneven_sequences(L, tolist):
    return L.default_collate([[1, 2], [3]])


@case
def collate_none(L, tolist):
    return L.default_collate([None, None])


@case
def loader_dict_samples_two_workers(L, tolist):
    class D:
        def __len__(self):
            return 9

        def __getitem__(self, i):
            return {"x": np.full(2, i, np.float32), "y": i}

    loader = L.DataLoader(D(), batch_size=4, num_workers=2)
    return [[tolist(b["x"]), tolist(b["y"])] for b in loader]


# -- argument checking -----------------------------------------------------------------------------
def _arg_case(name, **kwargs):
    def fn(L, tolist):
        return len(L.DataLoader(Range(4), **kwargs))

    fn.__name__ = name
    case(fn)


_arg_case("args_sampler_and_shuffle", sampler=[0, 1, 2, 3], shuffle=True)
_arg_case("args_batch_sampler_and_batch_size", batch_sampler=[[0, 1]], batch_size=2)
_arg_case("args_batch_sampler_and_drop_last", batch_sampler=[[0, 1]], drop_last=True)
_arg_case("args_negative_workers", num_workers=-1)
_arg_case("args_negative_timeout", timeout=-1)
_arg_case("args_drop_last_without_batch_size", batch_size=None, drop_last=True)
_arg_case("args_persistent_without_workers", persistent_workers=True)
_arg_case("args_prefetch_without_workers", prefetch_factor=2)
_arg_case("args_sampler_list", sampler=[3, 1, 2])
_arg_case("args_batch_sampler_list", batch_sampler=[[3, 1], [2]])

assert math.isfinite(len(CASES))


@case
def settings_are_fixed_after_construction(L, tolist):
    loader = L.DataLoader(Range(4), batch_size=2)
    out = []
    for name, value in (
        ("batch_size", 3),
        ("drop_last", True),
        ("sampler", None),
        ("dataset", Range(2)),
        ("num_workers", 0),
    ):
        try:
            setattr(loader, name, value)
            out.append([name, "set"])
        except ValueError:
            out.append([name, "ValueError"])
    return out


class Slow:
    """Sample 0 is slow: with in_order=False the others overtake it."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 0:
            import time

            time.sleep(0.5)
        return np.float32(i)


@case
def in_order_false_yields_everything_and_does_not_wait(L, tolist):
    got = [
        v
        for b in values(
            L, tolist, L.DataLoader(Slow(), batch_size=1, num_workers=2, in_order=False)
        )
        for v in b
    ]
    return [sorted(got), got[0] != 0.0]


@case
def in_order_true_keeps_order(L, tolist):
    return values(L, tolist, L.DataLoader(Slow(), batch_size=2, num_workers=2))


def slow_stream(L, start, end):
    """torch's _TestSlowIterableDataset: each worker its contiguous share, (worker id, value);
    the middle value takes 1 s."""

    class SlowStream(L.IterableDataset):
        def __iter__(self):
            import time

            info = L.get_worker_info()
            share = -(-(end - start) // info.num_workers)
            first = start + info.id * share
            mid = -(-(end - start) // 2)
            for i in range(first, min(first + share, end)):
                if i == mid:
                    time.sleep(1.0)
                yield [info.id, i]

    return SlowStream()


def _order_case(name, make, in_order):
    """torch's TestOutOfOrderDataLoader: which worker's items come first (with an iterable
    dataset: every item of the worker not held back by a slow one, then the other's)."""

    def fn(L, tolist):
        loader = L.DataLoader(make(L), num_workers=2, prefetch_factor=2, in_order=in_order)
        return [[int(tolist(v)[0]) for v in b] for b in loader]

    fn.__name__ = name
    case(fn)


_order_case("out_of_order_iterable_ds", lambda L: slow_stream(L, 0, 10), False)


def _collate_case(name, samples):
    def fn(L, tolist):
        return tolist(L.default_collate(samples))

    fn.__name__ = name
    case(fn)


_collate_case("collate_none_after_ints", [1, None])
_collate_case("collate_dict_missing_key", [{"a": 1, "b": 2}, {"a": 1}])
_collate_case("collate_dict_extra_key_ignored", [{"a": 1}, {"a": 2, "b": 3}])
_collate_case("collate_object_array", [np.array([1, "x"], dtype=object)] * 2)
_collate_case("collate_str_then_int", ["5", 5])
_collate_case("collate_int_then_str", [5, "5"])
_collate_case("collate_int_then_float", [1, 2.5])
_collate_case("collate_strings", ["a", "b"])


@case
def loader_error_names_the_sample(L, tolist):
    data = [(np.zeros(2, np.float32), 1), (np.zeros(2, np.float32), None)]
    return values(L, tolist, L.DataLoader(data, batch_size=2))


@case
def pin_memory_without_an_accelerator(L, tolist):
    """torch keeps ``pin_memory`` as given, warns at iter() (not at construction) that nothing is
    pinned without an accelerator, and yields the same batches; ``pin_memory_device`` is warned
    about as deprecated, and only together with ``pin_memory``."""
    import warnings

    out = {}
    for name, kwargs in {
        "pin": {"pin_memory": True},
        "device": {"pin_memory": True, "pin_memory_device": "cuda"},
        "device_alone": {"pin_memory_device": "cuda"},
    }.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = L.DataLoader(Range(7), batch_size=3, num_workers=2, **kwargs)
            at_init = [str(w.message)[:40] for w in caught]
            batches = values(L, tolist, loader)
            later = [
                str(w.message)[:40]
                for w in caught[len(at_init) :]
                if "worker" not in str(w.message)
            ]
        out[name] = {
            "attr": [loader.pin_memory, loader.pin_memory_device],
            "at_init": at_init,
            "at_iter": later,
            "batches": batches,
        }
    return out
