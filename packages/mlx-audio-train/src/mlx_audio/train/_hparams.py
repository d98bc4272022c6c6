"""``save_hyperparameters`` / ``hparams`` (Lightning's ``HyperparametersMixin``) for TrainModule and
DataModule: the ``__init__`` arguments found by frame inspection, kept JSON-safe because a
checkpoint's ``trainer_state.json`` holds them (never pickle), and what ``fit`` sends to the
loggers and ``TrainModule.load_from_checkpoint`` rebuilds a module from.

NOTE [JSON hyperparameters]: Lightning pickles any hyperparameter; ours go into JSON, so
``save_hyperparameters`` refuses a value JSON cannot hold (a layer, a function, a Path, an array)
at once, naming it and the way out (``ignore=[...]``, then pass it to ``load_from_checkpoint``).
Tuples come back as lists.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import types
from argparse import Namespace
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trainer import Trainer

HPARAMS_KEY = "hyper_parameters"  # Lightning's checkpoint keys
HPARAMS_NAME_KEY = "hparams_name"
DM_HPARAMS_KEY = "datamodule_hyper_parameters"
DM_HPARAMS_NAME_KEY = "datamodule_hparams_name"
_PRIMITIVES = (bool, int, float, str)


class AttributeDict(dict[str, Any]):
    """A dict whose keys are also attributes (Lightning's ``AttributeDict``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as error:
            raise AttributeError(f"Missing attribute {key!r}") from error

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError as error:
            raise AttributeError(f"Missing attribute {key!r}") from error

    def __repr__(self) -> str:
        if not self:
            return ""
        row = "{:" + str(max(len(str(k)) for k in self) + 3) + "s} {}"
        return "\n".join(row.format(f'"{k}":', self[k]) for k in sorted(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> AttributeDict:
        return AttributeDict(copy.deepcopy(dict(self), memo))


def check_json(name: str, value: Any, owner: str) -> None:
    """NOTE [JSON hyperparameters]: a TypeError naming the first value JSON cannot hold."""
    problem = _first_non_json(value)
    if problem is None:
        return
    path, bad = problem
    where = name + path
    raise TypeError(
        f"{owner}.save_hyperparameters: {where!r} is of type {type(bad).__name__}, which a checkpoint "
        "cannot hold (its hyperparameters are JSON: numbers, strings, bools, None, and lists and "
        f"dicts of them). Leave it out with save_hyperparameters(ignore=[{name!r}]) and pass it "
        f"again when rebuilding: load_from_checkpoint(path, {name}=...); or save a JSON value "
        "(a str for a path, a name for a layer)"
    )


def _first_non_json(value: Any, path: str = "") -> tuple[str, Any] | None:
    if value is None or isinstance(value, _PRIMITIVES):
        if isinstance(value, float) and not math.isfinite(value):
            return None  # written as NaN/Infinity, as the checkpoint's other floats
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _first_non_json(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(value, Mapping) and not hasattr(value, "parameters"):  # not an nn.Module
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} key {key!r}", key
            found = _first_non_json(item, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    return path, value


def _to_hparams_dict(hp: Any) -> MutableMapping[str, Any]:
    if isinstance(hp, Namespace):
        hp = vars(hp)
    if isinstance(hp, dict):
        return AttributeDict(hp)
    if isinstance(hp, _PRIMITIVES):
        raise ValueError(f"Primitives {_PRIMITIVES} are not allowed.")
    if not isinstance(hp, MutableMapping):
        raise ValueError(f"Unsupported config type of {type(hp)}.")
    return hp


def _init_args(frame: types.FrameType) -> tuple[Any, dict[str, Any]]:
    """Lightning's ``_get_init_args``: the arguments of the ``__init__`` running in ``frame``."""
    local_vars = inspect.getargvalues(frame).locals
    if "__class__" not in local_vars or frame.f_code.co_name != "__init__":
        return None, {}
    cls = local_vars["__class__"]
    params = list(inspect.signature(cls.__init__).parameters.values())
    self_var = params[0].name
    args_var = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)
    kwargs_var = next((p.name for p in params if p.kind == p.VAR_KEYWORD), None)
    exclude = {n for n in (self_var, args_var, kwargs_var) if n} | {"__class__", "frame"}
    found = {p.name: local_vars[p.name] for p in params if p.name in local_vars}
    if kwargs_var:
        found.update(found.get(kwargs_var, {}))
    return local_vars.get(self_var), {k: v for k, v in found.items() if k not in exclude}


def _collect_init_args(frame: types.FrameType, classes: tuple[type, ...]) -> list[dict[str, Any]]:
    """Lightning's ``collect_init_args``: the ``__init__`` arguments up the inheritance chain
    (the frames of ``__init__`` methods of ``classes``' instances), the most specific class's
    last."""
    collected: list[dict[str, Any]] = []
    inside = False
    current: types.FrameType | None = frame
    while current is not None and isinstance(current.f_back, types.FrameType):
        local_self, args = _init_args(current)
        if "__class__" in current.f_locals and isinstance(local_self, classes):
            collected.append(args)
            inside = True
        elif inside:
            break
        current = current.f_back
    return collected


class HyperparametersMixin:
    """Lightning's ``HyperparametersMixin``: ``save_hyperparameters``, ``hparams``,
    ``hparams_initial``. See NOTE [JSON hyperparameters]."""

    _hparams: MutableMapping[str, Any]
    _hparams_initial: MutableMapping[str, Any]
    _hparams_name: str | None
    _log_hyperparams: bool

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: Sequence[str] | str | None = None,
        frame: types.FrameType | None = None,
        logger: bool = True,
    ) -> None:
        """Save the ``__init__`` arguments (all of them, the names given, or one dict /
        ``Namespace``) as ``self.hparams``: written to every checkpoint (JSON, NOTE [JSON
        hyperparameters]), sent to the loggers when ``fit`` starts (unless ``logger=False``), and
        what ``load_from_checkpoint`` rebuilds the module with. ``ignore`` leaves arguments out."""
        self._log_hyperparams = logger
        if len(args) == 1 and not isinstance(args[0], str) and not args[0]:
            return  # an empty container
        if frame is None:
            current = inspect.currentframe()
            frame = current.f_back if current is not None else None
        if not isinstance(frame, types.FrameType):
            raise AttributeError("There is no `frame` available while being required.")
        if is_dataclass(self):
            init_args = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        else:
            init_args = {}
            for local_args in _collect_init_args(frame, (HyperparametersMixin,)):
                init_args.update(local_args)
        if ignore is None:
            ignored: list[str] = []
        elif isinstance(ignore, str):
            ignored = [ignore]
        else:
            ignored = [arg for arg in ignore if isinstance(arg, str)]
        init_args = {k: v for k, v in init_args.items() if k not in ignored}
        hp: Any
        if not args:
            hp = init_args
            self._hparams_name = "kwargs" if hp else None
        else:
            non_str = [i for i, arg in enumerate(args) if not isinstance(arg, str)]
            if len(non_str) == 1:
                hp = args[non_str[0]]
                names = [k for k, v in init_args.items() if v == hp]
                self._hparams_name = names[0] if names else None
            else:
                hp = {arg: init_args[arg] for arg in args if isinstance(arg, str)}
                self._hparams_name = "kwargs"
        hp = _to_hparams_dict(hp)
        for key, value in hp.items():
            check_json(str(key), value, type(self).__name__)
        if isinstance(self.hparams, dict):
            self.hparams.update(hp)
        else:
            self._hparams = hp
        for key in ignored:
            self._hparams.pop(key, None)
        self._hparams_initial = copy.deepcopy(self._hparams)

    @property
    def hparams(self) -> MutableMapping[str, Any]:
        """The saved hyperparameters (an ``AttributeDict``; yours to change)."""
        if not hasattr(self, "_hparams"):
            self._hparams = AttributeDict()
        return self._hparams

    @property
    def hparams_initial(self) -> AttributeDict:
        """The hyperparameters as ``save_hyperparameters`` saved them (a copy)."""
        if not hasattr(self, "_hparams_initial"):
            return AttributeDict()
        return AttributeDict(copy.deepcopy(dict(self._hparams_initial)))


def checkpoint_hparams(trainer: Trainer) -> dict[str, Any]:
    """The module's and the datamodule's hyperparameters (and the datamodule's ``state_dict``) as
    entries of a checkpoint's ``trainer_state.json`` (Lightning's keys); checked JSON-safe."""
    state: dict[str, Any] = {}
    owners: list[tuple[Any, str, str]] = [(trainer.module, HPARAMS_KEY, HPARAMS_NAME_KEY)]
    if trainer.datamodule is not None:
        owners.append((trainer.datamodule, DM_HPARAMS_KEY, DM_HPARAMS_NAME_KEY))
    for owner, key, name_key in owners:
        hparams = dict(getattr(owner, "hparams", {}) or {})
        if hparams:
            for name, value in hparams.items():
                check_json(str(name), value, type(owner).__name__)
            state[key] = hparams
            state[name_key] = getattr(owner, "_hparams_name", None)
    datamodule = trainer.datamodule
    if datamodule is not None:
        dm_state = trainer.hooks.datamodule_state_dict()
        if dm_state:
            check_json("state_dict()", dm_state, type(datamodule).__name__)
            state[type(datamodule).__qualname__] = dm_state
    json.dumps(state, allow_nan=True)  # what check_json let through is JSON
    return state


def log_hyperparams(trainer: Trainer) -> None:
    """Lightning's ``_log_hyperparams`` (every entry point, after ``setup``): the module's
    ``hparams_initial`` merged with the datamodule's, of those that called
    ``save_hyperparameters`` (with ``logger=True``), to every logger from rank 0; a name saved by
    both with two values is Lightning's RuntimeError. Nothing when neither saved any."""
    if not trainer.loggers:
        return
    module, datamodule = trainer.module, trainer.datamodule
    module_on = module is not None and getattr(module, "_log_hyperparams", False)
    dm_on = datamodule is not None and getattr(datamodule, "_log_hyperparams", False)
    if not module_on and not dm_on:
        return
    merged = dict(module.hparams_initial) if module is not None and module_on else {}
    if datamodule is not None and dm_on:
        dm_hparams = dict(datamodule.hparams_initial)
        inconsistent = [
            k
            for k in merged.keys() & dm_hparams.keys()
            if type(merged[k]) is not type(dm_hparams[k]) or merged[k] != dm_hparams[k]
        ]
        if inconsistent:
            raise RuntimeError(
                f"Error while merging hparams: the keys {inconsistent} are present in both the"
                " LightningModule's and LightningDataModule's hparams but have different values."
            )
        merged.update(dm_hparams)
    for logger in trainer.loggers if trainer.is_global_zero else []:
        logger.log_hyperparams(merged)


def rebuild_kwargs(
    cls: type, state: dict[str, Any], overrides: dict[str, Any], datamodule: bool = False
) -> dict[str, Any]:
    """Lightning's ``_load_state``: the checkpoint's hyperparameters (the module's, or the
    datamodule's; under their ``save_hyperparameters`` name when one container was saved),
    updated with ``overrides``, kept to what ``cls.__init__`` takes unless it takes
    ``**kwargs``. ``state`` is the checkpoint's ``trainer_state.json``."""
    key, name_key = (
        (DM_HPARAMS_KEY, DM_HPARAMS_NAME_KEY) if datamodule else (HPARAMS_KEY, HPARAMS_NAME_KEY)
    )
    loaded: dict[str, Any] = dict(state.get(key) or {})
    params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    names = [p.name for p in params.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    names = names[1:]  # not self
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    saved_name = state.get(name_key)
    if saved_name and saved_name in names:
        loaded = {saved_name: AttributeDict(loaded)}
    kwargs = {**loaded, **overrides}
    if not takes_any:
        kwargs = {k: v for k, v in kwargs.items() if k in names}
    return kwargs
