"""The learning-rate schedules as they were before they became wrappers over mlx.optimizers
(issue 25), verbatim: the reference test_schedulers.py compares the current ones with, step by step."""

from __future__ import annotations

import math

import mlx.core as mx


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

    def _warm(self, s: mx.array, after: mx.array) -> mx.array:
        if self.warmup_steps == 0:
            return after
        warm = self.peak_lr * (s + 1) / self.warmup_steps
        return mx.where(s < self.warmup_steps, warm, after)

    def _progress(self, s: mx.array) -> mx.array:
        """0 at the end of warm-up, 1 at ``total_steps`` (clamped)."""
        span = max(self.total_steps - self.warmup_steps, 1)  # type: ignore[operator]
        return mx.clip((s - self.warmup_steps) / span, 0.0, 1.0)

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

    def __call__(self, step: int | mx.array) -> mx.array:
        s = _as_step(step)
        cosine = self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (
            1.0 + mx.cos(math.pi * self._progress(s))
        )
        return self._warm(s, cosine)


class WarmupLinearScheduler(_Warmup):
    """``peak*(s+1)/W`` for ``s < W``; then linear from ``peak`` at ``s = W`` to ``min_lr`` at
    ``s = T``; ``min_lr`` beyond."""

    def __init__(
        self, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
    ) -> None:
        super().__init__(peak_lr, warmup_steps, total_steps, min_lr)

    def __call__(self, step: int | mx.array) -> mx.array:
        s = _as_step(step)
        linear = self.peak_lr + (self.min_lr - self.peak_lr) * self._progress(s)
        return self._warm(s, linear)


class WarmupConstantScheduler(_Warmup):
    """``peak*(s+1)/W`` for ``s < W``, then ``peak`` forever."""

    def __init__(self, peak_lr: float, warmup_steps: int = 0) -> None:
        super().__init__(peak_lr, warmup_steps)

    def __call__(self, step: int | mx.array) -> mx.array:
        s = _as_step(step)
        return self._warm(s, mx.full(s.shape, self.peak_lr))


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

    def __call__(self, step: int | mx.array) -> mx.array:
        s = _as_step(step)
        decays = mx.floor(mx.maximum(s - self.warmup_steps, 0.0) / self.step_size)
        return self._warm(s, self.peak_lr * mx.power(mx.array(self.gamma), decays))


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

    def __call__(self, step: int | mx.array) -> mx.array:
        s = _as_step(step)
        start = self.peak_lr / self.div_factor
        peak = self.peak_lr
        end = start / self.final_div_factor
        rise = max(self.pct_start * self.total_steps, 1.0)  # type: ignore[operator]
        fall = max(self.total_steps - rise, 1.0)  # type: ignore[operator]
        up = mx.clip(s / rise, 0.0, 1.0)
        down = mx.clip((s - rise) / fall, 0.0, 1.0)
        rising = start + (peak - start) * 0.5 * (1 - mx.cos(math.pi * up))
        falling = end + (peak - end) * 0.5 * (1 + mx.cos(math.pi * down))
        return mx.where(s < rise, rising, falling)
