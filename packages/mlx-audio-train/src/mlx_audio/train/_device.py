"""Lightning's ``accelerator`` and ``devices`` in MLX's terms.

NOTE [accelerator and devices]: MLX runs one device per process. ``accelerator`` picks it:
``"auto"`` is MLX's default device (the GPU where MLX has one), ``"cpu"`` runs the Trainer's work
on the CPU stream, ``"gpu"`` (and ``"cuda"``/``"mps"``, which also name the kind of GPU) requires
MLX's GPU. The choice holds inside ``fit``/``validate``/``test``/``predict`` only (a stream
scope): MLX's global default device is left as it is. ``devices`` counts processes, which
``mlx.launch`` starts (data-parallel, one device each): anything but one device must equal the
launched world size; ``"auto"`` and ``-1`` take what was launched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import mlx.core as mx

from . import distributed

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _available() -> list[str]:
    found = ["cpu"]
    if mx.metal.is_available():
        found += ["gpu", "mps"]
    elif getattr(mx, "cuda", None) is not None and mx.cuda.is_available():
        found += ["gpu", "cuda"]
    return found


def check_accelerator(accelerator: Any) -> str:
    """``accelerator`` as one of ACCELERATORS; ``ValueError`` for an unknown one or one MLX
    cannot use here (Lightning's message: which are available)."""
    if not isinstance(accelerator, str) or accelerator.lower() not in (*ACCELERATORS, "tpu"):
        raise ValueError(
            f"Trainer: accelerator must be one of {ACCELERATORS}, got {accelerator!r} "
            "(MLX has no Accelerator objects)"
        )
    name = accelerator.lower()
    if name != "auto" and name not in _available():
        raise ValueError(
            f"Trainer: accelerator={accelerator!r} can not run on your system since the accelerator "
            f"is not available to MLX here. The following accelerator(s) is available and can be passed "
            f"into `accelerator` argument of `Trainer`: {_available()}."
        )
    return name


def check_devices(devices: Any) -> None:
    """``devices`` as Lightning takes it (int, "auto", "N", "0,1", a list of indices), checked
    against the processes ``mlx.launch`` started."""
    if devices == "auto" or devices == -1 or devices == "-1":
        return
    if isinstance(devices, bool) or not isinstance(devices, (int, str, list, tuple)):
        raise ValueError(
            f"Trainer: devices must be an int, a string or a list of indices, got {devices!r}"
        )
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    else:
        try:
            count = int(devices)
        except ValueError:
            raise ValueError(
                f"Trainer: devices={devices!r} is not an int, 'auto' or a comma-separated list"
            ) from None
    if count < 1:
        raise ValueError(
            f"Trainer: devices={devices!r} selects no device; give 1 or more, 'auto' or -1"
        )
    launched = distributed.world_size()
    if count not in (1, launched):
        raise ValueError(
            f"Trainer: devices={devices!r} asks for {count} devices, and this process is one of {launched}. MLX runs "
            f"one device per process: start {count} processes with `mlx.launch -n {count} train.py` (data-parallel, "
            "docs/api/distributed.md) and keep devices='auto'."
        )


@contextlib.contextmanager
def device_scope(accelerator: str) -> Iterator[None]:
    """Run the body on the device ``accelerator`` picked (NOTE [accelerator and devices])."""
    wanted = mx.cpu if accelerator == "cpu" else None if accelerator == "auto" else mx.gpu
    if wanted is None or mx.default_device() == wanted:
        yield
        return
    with mx.stream(wanted):
        yield
