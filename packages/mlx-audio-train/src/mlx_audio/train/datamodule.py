"""DataModule: the data of a run in one object (Lightning's ``LightningDataModule``).

Subclass it and give ``prepare_data`` (download once: the Trainer calls it on rank 0 only,
then every rank waits), ``setup(stage)`` (build the datasets, on every rank) and the
``*_dataloader`` methods; pass it to ``Trainer.fit/validate/test/predict(datamodule=...)``.
The Trainer calls, in Lightning's order: ``prepare_data``, ``setup(stage)``, the loaders the
stage needs (validation's before training's), ``state_dict`` at each checkpoint (JSON: it must
return JSON values) and ``teardown(stage)``; ``load_state_dict`` when ``fit`` resumes.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import TYPE_CHECKING, Any, TypeVar

from ._hparams import DM_HPARAMS_KEY, HyperparametersMixin, rebuild_kwargs

if TYPE_CHECKING:
    from .trainer import Trainer


_D = TypeVar("_D", bound="DataModule")


class DataModule(HyperparametersMixin):
    """Lightning's ``LightningDataModule`` (also importable under that name)."""

    name: str | None = None
    prepare_data_per_node = True  # Lightning's flag; here one machine: rank 0 prepares
    CHECKPOINT_HYPER_PARAMS_KEY = DM_HPARAMS_KEY  # in a checkpoint's trainer_state.json

    def __init__(self) -> None:
        super().__init__()
        self.trainer: Trainer | None = None

    def prepare_data(self) -> None:
        """Download or write what the data needs, once (rank 0 only); set no state here."""

    def setup(self, stage: str) -> None:
        """Build the datasets for ``stage`` (``"fit"``, ``"validate"``, ``"test"`` or
        ``"predict"``), on every rank."""

    def teardown(self, stage: str) -> None:
        """Release what ``setup`` made, at the end of ``stage``."""

    def train_dataloader(self) -> Any:
        raise NotImplementedError(
            "`train_dataloader` must be implemented to be used with the Lightning Trainer"
        )

    def val_dataloader(self) -> Any:
        raise NotImplementedError(
            "`val_dataloader` must be implemented to be used with the Lightning Trainer"
        )

    def test_dataloader(self) -> Any:
        raise NotImplementedError(
            "`test_dataloader` must be implemented to be used with the Lightning Trainer"
        )

    def predict_dataloader(self) -> Any:
        raise NotImplementedError(
            "`predict_dataloader` must be implemented to be used with the Lightning Trainer"
        )

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the datamodule (JSON values); ``{}``: nothing."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (``fit(ckpt_path=...)``)."""

    @classmethod
    def from_datasets(
        cls: type[_D],
        train_dataset: Any = None,
        val_dataset: Any = None,
        test_dataset: Any = None,
        predict_dataset: Any = None,
        batch_size: int = 1,
        num_workers: int = 0,
        **datamodule_kwargs: Any,
    ) -> _D:
        """A datamodule whose loaders are ``mlx_audio.data.DataLoader``s over the datasets given
        (each a dataset, or a list / dict of them: several loaders), ``shuffle`` for training
        (not for an ``IterableDataset``), as Lightning's. ``batch_size`` and ``num_workers``
        go to ``__init__`` too when it takes them; ``datamodule_kwargs`` always do."""
        params = inspect.signature(cls.__init__).parameters
        special = {"batch_size": batch_size, "num_workers": num_workers}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            special = {k: v for k, v in special.items() if k in params}
        datamodule = cls(**datamodule_kwargs, **special)

        def loaders(datasets: Any, shuffle: bool = False) -> Any:
            from mlx_audio.data import DataLoader, Dataset, IterableDataset

            if isinstance(datasets, Dataset):
                return DataLoader(
                    datasets,
                    batch_size=batch_size,
                    shuffle=shuffle and not isinstance(datasets, IterableDataset),
                    num_workers=num_workers,
                    pin_memory=True,
                )
            if isinstance(datasets, dict):
                return {k: loaders(v, shuffle) for k, v in datasets.items()}
            if isinstance(datasets, (list, tuple)):
                return [loaders(v, shuffle) for v in datasets]
            return datasets

        given = (
            ("train_dataloader", train_dataset, True),
            ("val_dataloader", val_dataset, False),
            ("test_dataloader", test_dataset, False),
            ("predict_dataloader", predict_dataset, False),
        )
        for name, datasets, shuffle in given:
            if datasets is not None:
                setattr(datamodule, name, functools.partial(loaders, datasets, shuffle))
        return datamodule

    @classmethod
    def load_from_checkpoint(
        cls: type[_D], checkpoint_path: str | os.PathLike[str], **kwargs: Any
    ) -> _D:
        """A new datamodule built from the hyperparameters a checkpoint saved of it
        (``save_hyperparameters``), updated with ``kwargs``, with its ``state_dict`` loaded
        (Lightning's)."""
        from .checkpoint import read_state

        _, state = read_state(os.fspath(checkpoint_path))
        datamodule = cls(**rebuild_kwargs(cls, state, kwargs, datamodule=True))
        if cls.__qualname__ in state:  # what its state_dict() returned at that checkpoint
            datamodule.load_state_dict(state[cls.__qualname__])
        return datamodule


LightningDataModule = DataModule
