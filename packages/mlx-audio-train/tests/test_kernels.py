"""The train step's custom kernels against the MLX formulations they replace (``_kernels.py``,
NOTE [one kernel for the gradients' sum of squares]).

On CUDA (the lent GPU machine: ``python3 -m pytest packages/mlx-audio-train/tests/test_kernels.py``)
the kernel itself is checked: equal to the MLX formulation within float32 rounding, the same
bits on every run, inside ``mx.compile``, for every float dtype, empty and 0-d arrays, views,
more arrays than one launch takes, and more elements than one block reads. Elsewhere the
fallback is what runs, and the kernel's index arithmetic is checked from its source: every
element of every array read by exactly one block.
"""

from __future__ import annotations

import re

import cuda_emulator as emulator  # mlx-audio-models' tests: runs a kernel's CUDA source on the CPU
import mlx.core as mx
import numpy as np
import pytest

from mlx_audio.train import _kernels
from mlx_audio.train._guarded import global_norm
from mlx_audio.train._kernels import (
    cuda_step_kernels,
    kernel_name,
    kernel_source,
    reference_sum_of_squares,
    sum_of_squares,
)

on_cuda = pytest.mark.skipif(
    not cuda_step_kernels(), reason="the kernel runs on MLX's CUDA backend"
)

SHAPES = {
    "cnn": [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 9216), (128,), (10, 128), (10,)],
    "many blocks": [(3000, 1000), (7,), (1,), (513, 257)],
    "empty and 0-d": [(0,), (), (5, 0), (17,)],
    "more arrays than one launch": [(3,)] * 300 + [(1000,)],
}


