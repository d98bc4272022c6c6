"""The main process's side of a worker's :class:`~.protocol.Sizing` hint.

NOTE [warm destination]: every array of a batch is copied once out of its shared-memory slot into
a new ``mx.array`` (NOTE [batch copies]). MLX takes that memory from its buffer cache; a pass's
first batches find the cache empty (the pool clears it before forking workers, NOTE [fast
start]), and fresh memory faults in page by page during the copy: ~5 ms for an 8 MB batch on a
2-core VM, against ~0.5 ms for the copy into a cached buffer, on the critical path of the first
batch. A worker announces each large array (``shm.HINT_BYTES``) it is about to write into slot
pages it has not used yet -- before it allocates and fills them -- and the main process, which
is usually idle waiting for that batch, faults in an MLX buffer of exactly the size the copy
will ask for and frees it into MLX's cache, where the copy finds it. Only the first batches of a
slot (and a slot's growth) are announced, so a steady pass sends no hints. Only where MLX's
default device is the CPU (where it was measured; a GPU's copy is the transfer thread's, NOTE
[pin_memory on CUDA]); ignored when batches are not converted to MLX.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

Warm = Callable[[tuple[int, ...], str], None]


def warmer(convert: Callable[[Any], Any]) -> Warm | None:
    """What to do with a ``Sizing`` hint when each array leaves its slot through ``convert``."""
    mx = sys.modules.get("mlx.core")
    if mx is None or convert is not mx.array or mx.default_device() != mx.cpu:
        return None
    dtypes: dict[str, Any] = {}

    def warm(shape: tuple[int, ...], dtype: str) -> None:
        try:
            target = dtypes.get(dtype)
            if target is None:  # what mx.array makes of this numpy dtype (float64 -> float32)
                target = dtypes[dtype] = mx.array(np.zeros(1, dtype)).dtype
            buffer = mx.zeros(shape, target, stream=mx.cpu)
            mx.eval(buffer)
            del buffer  # into MLX's buffer cache, pages faulted in
        except Exception:  # a dtype MLX does not take: the copy reports it, not the hint
            pass

    return warm
