"""Exceptions that are also what torch raises in the same place, so code written against torch
(``except AssertionError``, ``pytest.raises(RuntimeError)``) catches ours, while ours say more
and have the type a Python user expects (like numpy's ``AxisError(ValueError, IndexError)``)."""

from __future__ import annotations

__all__ = ["NotSupported", "SizeMismatchError", "WeightsError"]


class NotSupported(TypeError, AssertionError):
    """A TypeError that is also what torch raises here (an AssertionError)."""


class SizeMismatchError(ValueError, AssertionError):
    """Datasets or arrays that do not fit together (torch asserts: an AssertionError)."""


class WeightsError(ValueError, RuntimeError):
    """Weights a ``WeightedRandomSampler`` cannot draw from, raised when it is made (torch's
    ``torch.multinomial`` raises a RuntimeError when it draws)."""
