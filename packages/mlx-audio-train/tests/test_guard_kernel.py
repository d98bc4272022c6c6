"""NOTE [one kernel for the step's scalars] (``_guard_kernel.py``): the gradients' norm, the clip
scale, whether the update applies and the step's counters in one CUDA kernel. Its CUDA source
runs here under the emulator (``cuda_emulator.py`` of mlx-audio-models' tests) against MLX's
formulation, and a fit on the kernel path (the kernel's arithmetic in MLX ops inside the trace,
which the emulator cannot read) ends as a fit without it."""

from __future__ import annotations

import cuda_emulator as emulator
import mlx.core as mx
import numpy as np
import pytest
from test_kernels import assert_same_run, emulated_launch, emulated_scalars, nan_fit

from mlx_audio.train import _adam_kernel, _guard_kernel, _kernels
from mlx_audio.train._counters import counters_at

pytestmark = pytest.mark.skipif(
    not emulator.available(), reason="no g++ to run the kernel's source"
)
_BUILT: dict[str, emulator.Kernel] = {}


def source_launch(sizes, inputs):
    """The kernel's generated source, run by the emulator, in place of MLX's launch."""
    body, names = _guard_kernel.kernel_source(sizes)
    kernel = _BUILT.setdefault(body, emulator.Kernel(body, names, _guard_kernel.OUTPUTS))
    scale, applied, counted = kernel(
        inputs=[np.array(a.astype(mx.float32) if a.dtype != mx.int32 else a) for a in inputs],
        template=[],
        grid=(_kernels._THREADS, 1, 1),
        threadgroup=(_kernels._THREADS, 1, 1),
        output_shapes=[(1,), (1,), (2,)],
        output_dtypes=[np.float32, np.bool_, np.int32],
    )
    return mx.array(scale).reshape(()), mx.array(applied).reshape(()), mx.array(counted)


def switch_on(patch: pytest.MonkeyPatch, launch) -> None:
    """The step's kernels on: this one launched by ``launch``, the others' in MLX's arithmetic
    (test_kernels.py), each kernel's first-use check run again."""
    patch.setattr(_kernels, "cuda_step_kernels", lambda: True)
    patch.setattr(_kernels, "_partial_sums", _kernels.reference_sum_of_squares)
    patch.setattr(_adam_kernel, "_launch", emulated_launch)
    patch.setattr(_guard_kernel, "_launch", launch)
    _guard_kernel._checked.cache_clear()
    _adam_kernel._checked.cache_clear()


@pytest.fixture
def kernels_on(monkeypatch):
    """The step's kernels on, this one's CUDA source emulated."""
    switch_on(monkeypatch, source_launch)
    yield
    _guard_kernel._checked.cache_clear()
    _adam_kernel._checked.cache_clear()


def test_the_kernels_source_gives_mlxs_scale_flag_and_counters(kernels_on):
    """Within and beyond the clip, a NaN gradient, an infinite loss, an earlier bad call, no
    clipping, "skip" (the check each process runs before it uses the kernel)."""
    assert _guard_kernel.check() == ""
    leaves = [mx.array(np.full((40, 3), 2.0, np.float32)), mx.array(np.ones(7, np.float32))]
    inputs = [*leaves, mx.array(1.5), counters_at(9), _guard_kernel.rule(1.0, True)]
    scale, applied, counted = source_launch((120, 7), inputs)
    norm = float(np.sqrt(120 * 4.0 + 7))
    assert scale.item() == pytest.approx(1.0 / (norm + 1e-6), rel=1e-6)
    assert applied.item() and counted.tolist() == [10, 0]


@pytest.mark.parametrize(
    "wrong",
    [
        ("counters[1] == 0", "counters[1] == 1"),
        ("fminf(1.0f", "fmaxf(1.0f"),
        ("counters[0] + 1;", "counters[0] + 2;"),
        ("(strict && !ok ? 1 : 0)", "(!ok ? 1 : 0)"),
    ],
    ids=["guard", "clip", "clock", "skip poisons"],
)
def test_a_wrong_kernel_fails_its_check_and_is_not_used(kernels_on, monkeypatch, caplog, wrong):
    original = _guard_kernel.kernel_source

    def broken(sizes):
        body, names = original(sizes)
        assert wrong[0] in body
        return body.replace(*wrong), names

    monkeypatch.setattr(_guard_kernel, "kernel_source", broken)
    assert _guard_kernel.check() != ""
    leaves = [mx.ones((3,))]
    assert _guard_kernel.step_scalars(leaves, mx.array(1.0), counters_at(0), 1.0, True) is None
    assert "the step's scalars failed its check" in caplog.text


def test_it_applies_to_gradients_one_block_reads(kernels_on):
    small = [mx.ones((100, 10))]
    large = [mx.ones((_kernels._ONE_BLOCK + 1,))]
    args = (mx.array(1.0), counters_at(0), 1.0, True)
    assert _guard_kernel.step_scalars(small, *args) is not None
    assert _guard_kernel.step_scalars(large, *args) is None
    assert _guard_kernel.step_scalars([mx.ones((3,), dtype=mx.int32)], *args) is None


@pytest.mark.parametrize("clip", [0.5, None])
@pytest.mark.parametrize("mode", ["skip", "raise"])
def test_fit_on_the_kernel_path_ends_as_without_it(tmp_path, monkeypatch, clip, mode):
    """The same weights, optimizer state and step; under "raise" the same error, naming the
    batch. (Inside the compiled step the kernel is its MLX formulation: the emulator reads its
    inputs, which a trace cannot; its source is checked against it above.)"""
    without = nan_fit(tmp_path / "mlx", mode, clip)
    calls = []

    def counted(*args):
        calls.append(args[0])
        return emulated_scalars(*args)

    with monkeypatch.context() as patch:
        switch_on(patch, counted)
        try:
            with_kernel = nan_fit(tmp_path / "kernel", mode, clip)
        finally:
            _guard_kernel._checked.cache_clear()
            _adam_kernel._checked.cache_clear()
    assert len(calls) > 7  # the kernel path ran: its check (7 cases), then the traced step
    assert with_kernel[2] == (22 if mode == "skip" else 5)
    if mode == "raise":
        assert "at step 5 (epoch 0, batch 5): loss = nan" in without[3]
    assert_same_run(with_kernel, without)
