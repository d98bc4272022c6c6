"""A source stream read by a wrapper stream (:class:`DynamicBucketingDataset`, :class:`Mux`)
that must be able to say where the source stands and go back there.

NOTE [source positions]: a position is the source's own state where it has one (torchdata's
``Stateful`` protocol, as the DataLoader reads it: ``state_dict()`` of the dataset, else of the
iterator its ``__iter__`` returned), else the number of samples read since ``iter()`` -- then
going back means iterating afresh and skipping them (exact for a stream that yields the same
samples each time it is iterated, as any seeded stream does). Positions are JSON data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ._loader.fetch import stream_parts
from ._loader.state import jsonable

END = object()


class SourceCursor:
    """Reads ``source`` and records / restores its position (NOTE [source positions])."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.iterator: Iterator[Any] | None = None
        self.read = 0  # samples read since the last iter() (the position of a stateless source)

    def start(self, position: dict[str, Any] | None = None) -> None:
        """``iter()`` the source, at ``position`` (from :meth:`position`) if given."""
        position = position or {}
        if position.get("dataset") is not None:
            self.source.load_state_dict(position["dataset"])
        self.iterator = iter(self.source)
        if position.get("iterator") is not None:
            self.iterator.load_state_dict(position["iterator"])  # type: ignore[union-attr]
        self.read = 0
        for _ in range(int(position.get("skip", 0))):
            if self.next() is END:
                raise ValueError(
                    f"{type(self.source).__name__} ended after {self.read} samples while a resume "
                    f"replayed {position['skip']}: its stream differs from the saved run's (a "
                    "source without state_dict() must yield the same samples on every iter())"
                )

    def position(self) -> dict[str, Any]:
        """Where the source stands now (before the next sample)."""
        parts = stream_parts(self.source, self.iterator)
        if parts:
            return dict(jsonable(parts))
        return {"skip": self.read}

    def next(self) -> Any:
        """The next sample, or ``END``."""
        assert self.iterator is not None, "start() first"
        item = next(self.iterator, END)
        if item is not END:
            self.read += 1
        return item


class ItemDuration:
    """A sample's duration under a key (picklable, for spawned workers)."""

    def __init__(self, key: str | int) -> None:
        self.key = key

    def __call__(self, sample: Any) -> float:
        return float(sample[self.key])


def duration_reader(duration: Callable[[Any], float] | str | int) -> Callable[[Any], float]:
    """``duration`` as a function of a sample: a callable, or a key / field name."""
    if callable(duration):
        return duration
    if isinstance(duration, (str, int)) and not isinstance(duration, bool):
        return ItemDuration(duration)
    raise ValueError(
        f"duration must be a function of a sample or the key of its duration, got {duration!r}"
    )
