"""Lightning's profilers (``lightning.pytorch.profilers``): ``Trainer(profiler="simple")`` times
each hook and loop action and reports, when ``fit`` (``validate``, ``test``, ``predict``) ends,
the mean and total time of each; ``"advanced"`` runs ``cProfile`` per action.

NOTE [device time in the profile]: MLX computes lazily, so the clock of an action that queued
device work would stop before that work ran. The Trainer evaluates the step's outputs
(``mx.eval``) inside ``run_training_batch`` when a profiler is on, so that action is the step's
time on the device; with the default ``PassThroughProfiler`` the step stays asynchronous.
"""

from __future__ import annotations

import cProfile
import io
import math
import os
import pstats
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlx.core as mx

from ._status import log

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Profiler", "SimpleProfiler", "AdvancedProfiler", "PassThroughProfiler"]


class Profiler:
    """The base of the profilers (Lightning's ``Profiler``): ``start``/``stop`` an action by
    name, ``profile(name)`` as a context manager, and ``summary()``, written by ``describe()``
    through ``logging`` (logger ``mlx_audio.train``) or, with ``dirpath`` and ``filename``, to
    ``dirpath/{stage}-{filename}.txt``. Without ``dirpath``, the Trainer's ``log_dir`` (its
    ``default_root_dir`` without a logger), as Lightning."""

    def __init__(self, dirpath: str | Path | None = None, filename: str | None = None) -> None:
        self.dirpath = dirpath
        self.filename = filename
        self._stage: str | None = None
        self._local_rank: int | None = None

    def start(self, action_name: str) -> None:
        raise NotImplementedError

    def stop(self, action_name: str) -> None:
        raise NotImplementedError

    def summary(self) -> str:
        return ""

    @contextmanager
    def profile(self, action_name: str) -> Iterator[str]:
        try:
            self.start(action_name)
            yield action_name
        finally:
            self.stop(action_name)

    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        self._stage = stage
        self._local_rank = local_rank
        self.dirpath = self.dirpath or log_dir

    def teardown(self, stage: str | None) -> None:
        """Lightning's: after ``describe``; a new ``setup`` starts the next report."""

    def _prepare_filename(self, action_name: str | None = None, extension: str = ".txt") -> str:
        parts = [p for p in (self._stage, self.filename) if p]
        if self._local_rank is not None:
            parts.append(str(self._local_rank))
        if action_name is not None:
            parts.append(action_name)
        base = re.sub(r"_+", "_", re.sub(r"[\\/:*?\"<>|\n\r\t]", "_", "-".join(parts))).strip()
        return (base or "profile") + extension

    def describe(self) -> None:
        """Write the report (Lightning's ``describe``): to the file, else through logging."""
        summary = self.summary()
        if summary:
            if self.filename and self.dirpath:
                os.makedirs(self.dirpath, exist_ok=True)
                path = os.path.join(self.dirpath, self._prepare_filename())
                with open(path, "a", encoding="utf-8") as file:
                    file.write(summary)
            elif self._local_rank in (None, 0):
                log.info(summary)
        self.teardown(self._stage)

    @property
    def local_rank(self) -> int:
        return 0 if self._local_rank is None else self._local_rank


class PassThroughProfiler(Profiler):
    """Records nothing (the Trainer's default, as Lightning's)."""

    def start(self, action_name: str) -> None:
        pass

    def stop(self, action_name: str) -> None:
        pass


class SimpleProfiler(Profiler):
    """The duration of each action, reported as Lightning's table: mean duration, number of
    calls, total time and percentage of the run per action (``extended=False``: mean and total
    only)."""

    def __init__(
        self, dirpath: str | Path | None = None, filename: str | None = None, extended: bool = True
    ) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.current_actions: dict[str, float] = {}
        self.recorded_durations: dict[str, list[float]] = defaultdict(list)
        self.extended = extended
        self.start_time = time.perf_counter()

    def start(self, action_name: str) -> None:
        if action_name in self.current_actions:
            raise ValueError(f"Attempted to start {action_name} which has already started.")
        self.current_actions[action_name] = time.perf_counter()

    def stop(self, action_name: str) -> None:
        end_time = time.perf_counter()
        if action_name not in self.current_actions:
            raise ValueError(
                f"Attempting to stop recording an action ({action_name}) which was never started."
            )
        self.recorded_durations[action_name].append(
            end_time - self.current_actions.pop(action_name)
        )

    def _make_report_extended(
        self,
    ) -> tuple[list[tuple[str, float, int, float, float]], int, float]:
        total_duration = time.perf_counter() - self.start_time
        report = []
        for action, durations in self.recorded_durations.items():
            total = math.fsum(durations)
            report.append(
                (
                    action,
                    total / len(durations),
                    len(durations),
                    total,
                    100.0 * total / total_duration,
                )
            )
        report.sort(key=lambda row: row[4], reverse=True)
        return report, sum(row[2] for row in report), total_duration

    def summary(self) -> str:
        sep = os.linesep
        out = (
            f"{self._stage.upper()} " if self._stage is not None else ""
        ) + f"Profiler Report{sep}"
        if not self.recorded_durations:
            return out
        width = max(len(k) for k in self.recorded_durations)
        if self.extended:

            def row(*cells: str) -> str:
                action, mean, calls, total, share = cells
                line = f"{sep}|  {action:<{width}s}\t|  {mean:<15}\t|"
                return line + f"  {calls:<15}\t|  {total:<15}\t|  {share:<15}\t|"

            header = row(
                "Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %"
            )
            lines = f"{sep}{'-' * len(header.expandtabs())}"
            out += lines + header + lines
            report, calls, duration = self._make_report_extended()
            out += row("Total", "-", f"{calls}", f"{duration:.5}", "100 %") + lines
            for action, mean, count, total, share in report:
                out += row(action, f"{mean:.5}", f"{count}", f"{total:.5}", f"{share:.5}")
            out += lines
        else:

            def short(action: str, mean: str, total: str) -> str:
                return f"{sep}|  {action:<{width}s}\t|  {mean:<15}\t|  {total:<15}\t|"

            header = short("Action", "Mean duration (s)", "Total time (s)")
            lines = f"{sep}{'-' * len(header.expandtabs())}"
            out += lines + header + lines
            rows = [
                (a, math.fsum(d) / len(d), math.fsum(d)) for a, d in self.recorded_durations.items()
            ]
            for action, mean, total in sorted(rows, key=lambda r: r[1], reverse=True):
                out += short(action, f"{mean:.5}", f"{total:.5}")
            out += lines
        return out + sep

    def teardown(self, stage: str | None) -> None:
        super().teardown(stage)


