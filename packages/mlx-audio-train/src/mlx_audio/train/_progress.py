"""Where training is: the one resumable record of the loop's counters (saved in checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Progress:
    """Lightning's counters, named as there.

    ``current_epoch`` counts finished epochs; ``global_step`` optimizer updates;
    ``batches_that_stepped`` the logging step (Lightning's ``_batches_that_stepped``: the number of
    batches that ended with an update, advanced after validation); ``batch_in_epoch`` the batches
    consumed in the running epoch and ``total_batches`` over all epochs; ``epoch_finished`` is
    set once the epoch's end hooks run, so a checkpoint written there resumes at the next epoch,
    and ``epoch_cut`` with it when the epoch ended with batches left (NOTE [an epoch cut short]).
    """

    current_epoch: int = 0
    global_step: int = 0
    batches_that_stepped: int = 0
    batch_in_epoch: int = 0
    total_batches: int = 0
    epoch_finished: bool = False
    epoch_cut: bool = False
    should_stop: bool = False

    def to_state(self) -> dict[str, Any]:
        state = asdict(self)
        state["epoch"] = state.pop("current_epoch")
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], file: str) -> Progress:
        """The counters of a checkpoint's ``trainer_state.json``, each checked (ValueError naming
        the file and the key; checkpoint.py raises it as a CheckpointError)."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = "epoch" if field.name == "current_epoch" else field.name
            flag = field.type == "bool"
            value = state.get(key, False if flag else None)
            if value is None and field.name in ("batches_that_stepped", "total_batches"):
                value = state.get("global_step", 0)  # format 1 did not record them
            if isinstance(value, bool) != flag or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"{file}: {key!r} must be a non-negative int (a bool for flags), got {value!r}"
                )
            values[field.name] = value
        return cls(**values)

    def settle_resume(
        self, mid_epoch: bool, num_training_batches: float, iteration_based: bool = False
    ) -> bool:
        """After a restore: whether the run goes on inside the saved epoch. Saved at an epoch's
        last batch or its end, it goes on with the next epoch (the counters moved there).

        NOTE [an epoch cut short]: an epoch that ended with batches left (``max_steps``, a stop
        request) ran its end hooks, and a checkpoint written there keeps the loader's position.
        As in Lightning 2.6 (``_FitLoop.restarting``), a run resumed from it with ``max_steps``
        set (iteration-based) goes on inside that epoch after its last batch, without
        ``on_train_epoch_start`` and with ``on_train_epoch_end`` again at its end; without
        ``max_steps`` it starts the next epoch."""
        cut = self.epoch_finished and self.epoch_cut and iteration_based
        if cut and self.batch_in_epoch < num_training_batches:
            self.epoch_finished = self.epoch_cut = False
            return True
        if mid_epoch and self.batch_in_epoch >= num_training_batches:
            self.epoch_finished = True  # saved at the epoch's last batch: nothing left in it
            mid_epoch = False
        if self.epoch_finished:
            self.current_epoch += 1
            self.batch_in_epoch = 0
            self.epoch_finished = self.epoch_cut = False
        return mid_epoch
