"""Schedules against their closed forms at the edges: step 0, warm-up end, total, beyond."""

import math

import mlx.core as mx
import pytest

from mlx_audio.train.schedulers import (
    OneCycleScheduler,
    StepDecayScheduler,
    WarmupConstantScheduler,
    WarmupCosineScheduler,
    WarmupLinearScheduler,
)


def at(schedule, step):
    return schedule(step).item()


@pytest.mark.parametrize("cls", [WarmupCosineScheduler, WarmupLinearScheduler])
def test_warmup_then_decay_edges(cls):
    s = cls(peak_lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert at(s, 0) == pytest.approx(0.1)  # peak * 1 / W: the first update is not at 0
    assert at(s, 4) == pytest.approx(0.5)
    assert at(s, 9) == pytest.approx(1.0)
    assert at(s, 10) == pytest.approx(1.0)  # decay starts from peak at s = W
    assert at(s, 110) == pytest.approx(0.1)
    assert at(s, 500) == pytest.approx(0.1)
    mid = 0.1 + 0.9 * (0.5 * (1 + math.cos(math.pi * 0.5)) if cls is WarmupCosineScheduler else 0.5)
    assert at(s, 60) == pytest.approx(mid, rel=1e-5)
    assert at(s, mx.array(60)) == pytest.approx(mid, rel=1e-5)


def test_zero_warmup_and_errors():
    s = WarmupCosineScheduler(peak_lr=2.0, warmup_steps=0, total_steps=10)
    assert at(s, 0) == pytest.approx(2.0) and at(s, 10) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="total_steps .* must be >= warmup_steps"):
        WarmupLinearScheduler(peak_lr=1.0, warmup_steps=10, total_steps=5)
    with pytest.raises(ValueError, match="peak_lr"):
        WarmupCosineScheduler(peak_lr=-1.0, warmup_steps=0, total_steps=5)


def test_inside_compile_without_retracing():
    s = WarmupLinearScheduler(peak_lr=1.0, warmup_steps=2, total_steps=6)
    compiled = mx.compile(lambda step: s(step))
    assert [round(compiled(mx.array(i)).item(), 6) for i in range(8)] == [
        0.5,
        1.0,
        1.0,
        0.75,
        0.5,
        0.25,
        0.0,
        0.0,
    ]


def test_other_schedules():
    c = WarmupConstantScheduler(peak_lr=1.0, warmup_steps=4)
    assert [at(c, i) for i in (0, 3, 4, 100)] == pytest.approx([0.25, 1.0, 1.0, 1.0])
    d = StepDecayScheduler(peak_lr=1.0, step_size=10, gamma=0.5)
    assert [at(d, i) for i in (0, 9, 10, 25)] == pytest.approx([1.0, 1.0, 0.5, 0.25])
    o = OneCycleScheduler(peak_lr=1.0, total_steps=100, pct_start=0.3)
    assert (
        at(o, 0) == pytest.approx(0.04)
        and at(o, 30) == pytest.approx(1.0)
        and at(o, 100) == pytest.approx(0.04 / 1e4)
    )


def test_usable_as_mlx_learning_rate():
    import mlx.optimizers as optim

    opt = optim.SGD(learning_rate=WarmupLinearScheduler(peak_lr=1.0, warmup_steps=2, total_steps=4))
    params = {"w": mx.array(1.0)}
    rates = []
    for _ in range(3):
        params = opt.apply_gradients({"w": mx.array(0.0)}, params)
        rates.append(opt.learning_rate.item())
    assert rates == pytest.approx([0.5, 1.0, 1.0])
