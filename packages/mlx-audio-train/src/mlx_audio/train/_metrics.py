"""``self.log`` bookkeeping with Lightning 2.6's semantics (which hooks may log, the options and
checks of a value: ``_log_rules.py``): one running entry per (hook, name) with its
step value and epoch reduction (``_ResultCollection``), and the ``callback_metrics`` /
``logged_metrics`` / ``progress_bar_metrics`` views the Trainer exposes (``MetricStore``).

NOTE [live metric views]: as in Lightning, the Trainer's three metric dicts are live: reading one
merges the running loop's current view into what was published before. Inside a batch loop the
view holds the latest step values; once the loop's batches are done (``Results.end_batches``,
before the epoch-end hooks) it holds the epoch reductions, so ``on_*_epoch_end`` hooks and the
monitors there (EarlyStopping, ModelCheckpoint) see this epoch's values. Values stay ``mx.array``
until something reads them (a logger at a logging step, a monitor, the progress bar at its
refresh), so logging adds no device sync per step.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from ._log_rules import LogOptions, check_value


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


class _Entry:
    """One logged (hook, name), Lightning's ``_ResultMetric``: its last step value (kept until
    the loop resets, as Lightning's forward cache) and its epoch reduction."""

    __slots__ = ("computed", "dataloader_idx", "last", "name", "options", "reduction", "synced")

    def __init__(self, name: str, options: LogOptions, dataloader_idx: int | None) -> None:
        self.name = name
        self.options = options
        self.dataloader_idx = dataloader_idx  # the loader it was logged for (several loaders)
        self.last: Any = None
        self.reduction = (
            _Reduction(options.reduce_fx) if options.on_epoch and options.metric is None else None
        )
        self.computed: Any = None  # a logged Metric's epoch value (NOTE [logged Metric objects])
        self.synced = False


# NOTE [a name logged twice in a step]: as in Lightning, each ``self.log`` call of a step is an
# update of the name's metric: the step value is the last call's, the epoch value reduces them
# all. A step's values leave it in one dict (traced when compiled), so the second and later calls
# of a name are kept under ``name + REPEAT + n``; ``Results.add`` reads them back in call order.
REPEAT = "\x00"


