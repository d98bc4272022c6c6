"""Which checkpoint a ``ckpt_path`` selects for ``fit``, ``validate``, ``test`` and ``predict``
(``trainer.ckpt_path``), and Lightning's warnings about what a checkpoint holds."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from ._checkpoint_files import newest_last
from ._status import rank_zero_info
from .checkpoint import _FN, resolve_ckpt_path

if TYPE_CHECKING:
    from .module import TrainModule
    from .trainer import Trainer


def load_for_evaluation(trainer: Trainer, model: TrainModule, ckpt_path: str | None) -> None:
    """``validate``/``test``/``predict``'s ``ckpt_path``: the weights loaded, and
    ``trainer.ckpt_path`` set to the checkpoint (None without one), as in Lightning."""
    trainer.ckpt_path = path = selected_ckpt_path(trainer, ckpt_path)
    if path is not None:
        model.load_checkpoint(path)


def selected_ckpt_path(trainer: Trainer, ckpt_path: str | None) -> str | None:
    """``ckpt_path`` resolved (``trainer.ckpt_path``); None for a ``"last"`` that does not exist
    yet (nor in an earlier logger version: :func:`earlier_last`): nothing is loaded and a fit starts fresh, saying so through ``logging`` (resuming from
    ``"last"`` on every start is the documented idiom; Lightning warns), while ``validate`` /
    ``test`` / ``predict`` give Lightning's warning."""
    path = resolve_ckpt_path(trainer, ckpt_path) if ckpt_path is not None else None
    if ckpt_path == "last" and path is not None and not os.path.lexists(path):
        earlier = earlier_last(trainer)
        if earlier is not None:
            rank_zero_info(
                f"Trainer: no checkpoint at {path} yet; loading {earlier}, the newest `last` "
                "of an earlier version of this logger."
            )
            return earlier
        if trainer.state_fn == "fit":
            rank_zero_info(f"Trainer: no checkpoint at {path} yet; starting from scratch.")
            return None
        if not trainer.is_global_zero:
            return None
        warnings.warn(
            f'.{_FN.get(str(trainer.state_fn), trainer.state_fn)}(ckpt_path="last") is set, but '
            "there is no last checkpoint available. No checkpoint will be loaded. HINT: Set "
            "`ModelCheckpoint(..., save_last=True)`.",
            stacklevel=4,
        )
        return None
    return path


def earlier_last(trainer: Trainer) -> str | None:
    """For ``ckpt_path="last"`` when the first ModelCheckpoint took its directory from a logger
    (``save_dir/name/<version>/checkpoints``) and this version has no ``last`` yet: the newest
    ``last`` of the logger's other versions, so that a job started again (a new Trainer, a new
    logger version) goes on where it stopped. Lightning looks in this version only and starts
    from scratch (a documented difference)."""
    callback = trainer.checkpoint_callback
    under = callback._logger_root if callback is not None else None
    return newest_last(*under) if under is not None else None


def warn_missing_callbacks(trainer: Trainer, state: dict[str, Any]) -> None:
    """Lightning's warning when a checkpoint holds the state of a callback this Trainer has not."""
    missing = set(state.get("callbacks", {})) - {c.state_key for c in trainer.callbacks}
    if missing:
        warnings.warn(
            "Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to "
            "be provided during `Trainer` instantiation. Please add the following callbacks: "
            f"{sorted(missing)}.",
            stacklevel=3,
        )
