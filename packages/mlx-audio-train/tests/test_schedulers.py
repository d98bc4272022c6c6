"""Schedules against their closed forms at the edges: step 0, warm-up end, total, beyond."""

import math

import mlx.core as mx
import numpy as np
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


# -- the same values as before they wrapped mlx.optimizers (issue 25) ---------------------------
def _arguments():
    import schedules_before as before

    from mlx_audio.train import schedulers as now

    for peak, low in ((1.0, 0.0), (3e-3, 2e-5), (0.5, 0.5), (2.0, 0.1)):
        for warmup, total in (
            (0, 1),
            (0, 10),
            (1, 1),
            (1, 7),
            (2, 6),
            (10, 110),
            (37, 250),
            (5, 5),
        ):
            for name in ("WarmupCosineScheduler", "WarmupLinearScheduler"):
                yield name, getattr(before, name), getattr(now, name), (peak, warmup, total, low)
        for warmup in (0, 1, 4, 13):
            yield (
                "WarmupConstantScheduler",
                before.WarmupConstantScheduler,
                (now.WarmupConstantScheduler),
                (peak, warmup),
            )
            for step_size, gamma in ((1, 0.5), (10, 0.1), (7, 0.0), (3, 1.0), (5, 1.5)):
                yield (
                    "StepDecayScheduler",
                    before.StepDecayScheduler,
                    now.StepDecayScheduler,
                    (
                        peak,
                        step_size,
                        gamma,
                        warmup,
                    ),
                )
        for total, pct, div, final in (
            (100, 0.3, 25.0, 1e4),
            (1, 0.5, 25.0, 1e4),
            (3, 0.1, 1.0, 1.0),
            (250, 0.25, 10.0, 100.0),
            (17, 0.9, 4.0, 1e3),
        ):
            yield (
                "OneCycleScheduler",
                before.OneCycleScheduler,
                now.OneCycleScheduler,
                (
                    peak,
                    total,
                    pct,
                    div,
                    final,
                ),
            )


def test_every_step_has_the_value_it_had_before():
    """Each schedule over a grid of arguments, at every step from 0 to past its end (as int32 and
    as the optimizer's uint64 counter, eagerly and inside mx.compile; a few as Python ints),
    against the implementation before (schedules_before.py, kept verbatim): same dtype and
    shape, values within 1e-6 relative -- or 1e-6 of the peak, where a float32 cosine near its
    end subtracts two numbers of the peak's size and keeps fewer significant digits."""
    cases = list(_arguments())
    assert len(cases) > 100
    steps = list(range(0, 300)) + [1000, 10**6]
    for name, old_cls, new_cls, args in cases:
        old, new = old_cls(*args), new_cls(*args)
        assert repr(new) == repr(old)
        want = np.array(old(mx.array(steps)))
        compiled = mx.compile(new)
        for kind, got in (
            ("int32", new(mx.array(steps))),
            ("uint64", new(mx.array(steps, dtype=mx.uint64))),
            ("compiled", compiled(mx.array(steps))),
        ):
            assert got.dtype == mx.float32 and got.shape == (len(steps),), (name, args, kind)
            np.testing.assert_allclose(
                np.array(got), want, rtol=1e-6, atol=1e-6 * args[0], err_msg=f"{name}{args} {kind}"
            )
        for s in (0, 1, 5, 299):
            got = new(s)
            assert got.dtype == mx.float32 and got.shape == ()
            assert got.item() == pytest.approx(old(s).item(), rel=1e-6, abs=1e-6 * args[0]), (
                name,
                args,
                s,
            )
