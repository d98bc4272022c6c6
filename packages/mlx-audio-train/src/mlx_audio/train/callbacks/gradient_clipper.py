"""GradientClipper: the same single clipping as ``Trainer(gradient_clip_val=...)``."""

from __future__ import annotations

from .base import Callback, check_number


class GradientClipper(Callback):
    """Clip the (accumulated, averaged) gradients once per optimizer update, before it.

    Read by the Trainer when ``fit`` starts; it never adds a second update. Giving both this and
    a different ``gradient_clip_val`` is an error.
    """

    def __init__(self, max_norm: float = 1.0, algorithm: str = "norm") -> None:
        check_number("GradientClipper", "max_norm", max_norm, minimum=0)
        if algorithm not in ("norm", "value"):
            raise ValueError(
                f"GradientClipper: algorithm must be 'norm' or 'value', got {algorithm!r}"
            )
        self.max_norm = float(max_norm)
        self.algorithm = algorithm