def arrays(shapes, dtype=mx.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [mx.array(rng.standard_normal(s).astype(np.float32)).astype(dtype) for s in shapes]


def float64_sum(leaves) -> float:
    return float(
        sum(np.sum(np.asarray(g.astype(mx.float32), dtype=np.float64) ** 2) for g in leaves)
    )


# -- everywhere: the fallback, and the kernel's index arithmetic --------------------------------
def test_sum_of_squares_is_the_mlx_formulation_off_cuda():
    if cuda_step_kernels():
        pytest.skip("on CUDA the kernel runs (checked below)")
    leaves = arrays(SHAPES["cnn"])
    assert mx.array_equal(sum_of_squares(leaves), reference_sum_of_squares(leaves))
    # MLX's float32 sum of 1.2M elements on the CPU is off by ~6e-4 (the kernel: < 1e-5)
    assert np.isclose(float(sum_of_squares(leaves)), float64_sum(leaves), rtol=1e-3)


def test_global_norm_of_a_tree_and_of_nothing():
    leaves = arrays([(3, 4), (5,)])
    tree = {"a": leaves[0], "b": [leaves[1]]}
    assert np.isclose(float(global_norm(tree)), np.sqrt(float64_sum(leaves)), rtol=1e-6)
    assert float(global_norm({})) == 0.0


def test_float16_squares_are_summed_in_float32():
    big = [mx.full((1000,), 300.0, dtype=mx.float16)]  # 300^2 * 1000 overflows float16
    assert np.isclose(float(global_norm(big)), 300.0 * np.sqrt(1000), rtol=1e-3)


def _ranges(blocks, body):
    """The element ranges each block reads, from a kernel's source: block -> [(array, lo, hi)]."""
    chunk = int(re.search(r"blockIdx\.x \* (\d+)LL", body).group(1))
    total = int(re.search(r"start \+ \d+LL : (\d+)LL", body).group(1))
    bounds = [
        (int(lo), int(hi)) for lo, hi in re.findall(r"start > (\d+)LL .*\n.*end < (\d+)LL", body)
    ]
    reads = {}
    for b in range(blocks):
        start, end = b * chunk, min(b * chunk + chunk, total)
        reads[b] = [
            (i, max(start, lo) - lo, min(end, hi) - lo)
            for i, (lo, hi) in enumerate(bounds)
            if min(end, hi) > max(start, lo)
        ]
    return blocks, total, bounds, reads


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_element_is_read_by_exactly_one_block(name):
    shapes = SHAPES[name][: _kernels._MAX_INPUTS]
    sizes = [int(np.prod(s)) for s in shapes]
    blocks, total, bounds, reads = _ranges(*kernel_source(sizes))
    assert total == sum(sizes)
    assert blocks == (1 if total <= _kernels._ONE_BLOCK else min(1024, -(-total // (1 << 16))))
    assert_each_element_once(sizes, bounds, reads)


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_update_kernel_touches_every_element_once(name):
    from mlx_audio.train._adam_kernel import _PER_LAUNCH
    from mlx_audio.train._adam_kernel import kernel_source as update_source

    sizes = tuple(int(np.prod(s)) for s in SHAPES[name][:_PER_LAUNCH])
    blocks, body, inputs, outputs = update_source((0.9, 0.999, 1e-8, 0.01, False), sizes)
    assert len(inputs) == 4 * len(sizes) + 3 and len(outputs) == 3 * len(sizes)
    for i, n in enumerate(sizes):  # every array is read and written only through its own range
        if n:
            assert f"np{i}[k] = ok ? p_ : p{i}[k];" in body
    blocks, total, bounds, reads = _ranges(blocks, body)
    assert total == sum(sizes) and blocks == max(1, -(-total // 4096))
    assert_each_element_once(sizes, bounds, reads)


def assert_each_element_once(sizes, bounds, reads):
    nonempty = [i for i, n in enumerate(sizes) if n]
    assert [hi - lo for lo, hi in bounds] == [sizes[i] for i in nonempty]
    seen = {i: np.zeros(sizes[i], dtype=np.int64) for i in nonempty}
    for parts in reads.values():
        for i, lo, hi in parts:
            seen[nonempty[i]][lo:hi] += 1
    assert all((count == 1).all() for count in seen.values())


def test_one_kernel_name_per_set_of_shapes_and_dtypes():
    """MLX caches compiled kernels by name: the name covers the sizes and the dtypes."""
    cases = [
        ((3, 4), (mx.float32, mx.float32)),
        ((3, 4), (mx.bfloat16, mx.float32)),
        ((4, 3), (mx.float32, mx.float32)),
        ((3, 4), (mx.float32, mx.float32)),
    ]
    names = [kernel_name(kernel_source(sizes)[1], dtypes) for sizes, dtypes in cases]
    assert len(set(names)) == 3 and names[0] == names[3]


# -- on CUDA: the kernel itself -----------------------------------------------------------------
@on_cuda
@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16, mx.float16])
def test_kernel_equals_the_mlx_formulation(name, dtype):
    leaves = arrays(SHAPES[name], dtype)
    got, want = float(sum_of_squares(leaves)), float(reference_sum_of_squares(leaves))
    assert np.isclose(got, float64_sum(leaves), rtol=1e-5), (got, float64_sum(leaves))
    assert np.isclose(got, want, rtol=1e-4), (got, want)


@on_cuda
def test_kernel_gives_the_same_bits_every_run_and_under_compile():
    leaves = arrays(SHAPES["many blocks"])
    first = np.asarray(sum_of_squares(leaves))
    for _ in range(5):
        assert np.asarray(sum_of_squares(leaves)).tobytes() == first.tobytes()
    compiled = mx.compile(lambda *xs: sum_of_squares(list(xs)))
    assert np.asarray(compiled(*leaves)).tobytes() == first.tobytes()


@on_cuda
def test_kernel_reads_views_and_non_finite_values():
    base = arrays([(64, 48)])[0]
    views = [base.T, base[::2, 1:], base[3]]  # copied to row-contiguous before the kernel
    assert np.isclose(float(sum_of_squares(views)), float64_sum(views), rtol=1e-5)
    bad = arrays([(100,), (10,)])
    bad[1] = mx.concatenate([bad[1][:-1], mx.array([np.inf])])
    assert np.isinf(float(sum_of_squares(bad)))
    bad[1] = mx.concatenate([bad[1][:-1], mx.array([np.nan])])
    assert np.isnan(float(sum_of_squares(bad)))


# -- NOTE [a custom kernel checks itself first] ----------------------------------------------------
@pytest.mark.parametrize("failure", ["raises", "disagrees"])
def test_a_kernel_that_fails_its_check_leaves_the_mlx_formulation(monkeypatch, caplog, failure):
    def broken(leaves):
        if failure == "raises":
            raise RuntimeError("nvrtc: error: identifier undefined")
        return reference_sum_of_squares(leaves) * 1.01

    monkeypatch.setattr(_kernels, "_partial_sums", broken)
    _kernels._checked.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="mlx_audio.train._kernels"):
            assert _kernels._checked() is False
        (record,) = caplog.records
        assert "failed its check" in record.message and "MLX_AUDIO_CUDA_KERNELS=0" in record.message
        assert ("nvrtc" if failure == "raises" else "where MLX's ops give") in record.message
    finally:
        _kernels._checked.cache_clear()


def test_a_kernel_that_passes_its_check_is_used(monkeypatch, caplog):
    monkeypatch.setattr(_kernels, "_partial_sums", reference_sum_of_squares)
    _kernels._checked.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert _kernels._checked() is True
        assert not caplog.records
    finally:
        _kernels._checked.cache_clear()


@on_cuda
def test_the_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("MLX_AUDIO_CUDA_KERNELS", "0")
    assert not cuda_step_kernels()
    leaves = arrays(SHAPES["cnn"])
    assert mx.array_equal(sum_of_squares(leaves), reference_sum_of_squares(leaves))


# -- NOTE [one kernel for the optimizer's update] ---------------------------------------------------
def emulated_launch(rule, sizes, inputs):
    """The update kernel's arithmetic in MLX ops (what the generated CUDA computes per element),
    so the bookkeeping around it runs off CUDA."""
    b1, b2, eps, decay, bias = rule  # Python floats: MLX rounds them to float32, as the kernel
    n = len(sizes)
    lr, scale, applied = inputs[4 * n : 4 * n + 3]
    c1, c2 = inputs[4 * n + 3 :] if bias else (None, None)
    out = []
    for i in range(n):
        p, g, m, v = (x.reshape(-1) for x in inputs[4 * i : 4 * i + 4])
        g = g * scale
        m2 = b1 * m + (1 - b1) * g
        v2 = b2 * v + (1 - b2) * (g * g)
        pd = p * (1 - lr * decay) if decay else p
        step = (c1 * m2) / (mx.sqrt(v2) * c2 + eps) if bias else lr * m2 / (mx.sqrt(v2) + eps)
        out += [mx.where(applied, pd - step, p), mx.where(applied, m2, m), mx.where(applied, v2, v)]
    return out


@pytest.fixture
def emulated_kernels(monkeypatch):
    """The step's kernels switched on, each replaced by its MLX emulation."""
    from mlx_audio.train import _adam_kernel, _guard_kernel

    if not cuda_step_kernels():
        monkeypatch.setattr(_kernels, "cuda_step_kernels", lambda: True)
        monkeypatch.setattr(_kernels, "_partial_sums", reference_sum_of_squares)
        monkeypatch.setattr(_adam_kernel, "_launch", emulated_launch)
        monkeypatch.setattr(_guard_kernel, "_launch", emulated_scalars)
    _adam_kernel._checked.cache_clear()
    _guard_kernel._checked.cache_clear()
    yield _adam_kernel
    _adam_kernel._checked.cache_clear()
    _guard_kernel._checked.cache_clear()


def emulated_scalars(sizes, inputs):
    """The step's scalars kernel's arithmetic (NOTE [one kernel for the step's scalars]) in
    MLX's ops, its settings read from its ``rule`` input as the kernel reads them (a trace cannot
    read an array's values); its CUDA source itself runs in test_guard_kernel.py."""
    *leaves, loss, counters, rule = inputs
    norm = mx.sqrt(reference_sum_of_squares(leaves))
    scale = mx.where(mx.isfinite(norm), mx.minimum(1.0, rule[0] / (norm + 1e-6)), mx.nan)
    strict = rule[1] != 0
    ok = mx.isfinite(loss) & mx.isfinite(scale) & (mx.logical_not(strict) | (counters[1] == 0))
    poisoned = (strict & mx.logical_not(ok)).astype(mx.int32)
    return scale, ok, counters + mx.array([1, 0], dtype=mx.int32) + poisoned * mx.array([0, 1])


@pytest.mark.parametrize("make", [0, 1], ids=["AdamW", "Adam cosine bias-corrected"])
@pytest.mark.parametrize("applied", [True, False])
def test_fused_update_is_mlx_optimizers_update(emulated_kernels, make, applied):
    """Weights, moments, step and scheduled rate after two steps, applied or not (the check
    each process runs before it uses the kernel, here also on the emulation off CUDA)."""
    assert emulated_kernels.check(emulated_kernels._CHECKED[make], applied) == ""


def test_fused_update_applies_only_to_adam_and_adamw_in_float32(emulated_kernels):
    import mlx.nn as nn
    import mlx.optimizers as optim

    applies = emulated_kernels.fused_update_applies
    model = nn.Linear(4, 3)
    grads = model.trainable_parameters()
    for make, expected in [
        (lambda: optim.AdamW(1e-3), True),
        (lambda: optim.Adam(1e-3), True),
        (lambda: optim.SGD(1e-3), False),
        (lambda: optim.Adamax(1e-3), False),
        (lambda: type("MyAdamW", (optim.AdamW,), {})(1e-3), False),  # may change the rule
    ]:
        opt = make()
        opt.init(grads)
        assert applies(opt, grads) is expected, opt
    opt = optim.AdamW(1e-3)
    opt.init(grads)
    half = {k: v.astype(mx.bfloat16) for k, v in grads.items()}
    assert not applies(opt, half)


def nan_fit(root, mode: str = "skip", clip: float | None = 0.5) -> tuple:
    """A small ``Trainer.fit`` (compiled step, AdamW with a schedule, two epochs of 12 batches)
    whose batch 5 holds a NaN: ``(parameters, optimizer state, global_step, error or None)``."""
    import mlx.nn as nn
    import mlx.optimizers as optim

    from mlx_audio.data import ArrayDataset, DataLoader
    from mlx_audio.train import Trainer, TrainModule

    class Net(TrainModule):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 16), nn.Linear(16, 3)

        def __call__(self, x):
            return self.b(nn.relu(self.a(x)))

        def compute_loss(self, batch):
            x, y = batch
            return mx.mean(nn.losses.cross_entropy(self(x), y))

        def configure_optimizers(self):
            return optim.AdamW(optim.linear_schedule(1e-2, 1e-3, 20), weight_decay=0.05)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    x[40] = np.nan  # batch 5 of 12
    y = rng.integers(0, 3, 96).astype(np.int32)
    mx.random.seed(0)
    model = Net()
    trainer = Trainer(
        max_epochs=2,
        gradient_clip_val=clip,
        on_nonfinite_loss=mode,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    try:
        trainer.fit(model, DataLoader(ArrayDataset(x, y), batch_size=8))
        error = None
    except Exception as raised:  # "raise": the error naming the bad batch
        error = str(raised)
    return model.parameters(), trainer.optimizer.state, trainer.global_step, error


def assert_same_run(a: tuple, b: tuple) -> None:
    """Two ``nan_fit`` results: the same step and error, weights and state within 1e-5."""
    from mlx.utils import tree_flatten

    assert a[2:] == b[2:]
    for (k, u), (_, v) in zip(tree_flatten(a[:2]), tree_flatten(b[:2])):
        assert np.allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-7), k


def test_fit_with_the_kernels_trains_as_without(emulated_kernels, tmp_path, monkeypatch):
    """Trainer.fit (compiled step, clipping, the guard, a NaN batch skipped) reaches the same
    weights with the kernel path (emulated off CUDA) as with MLX's optimizer."""
    with_kernels = nan_fit(tmp_path / "kernels")
    monkeypatch.setattr(emulated_kernels, "fused_update_applies", lambda *a: False)
    without = nan_fit(tmp_path / "mlx")
    assert with_kernels[2] == 22  # 24 batches, the NaN one skipped twice
    assert_same_run(with_kernels, without)


@on_cuda
def test_the_step_scalars_kernel_passes_its_check_on_cuda():
    """NOTE [one kernel for the step's scalars]: the real kernel against MLX's ops (its source
    runs under the emulator in test_guard_kernel.py off CUDA)."""
    from mlx_audio.train import _guard_kernel
    from mlx_audio.train._counters import counters_at

    _guard_kernel._checked.cache_clear()
    assert _guard_kernel.check() == ""
    leaves = arrays(SHAPES["cnn"])
    got = _guard_kernel.step_scalars(leaves, mx.array(2.0), counters_at(4), 1.0, True)
    assert got is not None
    want = _guard_kernel.reference_step_scalars(leaves, mx.array(2.0), counters_at(4), 1.0, True)
    assert abs(got[0].item() - want[0].item()) <= 1e-5 * want[0].item()
    assert got[1].item() and got[2].tolist() == want[2].tolist() == [5, 0]


@on_cuda
def test_the_update_kernel_passes_its_check_on_cuda():
    from mlx_audio.train import _adam_kernel

    _adam_kernel._checked.cache_clear()
    for make in _adam_kernel._CHECKED:
        for applied in (True, False):
            assert _adam_kernel.check(make, applied) == ""


# -- the kernels' CUDA source itself, run on the CPU (tests/cuda_emulator.py in mlx-audio-models) ---
needs_gxx = pytest.mark.skipif(not emulator.available(), reason="no g++ to run the kernels' source")
_EMULATED: dict[str, object] = {}


def run_source(body, input_names, output_names, inputs, blocks, threads, output_shapes):
    kernel = _EMULATED.setdefault(body, emulator.Kernel(body, input_names, output_names))
    got = kernel(
        inputs=[np.array(a) for a in inputs],
        template=[],
        grid=(blocks * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=output_shapes,
        output_dtypes=[np.float32] * len(output_shapes),
    )
    return [mx.array(a) for a in got]


@needs_gxx
@pytest.mark.parametrize(
    "sizes", [(37, 0, 1, 4096), (600_000, 37, 0, 1)], ids=["one-block", "blocks"]
)
def test_the_norms_kernel_source_sums_every_square_once(sizes):
    leaves = [
        mx.array(np.random.default_rng(i).standard_normal(n).astype(np.float32))
        for i, n in enumerate(sizes)
    ]
    blocks, body = kernel_source(sizes)
    assert (blocks == 1) == (sum(sizes) <= _kernels._ONE_BLOCK)
    (partials,) = run_source(
        body,
        [f"g{i}" for i in range(len(sizes))],
        ["out"],
        leaves,
        blocks,
        _kernels._THREADS,
        [(blocks,)],
    )
    assert partials.shape == (blocks,)
    assert abs(mx.sum(partials).item() - float64_sum(leaves)) <= 1e-5 * float64_sum(leaves)


def source_launch(rule, sizes, inputs):
    """The update kernel's generated source, run by the emulator, in place of MLX's launch."""
    from mlx_audio.train import _adam_kernel

    blocks, body, names, outputs = _adam_kernel.kernel_source(rule, tuple(int(n) for n in sizes))
    shapes = [(n,) for n in sizes for _ in range(3)]
    return run_source(body, names, outputs, inputs, blocks, _adam_kernel._THREADS, shapes)


@needs_gxx
@pytest.mark.parametrize("make", [0, 1], ids=["AdamW", "Adam cosine bias-corrected"])
@pytest.mark.parametrize("applied", [True, False])
def test_the_update_kernels_source_is_mlx_optimizers_update(monkeypatch, make, applied):
    from mlx_audio.train import _adam_kernel

    monkeypatch.setattr(_kernels, "cuda_step_kernels", lambda: True)
    monkeypatch.setattr(_adam_kernel, "_launch", source_launch)
    assert _adam_kernel.check(_adam_kernel._CHECKED[make], applied) == ""


@needs_gxx
def test_the_emulated_update_kernel_catches_a_wrong_rule(monkeypatch):
    from mlx_audio.train import _adam_kernel

    original = _adam_kernel.kernel_source

    def wrong(rule, sizes):
        blocks, body, names, outputs = original(rule, sizes)
        return blocks, body.replace("B2 * v", "B1 * v"), names, outputs

    monkeypatch.setattr(_kernels, "cuda_step_kernels", lambda: True)
    monkeypatch.setattr(_adam_kernel, "kernel_source", wrong)
    monkeypatch.setattr(_adam_kernel, "_launch", source_launch)
    assert "max difference" in _adam_kernel.check(_adam_kernel._CHECKED[0], True)
