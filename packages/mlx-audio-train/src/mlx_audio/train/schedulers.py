"""Learning-rate schedules: callables ``step -> lr`` for an MLX optimizer's ``learning_rate``.

``step`` is an int or a 0-d ``mx.array`` (MLX passes the optimizer's update counter, which
starts at 0). Each schedule is MLX's own (``mlx.optimizers.linear_schedule``, ``cosine_decay``,
``step_decay``) behind a warm-up, joined with ``join_schedules`` as mlx-lm's
``tuner/utils.py:build_schedule`` does; the classes only name the arguments, check them and
keep Lightning-style names. ``join_schedules`` selects with ``mx.where`` instead of Python
branches, so the schedules work inside ``mx.compile`` without retracing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mlx.core as mx
import mlx.optimizers as optim

__all__ = [
    "WarmupCosineScheduler",
    "WarmupLinearScheduler",
    "WarmupConstantScheduler",
    "StepDecayScheduler",
    "OneCycleScheduler",
]


def _check(name: str, value: float, minimum: float = 0.0) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")


class _Warmup:
    """Shared warm-up: ``peak * (s + 1) / W`` for ``s < W`` (the first update is never at 0)."""

    def __init__(
        self, peak_lr: float, warmup_steps: int, total_steps: int | None = None, min_lr: float = 0.0
    ) -> None:
        _check("peak_lr", peak_lr)
        _check("min_lr", min_lr)
        _check("warmup_steps", warmup_steps)
        if total_steps is not None:
            _check("total_steps", total_steps)
            if total_steps < warmup_steps:
                raise ValueError(
                    f"total_steps ({total_steps}) must be >= warmup_steps ({warmup_steps})"
                )
        self.peak_lr = float(peak_lr)
        self.min_lr = float(min_lr)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = None if total_steps is None else int(total_steps)

    def _schedule(self) -> Callable[[mx.array], mx.array]:
        """The MLX schedule (built per call: the object stays plain data to copy and pickle)."""
        raise NotImplementedError

    def __call__(self, step: int | mx.array) -> mx.array:
        return self._schedule()(_as_step(step))

    def _warm(self, after: Callable[[mx.array], mx.array]) -> Callable[[mx.array], mx.array]:
        """``after`` (counting from 0 at ``s = W``) behind the warm-up ``peak * (s + 1) / W``:
        MLX's linear schedule from ``peak / W`` to ``peak`` over steps 0 .. W-1."""
        if self.warmup_steps == 0:
            return after
        w = self.warmup_steps
        warm = optim.linear_schedule(self.peak_lr / w, self.peak_lr, max(w - 1, 1))
        return optim.join_schedules([warm, after], [w])

    @property
    def _span(self) -> int:
        """Steps from the end of warm-up to ``total_steps`` (at least 1)."""
        return max(self.total_steps - self.warmup_steps, 1)  # type: ignore[operator]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _as_step(step: int | mx.array) -> mx.array:
    return mx.array(step).astype(mx.float32)


class WarmupCosineScheduler(_Warmup):
    """``peak*(s+1)/W`` for ``s < W``; then ``min + (peak-min) * (1 + cos(pi*p)) / 2`` with
    ``p = (s-W)/(T-W)``, i.e. ``peak`` at ``s = W`` and ``min_lr`` at ``s = T``; ``min_lr`` beyond."""

    def __init__(
        self, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
    ) -> None:
        super().__init__(peak_lr, warmup_steps, total_steps, min_lr)

    def _schedule(self) -> Callable[[mx.array], mx.array]:
        return self._warm(optim.cosine_decay(self.peak_lr, self._span, self.min_lr))


class WarmupLinearScheduler(_Warmup):
    """``peak*(s+1)/W`` for ``s < W``; then linear from ``peak`` at ``s = W`` to ``min_lr`` at
    ``s = T``; ``min_lr`` beyond."""

    def __init__(
        self, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
    ) -> None:
        super().__init__(peak_lr, warmup_steps, total_steps, min_lr)

    def _schedule(self) -> Callable[[mx.array], mx.array]:
        return self._warm(optim.linear_schedule(self.peak_lr, self.min_lr, self._span))


class WarmupConstantScheduler(_Warmup):
    """``peak*(s+1)/W`` for ``s < W``, then ``peak`` forever."""

    def __init__(self, peak_lr: float, warmup_steps: int = 0) -> None:
        super().__init__(peak_lr, warmup_steps)

    def _schedule(self) -> Callable[[mx.array], mx.array]:
        peak = self.peak_lr
        return self._warm(lambda s: mx.full(s.shape, peak))  # MLX has no constant schedule


class StepDecayScheduler(_Warmup):
    """``peak * gamma ** floor((s - W) / step_size)`` after an optional warm-up."""

    def __init__(
        self, peak_lr: float, step_size: int, gamma: float = 0.1, warmup_steps: int = 0
    ) -> None:
        super().__init__(peak_lr, warmup_steps)
        _check("step_size", step_size, 1)
        _check("gamma", gamma)
        self.step_size = int(step_size)
        self.gamma = float(gamma)

    def _schedule(self) -> Callable[[mx.array], mx.array]:
        return self._warm(optim.step_decay(self.peak_lr, self.gamma, self.step_size))


class OneCycleScheduler(_Warmup):
    """Smith's one-cycle (cosine): from ``peak/div_factor`` up to ``peak`` over the first
    ``pct_start`` of ``total_steps``, then down to ``peak/(div_factor*final_div_factor)``."""

    def __init__(
        self,
        peak_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ) -> None:
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"pct_start must be in (0, 1), got {pct_start!r}")
        _check("div_factor", div_factor, 1.0)
        _check("final_div_factor", final_div_factor, 1.0)
        super().__init__(peak_lr, 0, total_steps)
        self.pct_start, self.div_factor, self.final_div_factor = (
            float(pct_start),
            float(div_factor),
            float(final_div_factor),
        )

    def _schedule(self) -> Callable[[mx.array], mx.array]:
        start = self.peak_lr / self.div_factor
        end = start / self.final_div_factor
        rise = max(self.pct_start * self.total_steps, 1.0)  # type: ignore[operator]
        fall = max(self.total_steps - rise, 1.0)  # type: ignore[operator]
        # a cosine "decay" from start to peak is the rise; a float rise is fine for MLX
        rising = optim.cosine_decay(start, rise, self.peak_lr)  # type: ignore[arg-type]
        falling = optim.cosine_decay(self.peak_lr, fall, end)  # type: ignore[arg-type]
        return optim.join_schedules([rising, falling], [rise])  # type: ignore[list-item]