class AdvancedProfiler(Profiler):
    """``cProfile`` per action (Lightning's): the report lists, per action, the functions it
    called, sorted by cumulative time; ``line_count_restriction`` keeps that many lines (an int)
    or that fraction of them; ``dump_stats=True`` also writes each action's raw ``.prof`` file
    to ``dirpath``."""

    def __init__(
        self,
        dirpath: str | Path | None = None,
        filename: str | None = None,
        line_count_restriction: float = 1.0,
        dump_stats: bool = False,
    ) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.profiled_actions: dict[str, cProfile.Profile] = defaultdict(cProfile.Profile)
        self.line_count_restriction = line_count_restriction
        self.dump_stats = dump_stats

    def start(self, action_name: str) -> None:
        for profile in self.profiled_actions.values():  # one cProfile active at a time
            profile.disable()
        self.profiled_actions[action_name].enable()

    def stop(self, action_name: str) -> None:
        profile = self.profiled_actions.get(action_name)
        if profile is None:
            raise ValueError(
                f"Attempting to stop recording an action ({action_name}) which was never started."
            )
        profile.disable()

    def summary(self) -> str:
        stats: dict[str, str] = {}
        for action, profile in self.profiled_actions.items():
            if self.dump_stats:
                if not self.dirpath:
                    raise ValueError("AdvancedProfiler(dump_stats=True) needs a dirpath")
                os.makedirs(self.dirpath, exist_ok=True)
                name = self._prepare_filename(action_name=action, extension=".prof")
                profile.dump_stats(os.path.join(self.dirpath, name))
            text = io.StringIO()
            pstats.Stats(profile, stream=text).strip_dirs().sort_stats("cumulative").print_stats(
                self.line_count_restriction
            )
            stats[action] = text.getvalue()
        stage = f"{self._stage.upper()} " if self._stage is not None else ""
        output = [stage + "Profiler Report"]
        for action, value in stats.items():
            header = f"Profile stats for: {action}"
            if self._local_rank is not None:
                header += f" rank: {self._local_rank}"
            output += [header, value]
        return os.linesep.join(output)

    def teardown(self, stage: str | None) -> None:
        super().teardown(stage)
        self.profiled_actions.clear()

    def __reduce__(self) -> tuple[Any, ...]:  # cProfile objects cannot be copied (Lightning's)
        state = {"dirpath": self.dirpath, "filename": self.filename}
        return (
            self.__class__,
            (),
            {**state, "line_count_restriction": self.line_count_restriction},
        )


def make_profiler(profiler: Profiler | str | None) -> Profiler:
    """``Trainer(profiler=...)``: a name (Lightning's, case-insensitive), a profiler or None."""
    if isinstance(profiler, str):
        names: dict[str, type[Profiler]] = {"simple": SimpleProfiler, "advanced": AdvancedProfiler}
        if profiler.lower() not in names:
            raise ValueError(
                "When passing string value for the `profiler` parameter of `Trainer`, it can only "
                f"be one of {list(names)} (Lightning's 'pytorch' and 'xla' profile torch)"
            )
        return names[profiler.lower()]()
    if profiler is not None and not isinstance(profiler, Profiler):
        raise ValueError(
            "Trainer: profiler must be 'simple', 'advanced', a mlx_audio.train.profiler "
            f"Profiler or None, got {type(profiler).__name__}"
        )
    return profiler or PassThroughProfiler()


def on_device(trainer: Trainer) -> None:
    """NOTE [device time in the profile]: with a profiler on, wait for the step just queued."""
    if not isinstance(trainer.profiler, PassThroughProfiler) and trainer.runner is not None:
        mx.eval(trainer.runner.builder.state, trainer.last_loss)


_NOTHING = nullcontext()  # reusable: one for every unprofiled action


def profiled(trainer: Trainer, action: str | Callable[[], str]) -> AbstractContextManager[Any]:
    """``trainer.profiler.profile(action)``; nothing at all under the default profiler (a
    callable ``action`` makes the name only when a profiler records it)."""
    profiler: Profiler | None = getattr(trainer, "profiler", None)
    if profiler is None or isinstance(profiler, PassThroughProfiler):
        return _NOTHING
    return profiler.profile(action if isinstance(action, str) else action())
