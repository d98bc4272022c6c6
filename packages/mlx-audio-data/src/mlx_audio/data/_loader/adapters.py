"""Dataset adapters: what the loader does differently for one library's datasets, registered by
that library's module. Used on both sides of the process boundary.

NOTE [dataset adapters]: the generic loader imports no dataset library and no adapter. An
adapter is registered under the top-level module name of the dataset classes it handles
(``register_adapter("datasets", ...)``) and may change two things:

- ``prepare(dataset)``, in the main process, once per DataLoader: the dataset the fetchers read
  (Hugging Face: ``Audio`` columns decoded by this package, NOTE [Hugging Face Audio]);
- ``split(dataset, index, count)``: share ``index`` of ``count`` of a stream that cannot split
  itself under our workers, or None to leave it as it is -- in each worker (its share of the
  workers) and in ``shard_loader`` (its share of the ranks) (NOTE [Hugging Face streams]).

A DataLoader looks its adapter up once, in the main process, and sends it to its workers in
their ``WorkerSpec`` (pickled by reference to its class), so every worker uses the main
process's adapter, with any start method. The one adapter this package ships, for Hugging Face
``datasets`` (``mlx_audio.data.audio.huggingface``), registers itself when imported, and
``_ON_DEMAND`` below imports it the first time a ``datasets`` object is looked up: a user never
has to import it. This table is the only place the generic loader names it.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol


class DatasetAdapter(Protocol):
    def prepare(self, dataset: Any) -> Any: ...

    def split(self, dataset: Any, index: int, count: int) -> Any | None: ...


_ADAPTERS: dict[str, DatasetAdapter] = {}
# library (top-level module of a dataset's class) -> the module that registers its adapter
_ON_DEMAND = {"datasets": "mlx_audio.data.audio.huggingface"}


def register_adapter(library: str, adapter: DatasetAdapter) -> None:
    """Use ``adapter`` for datasets whose class is defined in ``library`` (or a submodule)."""
    _ADAPTERS[library] = adapter


def adapter_for(dataset: Any) -> DatasetAdapter | None:
    """The adapter registered for ``dataset``'s library, or None (see NOTE [dataset adapters])."""
    library = type(dataset).__module__.partition(".")[0]
    if library not in _ADAPTERS and library in _ON_DEMAND:
        importlib.import_module(_ON_DEMAND[library])  # registers itself
    return _ADAPTERS.get(library)