class Results:
    """One loop's logged values (the train loop's or one validation/test pass's).

    ``stepping`` is True from the loop's first batch until ``end_batches`` (Lightning's
    ``_first_loop_iter is not None``): its view is then the step values, else the epoch values.

    NOTE [several loaders]: with several validation/test loaders, ``dataloader_idx`` is the
    running loader's index (None with one loader, and in the epoch-level hooks). A value logged
    then is its own entry, named ``name/dataloader_idx_N`` (unless ``add_dataloader_idx=False``),
    and the views show only the running loader's entries, as Lightning's ``valid_items``.
    """

    def __init__(self, training: bool = True) -> None:
        self.training = training
        self.entries: dict[str, _Entry] = {}
        self.stepping = False
        self.batch_size = 1  # the running batch's (weights what its hooks log on_epoch)
        self.dataloader_idx: int | None = None  # NOTE [several loaders]

    def batch_start(self, batch_size: int, dataloader_idx: int | None = None) -> None:
        self.stepping = True
        self.batch_size = batch_size
        self.dataloader_idx = dataloader_idx

    def add(
        self,
        fx: str,
        values: dict[str, Any],
        options: dict[str, LogOptions],
        batch_size: int | None = None,
    ) -> None:
        """Record the values logged in hook ``fx`` (a step's, or one ``self.log`` of a hook)."""
        idx = self.dataloader_idx
        for logged, value in values.items():
            name = logged.split(REPEAT, 1)[0]  # NOTE [a name logged twice in a step]
            opt = options[name]
            key = f"{fx}.{name}"
            if opt.add_dataloader_idx and idx is not None:
                key += f".{idx}"
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = _Entry(name, opt, idx)
            elif (entry.options is not opt and entry.options != opt) or entry.dataloader_idx != idx:
                raise ValueError(
                    f"You called `self.log({name}, ...)` twice in `{fx}` with different arguments."
                    " This is not allowed"
                )
            if opt.on_step:
                entry.last = value
            if entry.reduction is not None:
                entry.reduction.add(value, opt.batch_size or batch_size or self.batch_size)

    def end_batches(self, reduce: Any) -> None:
        """The loop's batches are done (Lightning's ``epoch_end_reached``): from now on the view
        is the epoch reductions, made the whole job's first (NOTE [live metric views])."""
        self.stepping = False
        self.batch_size = 1
        self.sync(reduce)

    def sync(self, reduce: Any) -> None:
        """Make the epoch reductions not yet synced the whole job's (data-parallel;
        ``distributed.reduce_totals``); those logged after ``end_batches`` (by the epoch-end
        hooks) are synced when the epoch is published."""
        pending = sorted(
            key
            for key, e in self.entries.items()
            if e.reduction is not None and e.reduction.weight and not e.synced
        )
        for key in sorted(self.entries):  # NOTE [logged Metric objects]
            entry = self.entries[key]
            if entry.options.metric is not None and entry.options.on_epoch and not entry.synced:
                entry.computed = epoch_value(entry.name, entry.options.metric)
                entry.synced = True
        reductions = [self.entries[key].reduction for key in pending]
        reduced = reduce([(r.reduce_fx, r.total, r.weight) for r in reductions if r is not None])
        for key, (total, weight) in zip(pending, reduced):
            entry = self.entries[key]
            assert entry.reduction is not None
            entry.reduction.total, entry.reduction.weight = total, weight
            entry.synced = True

    def metrics(self, on_step: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(log, callback, progress bar) values: the step values or the epoch reductions, with
        Lightning's names (``name_step`` / ``name_epoch`` when both are logged) and rules (an
        eval loop's step values are not callback metrics)."""
        log: dict[str, Any] = {}
        callback: dict[str, Any] = {}
        bar: dict[str, Any] = {}
        for entry in self.entries.values():
            if entry.dataloader_idx != self.dataloader_idx:
                continue  # NOTE [several loaders]
            opt = entry.options
            if on_step:
                if not opt.on_step or entry.last is None:
                    continue
                value = entry.last
            elif entry.computed is not None:
                value = entry.computed
            else:
                if entry.reduction is None or not entry.reduction.weight:
                    continue
                value = entry.reduction.value()
            name = forked = entry.name
            if opt.on_step and opt.on_epoch:
                forked = f"{entry.name}_{'step' if on_step else 'epoch'}"
            if opt.add_dataloader_idx and entry.dataloader_idx is not None:
                suffix = f"/dataloader_idx_{entry.dataloader_idx}"
                name, forked = name + suffix, forked + suffix
            if opt.logger:
                log[forked] = value
            if self.training or not on_step:
                callback[name] = callback[forked] = value
            if opt.prog_bar:
                bar[forked] = value
        return log, callback, bar

    def view(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return self.metrics(on_step=self.stepping)

    def reset_metrics(self) -> None:
        """The epoch is published: reset the logged Metric objects (Lightning does)."""
        for entry in self.entries.values():
            if entry.options.metric is not None:
                entry.options.metric.reset()


def epoch_value(name: str, metric: Any) -> Any:
    """NOTE [logged Metric objects]: ``self.log(name, metric)`` logs, at each step (``on_step``),
    the metric's value on that batch (its ``forward``) and, for the epoch (``on_epoch``), its
    ``compute()`` over every batch of the epoch -- not a mean of batch values -- made when the
    loop's batches are done (on every rank, in the same order: it syncs across ranks); the
    metric is reset once the epoch is published, as Lightning does with torchmetrics."""
    if metric.update_count == 0:
        return None
    value = metric.compute()
    if not isinstance(value, mx.array) or value.size != 1:
        shape = getattr(value, "shape", type(value).__name__)
        raise ValueError(
            f"`self.log({name}, {type(metric).__name__})`: its compute() gives {shape}, not a"
            " single number; log a metric with a scalar value (e.g. average='macro')"
        )
    return value.reshape(()).astype(mx.float32)


def metric_step_value(name: str, metric: Any, on_step: bool) -> Any:
    """What ``self.log(name, metric)`` records for a step: the metric's batch value when
    ``on_step`` (it must have been called, its ``forward``), else a placeholder 0 (the epoch
    value comes from ``compute``)."""
    if not on_step:
        return mx.array(0.0)
    value = metric._forward_cache
    if value is None:
        raise ValueError(
            f"`self.log({name}, {type(metric).__name__}, on_step=True)` needs the metric's value"
            " on this batch: call the metric (`metric(preds, target)`, its forward) in this"
            " step, not only `update`, or log it with on_step=False"
        )
    return check_value(name, value)


class MetricStore:
    """What the Trainer exposes as ``callback_metrics``, ``logged_metrics``, ``progress_bar_metrics``:
    the values published so far, merged with the running loop's view when read."""

    def __init__(self) -> None:
        self.callback: dict[str, Any] = {}
        self.logged: dict[str, Any] = {}
        self.progress_bar: dict[str, Any] = {}

    def update(self, log: dict[str, Any], callback: dict[str, Any], bar: dict[str, Any]) -> None:
        self.callback.update(callback)
        self.logged.update(log)
        self.progress_bar.update(bar)

    def read(self, kind: str, results: Results) -> dict[str, float]:
        """``kind`` ("callback", "logged" or "progress_bar") with ``results``' live view merged
        in (NOTE [live metric views]), as floats."""
        log, callback, bar = results.view()
        stored, live = {
            "callback": (self.callback, callback),
            "logged": (self.logged, log),
            "progress_bar": (self.progress_bar, bar),
        }[kind]
        stored.update(live)
        return self.floats(stored)

    def snapshot(self) -> tuple[dict[str, Any], ...]:
        return dict(self.callback), dict(self.logged), dict(self.progress_bar)

    def restore(self, snapshot: tuple[dict[str, Any], ...]) -> None:
        self.callback, self.logged, self.progress_bar = (dict(d) for d in snapshot)

    @staticmethod
    def floats(values: dict[str, Any]) -> dict[str, float]:
        """Materialize lazily kept values in place (one device sync for all of them, and none
        the next time); returns a copy of floats."""
        pending = {k: v for k, v in values.items() if isinstance(v, mx.array)}
        if pending:
            mx.eval(list(pending.values()))
            values.update({k: float(v.item()) for k, v in pending.items()})  # type: ignore[arg-type]
        return {k: float(v) for k, v in values.items()}
