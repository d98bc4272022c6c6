"""``self.log`` bookkeeping (Lightning's semantics): step values, epoch reductions, and the
``callback_metrics`` / ``logged_metrics`` / ``progress_bar_metrics`` the callbacks read.

Values stay ``mx.array`` until something reads them (a logger at a logging step, a monitor at
validation end, the progress bar at its refresh), so logging adds no device sync per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx

# Hooks whose self.log defaults to on_step=True, on_epoch=False (Lightning's _FxValidator);
# every other hook that may log defaults to on_step=False, on_epoch=True.
STEP_HOOKS = frozenset(
    {"training_step", "on_train_batch_start", "on_train_batch_end", "on_before_optimizer_step"}
)
LOGGING_HOOKS = STEP_HOOKS | {
    "validation_step",
    "test_step",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_test_batch_start",
    "on_test_batch_end",
}
_REDUCE = ("mean", "sum", "max", "min")


@dataclass(frozen=True)
class LogOptions:
    on_step: bool
    on_epoch: bool
    prog_bar: bool = False
    logger: bool = True
    reduce_fx: str = "mean"
    sync_dist: bool = False
    batch_size: int | None = None

    @classmethod
    def make(cls, fx: str, on_step: bool | None, on_epoch: bool | None, **rest: Any) -> LogOptions:
        if fx not in LOGGING_HOOKS:
            raise ValueError(
                f"self.log() cannot be called in {fx}: log in a *_step method or one of {sorted(LOGGING_HOOKS - STEP_HOOKS)}"
            )
        step_default = fx in STEP_HOOKS
        options = cls(
            on_step=step_default if on_step is None else bool(on_step),
            on_epoch=(not step_default) if on_epoch is None else bool(on_epoch),
            **{**rest, "reduce_fx": _reduce_name(rest.get("reduce_fx", "mean"))},
        )
        if not options.on_step and not options.on_epoch:
            raise ValueError(
                "self.log(on_step=False, on_epoch=False) is not useful: the value would never be logged"
            )
        return options


def _reduce_name(reduce_fx: Any) -> str:
    """Lightning's accepted reductions: min/max/mean/sum (any case, ``avg`` = mean) or the
    framework's function (``mx.mean``, ``mx.max``, ...)."""
    if callable(reduce_fx):
        import mlx.core as mx

        known = {mx.mean: "mean", mx.max: "max", mx.min: "min", mx.sum: "sum"}
        name = next((v for k, v in known.items() if k is reduce_fx), None)
    else:
        name = str(reduce_fx).lower()
        name = "mean" if name == "avg" else name
    if name not in _REDUCE:
        raise ValueError(
            f"self.log(reduce_fx=...) must be one of {_REDUCE} (or mx.mean/max/min/sum), got {reduce_fx!r}"
        )
    return name


class _Reduction:
    """A running reduction of one metric over a loop (batch-size-weighted for ``mean``)."""

    def __init__(self, reduce_fx: str) -> None:
        self.reduce_fx = reduce_fx
        self.total: Any = None
        self.weight = 0

    def add(self, value: Any, weight: int) -> None:
        if self.reduce_fx == "mean":
            value = value * weight if weight != 1 else value
        if self.total is None:
            self.total = value
        elif self.reduce_fx in ("mean", "sum"):
            self.total = self.total + value
        else:
            pick = mx.maximum if self.reduce_fx == "max" else mx.minimum
            self.total = pick(mx.array(self.total), mx.array(value))
        self.weight += weight

    def value(self) -> Any:
        return self.total / self.weight if self.reduce_fx == "mean" else self.total


class Results:
    """One loop's logged values (the train loop's or the validation loop's)."""

    def __init__(self) -> None:
        self.options: dict[str, LogOptions] = {}
        self.epoch: dict[str, _Reduction] = {}
        self.step: dict[str, Any] = {}

    def add(self, values: dict[str, Any], options: dict[str, LogOptions], batch_size: int) -> None:
        """Record values of the running batch (the loop clears ``step`` when a batch starts)."""
        for name, value in values.items():
            opt = options[name]
            self.options[name] = opt
            if opt.on_step:
                self.step[name] = value
            if opt.on_epoch:
                reduction = self.epoch.setdefault(name, _Reduction(opt.reduce_fx))
                reduction.add(value, opt.batch_size or batch_size)

    def sync(self, reduce: Any) -> None:
        """Make the epoch reductions the whole job's (data-parallel; ``distributed.reduce_totals``)."""
        names = sorted(name for name, r in self.epoch.items() if r.weight)
        reduced = reduce(
            [(self.epoch[n].reduce_fx, self.epoch[n].total, self.epoch[n].weight) for n in names]
        )
        for name, (total, weight) in zip(names, reduced):
            self.epoch[name].total = total
            self.epoch[name].weight = weight

    def _forked(self, name: str, suffix: str) -> str:
        opt = self.options[name]
        return f"{name}_{suffix}" if opt.on_step and opt.on_epoch else name

    def step_metrics(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(log, callback, progress bar) views of the last batch's on_step values."""
        return self._views(self.step.items(), "step")

    def epoch_metrics(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(log, callback, progress bar) views of the epoch reductions."""
        reduced = ((name, r.value()) for name, r in self.epoch.items() if r.weight)
        return self._views(reduced, "epoch")

    def _views(
        self, items: Any, suffix: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        log: dict[str, Any] = {}
        callback: dict[str, Any] = {}
        bar: dict[str, Any] = {}
        for name, value in items:
            key = self._forked(name, suffix)
            callback[key] = callback[name] = value
            if self.options[name].logger:
                log[key] = value
            if self.options[name].prog_bar:
                bar[key] = value
        return log, callback, bar


class MetricStore:
    """What the Trainer exposes as ``callback_metrics``, ``logged_metrics``, ``progress_bar_metrics``."""

    def __init__(self) -> None:
        self.callback: dict[str, Any] = {}
        self.logged: dict[str, Any] = {}
        self.progress_bar: dict[str, Any] = {}

    def update(self, log: dict[str, Any], callback: dict[str, Any], bar: dict[str, Any]) -> None:
        self.callback.update(callback)
        self.logged.update(log)
        self.progress_bar.update(bar)

    @staticmethod
    def floats(values: dict[str, Any]) -> dict[str, float]:
        """Materialize lazily kept values in place (one device sync for all of them, and none
        the next time); returns a copy of floats."""
        pending = {k: v for k, v in values.items() if isinstance(v, mx.array)}
        if pending:
            mx.eval(list(pending.values()))
            values.update({k: float(v.item()) for k, v in pending.items()})  # type: ignore[arg-type]
        return {k: float(v) for k, v in values.items()}
