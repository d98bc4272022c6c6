"""Hugging Face checkpoints <-> our parameter names, and a torch-free, code-free .bin reader.

laion's official repos ship only a pickled ``pytorch_model.bin``. Unpickling can run any
code, so :func:`load_torch_bin` admits only the globals that rebuild tensors (what torch's own
``weights_only=True`` admits) and refuses everything else before it can execute.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Any

import mlx.core as mx
import numpy as np

from mlx_audio.data.support import require

_SKIP = ("position_ids", "token_type_ids", "relative_position_index", "num_batches_tracked")
_PREFIXES = (("audio_model.audio_encoder.", "audio_encoder."), ("text_model.", "text_encoder."))


def resolve_folder(path_or_repo_id: str, revision: str | None = None) -> str:
    if os.path.isdir(path_or_repo_id):
        return path_or_repo_id
    if os.path.exists(path_or_repo_id):
        raise ValueError(
            f"{path_or_repo_id} is a file; from_pretrained takes a model folder or a Hugging Face repo id"
        )
    snapshot_download = require(
        "huggingface_hub",
        f"{path_or_repo_id!r} is not a local folder; downloading it needs huggingface_hub: pip install 'mlx-audio-models[hub]'",
    ).snapshot_download
    patterns = [
        "config.json",
        "*.safetensors",
        "pytorch_model.bin",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
    ]
    return snapshot_download(path_or_repo_id, revision=revision, allow_patterns=patterns)


def read_checkpoint(folder: str) -> dict[str, mx.array]:
    safetensors = os.path.join(folder, "model.safetensors")
    if os.path.exists(safetensors):
        return mx.load(safetensors)
    binary = os.path.join(folder, "pytorch_model.bin")
    if os.path.exists(binary):
        return {k: mx.array(v) for k, v in load_torch_bin(binary).items()}
    raise FileNotFoundError(f"{folder} has neither model.safetensors nor pytorch_model.bin")


def hf_to_mlx(weights: dict[str, mx.array], model: Any = None) -> dict[str, mx.array]:
    """Rename transformers' keys to ours; conv kernels go from (O, I, H, W) to (O, H, W, I)."""
    out = {}
    for key, value in weights.items():
        if key.rsplit(".", 1)[-1] in _SKIP:
            continue
        for theirs, ours in _PREFIXES:
            if key.startswith(theirs):
                key = ours + key[len(theirs) :]
        if value.ndim == 4:
            value = value.transpose(0, 2, 3, 1)
        out[key] = value.astype(mx.float32) if value.dtype == mx.float64 else value
    return out


def mlx_to_hf(weights: dict[str, mx.array]) -> dict[str, mx.array]:
    out = {}
    for key, value in weights.items():
        for theirs, ours in _PREFIXES:
            if key.startswith(ours):
                key = theirs + key[len(ours) :]
        out[key] = value.transpose(0, 3, 1, 2) if value.ndim == 4 else value
    return out


# -- restricted unpickling of torch's zip format ------------------------------------------------
_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, _STORAGES[name]


_MAX_ELEMENTS = 2**34  # no real weight tensor is larger; a crafted size must not exhaust memory


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise pickle.UnpicklingError(f"tensor {what} must be a non-negative int, got {value!r:.40}")
    return value


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any
) -> np.ndarray:
    """A view of ``storage`` as torch describes it -- after checking that every element the
    view would read lies inside the storage (``as_strided`` itself checks nothing: a crafted
    file would read other memory or crash the process)."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise pickle.UnpicklingError("tensor storage is not a storage")
    if (
        not isinstance(size, (tuple, list))
        or not isinstance(stride, (tuple, list))
        or len(size) != len(stride)
    ):
        raise pickle.UnpicklingError(
            f"tensor size {size!r:.60} and stride {stride!r:.60} do not match"
        )
    offset = _int(offset, "offset")
    dims = [_int(n, "size") for n in size]
    steps = [_int(n, "stride") for n in stride]
    count = int(np.prod(dims, dtype=np.float64)) if dims else 1
    if count > _MAX_ELEMENTS:
        raise pickle.UnpicklingError(f"tensor of {count} elements is implausibly large")
    if count == 0:
        return np.zeros(dims, dtype=storage.dtype)
    last = offset + sum((n - 1) * step for n, step in zip(dims, steps))
    if last >= len(storage):
        raise pickle.UnpicklingError(
            f"tensor reads element {last} of a storage of {len(storage)}: the file is damaged or crafted"
        )
    if not dims:
        return storage[offset].copy()
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(dims), strides=tuple(s * item for s in steps)
    ).copy()


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only tensor-rebuilding globals; anything else is refused before it runs."""

    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: a weights file only needs tensor-rebuilding globals "
            "(this one could run code). Convert trusted files to safetensors with transformers' save_pretrained."
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (
            isinstance(pid, tuple)
            and len(pid) >= 3
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
        ):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        kind, key = pid[1], pid[2]
        try:
            raw = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise pickle.UnpicklingError(
                f"storage {key!r:.40} is missing from the archive"
            ) from None
        if len(raw) % (2 if kind.dtype == "bfloat16" else np.dtype(kind.dtype).itemsize):
            raise pickle.UnpicklingError(
                f"storage {key!r:.40} has {len(raw)} bytes, not a whole number of {kind.name} items"
            )
        if kind.dtype == "bfloat16":  # numpy has no bfloat16: widen the bits to float32
            return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        return np.frombuffer(raw, dtype=kind.dtype)


def load_torch_bin(path: str) -> dict[str, np.ndarray]:
    """Read a ``torch.save`` zip checkpoint into numpy arrays without torch and without
    executing pickle code."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a torch zip checkpoint (legacy pickled .bin files are not supported; convert it with torch)"
        )
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(names) != 1:
        raise ValueError(f"{path}: expected one data.pkl in the archive, found {names}")
    prefix = names[0][: -len("data.pkl")]
    try:
        with zipfile.ZipFile(path) as archive, archive.open(names[0]) as f:
            state = RestrictedUnpickler(f, archive, prefix).load()
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(f"{path}: {error}") from None
    except Exception as error:  # truncated pickles, bad zip members, wrong types: all "damaged"
        raise pickle.UnpicklingError(
            f"{path} is damaged ({type(error).__name__}: {error})"[:500]
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(v, (np.ndarray, np.generic)) for v in state.values()
    ):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return {str(k): np.asarray(v) for k, v in state.items()}
