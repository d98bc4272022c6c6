"""The kernels of a compiled step, counted from MLX's graph of its lazy outputs (``mx.export_to_dot``
after compile's fusion): shared by the step's kernel tests and ``benchmarks/gpu/step_overhead.py``."""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten

# views of their input in MLX (no kernel; a basic Slice too, unlike a Gather)
VIEWS = {
    "ExpandDims",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Broadcast",
    "AsStrided",
    "Flatten",
    "Slice",
}


def kernel_labels(outputs: Any, skip: str = "") -> list[str]:
    """The primitives of ``outputs``' graph that run a kernel (views and ``skip`` left out)."""
    path = os.path.join(tempfile.mkdtemp(), "step.dot")
    mx.export_to_dot(path, *[v for _, v in tree_flatten(outputs) if isinstance(v, mx.array)])
    with open(path) as f:
        labels = re.findall(r'label ="([A-Za-z]+)"', f.read())
    os.remove(path)
    return [name for name in labels if name not in VIEWS and len(name) > 1 and name != skip]
