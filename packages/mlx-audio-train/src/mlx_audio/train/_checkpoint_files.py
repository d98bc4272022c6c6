"""Checkpoint directories on disk: their names, atomic deletion, the ``last`` link, and what
crashed runs left.

A crash at any moment leaves every checkpoint complete or absent (see checkpoint.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trainer import Trainer


def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def delete_checkpoint(path: str) -> None:
    """Remove a checkpoint directory so that a crash at any moment leaves it complete or absent:
    first an atomic rename to a ``.trash-`` name (never taken for a checkpoint), then the files."""
    parent = os.path.dirname(os.path.abspath(path))
    trash = os.path.join(parent, f".trash-{os.path.basename(path)}-{secrets.token_hex(4)}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    fsync(parent)
    shutil.rmtree(trash, ignore_errors=True)


def clean_leftovers(dirpath: str) -> list[str]:
    """Remove what crashed runs left in ``dirpath``: ``.trash-`` directories (deletions cut
    short), ``.tmp-`` checkpoints of processes that are gone (writes cut short) and stray
    temporary ``last`` links. Returns what was removed."""
    removed: list[str] = []
    if not os.path.isdir(dirpath):
        return removed
    for name in os.listdir(dirpath):
        path = os.path.join(dirpath, name)
        stale = name.startswith(".trash-")
        if name.startswith(".tmp-"):
            pid = name.rsplit("-", 2)[-2]
            stale = not (pid.isdigit() and _alive(int(pid)))
        if name.startswith(".last-") and os.path.islink(path):
            stale = True
        if stale:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)
            removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def point_last(dirpath: str, target: str, name: str = "last") -> str:
    """Atomically make ``dirpath/name`` a relative symlink to ``target``."""
    link = os.path.join(dirpath, name)
    tmp = os.path.join(dirpath, f".{name}-{secrets.token_hex(4)}")
    os.symlink(os.path.relpath(target, dirpath), tmp)
    os.replace(tmp, link)
    fsync(dirpath)
    return link


_GROUP = re.compile(r"(\{.*?)[:\}]")


def checkpoint_name(
    template: str | None,
    metrics: dict[str, Any],
    auto_insert_metric_name: bool,
    prefix: str = "",
    join: str = "-",
    equals: str = "=",
) -> str:
    """``template`` (``"{epoch:02d}-{val_loss:.3f}"``; default ``"{epoch}-{step}"``) filled from
    ``metrics``, a missing one as 0: Lightning's ``_format_checkpoint_name``, step for step
    (``epoch=03-val_loss=0.412`` with the names; names may hold ``/``, ``.`` and ``@``)."""
    filename = template or join.join(("{epoch}", "{step}"))
    values = dict(metrics)
    for group in sorted(_GROUP.findall(filename), key=len, reverse=True):
        name = group[1:]
        if auto_insert_metric_name:
            filename = filename.replace(group, name + equals + "{" + name)
        filename = filename.replace(group, f"{{0[{name}]")  # names with dots (str.format)
        values.setdefault(name, 0)
    filename = filename.format(values)
    return join.join((prefix, filename)) if prefix else filename


def unique_path(path: str, replacing: str | None = None) -> str:
    """``path``, or ``path-v1``, ``path-v2``... the first not on disk (or the one ``replacing``)."""
    candidate = path
    n = 0
    while os.path.lexists(candidate) and candidate != replacing:
        n += 1
        candidate = f"{path}-v{n}"
    return candidate


class CheckpointNames:
    """``ModelCheckpoint``'s names, as Lightning's (its class constants and methods)."""

    CHECKPOINT_JOIN_CHAR = "-"
    CHECKPOINT_EQUALS_CHAR = "="
    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ""  # a checkpoint is a directory
    filename: str | None
    dirpath: str | None
    auto_insert_metric_name: bool

    def format_name(self, metrics: dict[str, float]) -> str:
        """The file name for ``metrics`` (missing metrics format as 0, as in Lightning)."""
        return self._format_checkpoint_name(
            self.filename, metrics, auto_insert_metric_name=self.auto_insert_metric_name
        )

    def _format_checkpoint_name(
        self,
        filename: str | None,
        metrics: dict[str, Any],
        prefix: str = "",
        auto_insert_metric_name: bool = True,
    ) -> str:
        return checkpoint_name(
            filename,
            metrics,
            auto_insert_metric_name,
            prefix,
            self.CHECKPOINT_JOIN_CHAR,
            self.CHECKPOINT_EQUALS_CHAR,
        )

    def format_checkpoint_name(
        self,
        metrics: dict[str, Any],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str = "",
    ) -> str:
        """The checkpoint path for ``metrics`` (Lightning's): ``filename`` (default: this
        callback's) filled in, with ``prefix`` and a ``-v{ver}`` suffix, under ``dirpath``
        (a bare name when ``dirpath`` is not set yet). Checkpoints are directories, so there is
        no ``.ckpt`` extension (``FILE_EXTENSION`` is ``""``)."""
        name = self._format_checkpoint_name(
            filename or self.filename, metrics, prefix, self.auto_insert_metric_name
        )
        if ver is not None:
            name = self.CHECKPOINT_JOIN_CHAR.join((name, f"v{ver}"))
        name += self.FILE_EXTENSION
        return os.path.join(self.dirpath, name) if self.dirpath else name


# NOTE [default checkpoint directory]: ``ModelCheckpoint(dirpath=None)`` resolves its directory
# in ``setup`` as Lightning's ``__resolve_ckpt_dir``: with loggers, the first one's
# ``save_dir/name/version_N/checkpoints`` (a string version as it is; no local ``save_dir``: the
# Trainer's ``default_root_dir``), without, ``default_root_dir/checkpoints``. A logger whose
# version is not known yet (W&B, MLflow: their run starts in the background, never waited for)
# counts as none. Rank 0's answer is broadcast, so every process of an ``mlx.launch`` job names
# the directory rank 0 writes (a logger picks its next free version on each rank).
def logger_ckpt_dir(trainer: Trainer) -> tuple[str, str, str] | None:
    """``(save_dir, name, version)`` of the first logger, under which a ``dirpath=None``
    ModelCheckpoint writes (``save_dir/name/version/checkpoints``); None without one."""
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None or logger.version is None:
        return None
    save_dir = logger.save_dir
    if save_dir is None or "://" in os.fspath(save_dir):  # a tracking server's URI
        save_dir = trainer.default_root_dir
    version = logger.version
    version = version if isinstance(version, str) else f"version_{version}"
    return os.fspath(save_dir), str(logger.name), version


def resolve_ckpt_dir(trainer: Trainer) -> str:
    """The directory of a ``ModelCheckpoint(dirpath=None)`` (NOTE [default checkpoint
    directory]), the same on every rank."""
    from . import distributed

    under = logger_ckpt_dir(trainer)
    parts = (*under, "checkpoints") if under else (trainer.default_root_dir, "checkpoints")
    path = os.path.realpath(os.path.expanduser(os.path.join(*parts)))
    if distributed.world_size() == 1:
        return path
    import mlx.core as mx

    size = distributed.broadcast_int(len(path.encode()))  # rank 0's length: the same shapes
    mine = list(path.encode().ljust(size, b"\0")[:size])
    codes = distributed.broadcast(mx.array(mine, dtype=mx.int32))
    return bytes(int(c) for c in codes.tolist()).decode()


def newest_last(save_dir: str, name: str) -> str | None:
    """The ``last`` link under ``save_dir/name/*/checkpoints`` moved most recently (the
    checkpoint directory it names exists), None if there is none: what ``ckpt_path="last"``
    resumes from when this run's logger version has no ``last`` yet."""
    root = os.path.join(save_dir, name)
    found: list[tuple[float, str]] = []
    for version in os.listdir(root) if os.path.isdir(root) else []:
        link = os.path.join(root, version, "checkpoints", "last")
        if os.path.isdir(link):
            found.append((os.lstat(link).st_mtime, link))
    return max(found)[1] if found else None
