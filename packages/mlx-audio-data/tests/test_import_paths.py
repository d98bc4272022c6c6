"""The data package's layout: every import path in use keeps working after the move to
``_loader/`` and ``audio/``; an alias is the very object of the new home; importing the package
or using the generic loader imports no MLX, no audio and no Hugging Face code; the
``NOTE [...]`` index of ``_loader/__init__.py`` matches the sources."""

from __future__ import annotations

import importlib
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlx_audio.data as data

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "packages/mlx-audio-data/src/mlx_audio/data"


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("name", sorted(data._EXPORTS))
def test_every_export_is_its_home_modules_object(name):
    home = importlib.import_module(f"mlx_audio.data.{data._EXPORTS[name]}")
    assert getattr(data, name) is getattr(home, name)


# old module path -> new home: the alias module *is* the new module
ALIASES = {
    "mlx_audio.data.features": "mlx_audio.data.audio.features",
    "mlx_audio.data.features_mlx": "mlx_audio.data.audio.features_mlx",
    "mlx_audio.data.audio_datasets": "mlx_audio.data.audio.datasets",
    "mlx_audio.data.huggingface": "mlx_audio.data.audio.huggingface",
}


@pytest.mark.parametrize("old", sorted(ALIASES))
def test_old_module_paths_are_the_new_modules(old):
    assert importlib.import_module(old) is importlib.import_module(ALIASES[old])


def test_the_former_audio_module_names_are_the_packages():
    from mlx_audio.data import audio
    from mlx_audio.data.audio import features, io

    for name in ("load_audio", "audio_info", "resample", "AudioDecodeError"):
        assert getattr(audio, name) is getattr(io, name)
    for name in features.__all__:
        assert getattr(audio, name) is getattr(features, name)
    assert set(audio.__all__) == {*io.__all__, *features.__all__}
    from mlx_audio.data.audio_datasets import AudioFolder, AudioManifest
    from mlx_audio.data.data.dataset import Dataset  # the tutorial's path
    from mlx_audio.data.features_mlx import LogMel

    assert (AudioFolder, AudioManifest, LogMel) == (
        data.AudioFolder,
        data.AudioManifest,
        data.LogMel,
    )
    assert Dataset is data.Dataset
    assert data.dataloader.StatefulDataLoader is data.DataLoader


def _documented_imports() -> set[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` of every ``mlx_audio.data`` import in the docs, README, examples
    and benchmarks."""
    files = [
        *ROOT.glob("docs/**/*.md"),
        ROOT / "README.md",
        *ROOT.glob("packages/*/README.md"),
        *ROOT.glob("examples/**/*.py"),
        *ROOT.glob("benchmarks/**/*.py"),
    ]
    found = set()
    pattern = re.compile(r"from (mlx_audio\.data[\w.]*) import (?:\(([^)]*)\)|([\w, ]+))")
    for path in files:
        text = path.read_text()
        for module, listed, names in pattern.findall(text):
            names = re.sub(r"#.*", "", listed or names)
            found.add((module, tuple(n.split()[0] for n in names.split(",") if n.strip())))
        for module in re.findall(r"^\s*import (mlx_audio\.data[\w.]*)", text, re.M):
            found.add((module, ()))
        for target in re.findall(r"^::: (mlx_audio\.data[\w.]*)", text, re.M):
            module, _, name = target.rpartition(".")
            found.add((module, (name,)))
    return found


def test_every_documented_import_path_works():
    documented = _documented_imports()
    assert ("mlx_audio.data.data.dataset", ("Dataset",)) in documented
    for module, names in sorted(documented):
        imported = importlib.import_module(module)
        for name in names:
            assert hasattr(imported, name), f"from {module} import {name}"


def test_import_and_generic_loader_import_no_mlx_audio_or_hugging_face():
    code = """
import sys
import mlx_audio.data
assert "mlx.core" not in sys.modules, "import mlx_audio.data imported mlx.core"
import numpy as np
from mlx_audio.data import ArrayDataset, DataLoader, IterableDataset
assert "mlx.core" not in sys.modules
class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(4))
for dataset in (ArrayDataset(np.arange(4)), Stream()):
    for workers in (0, 1):
        list(DataLoader(dataset, batch_size=2, num_workers=workers))
print(sorted(m for m in sys.modules if m.startswith(("mlx_audio.data.audio", "datasets"))))
"""
    assert run(code) == "[]"


def test_hugging_face_adapter_is_found_by_library_and_pickles_by_reference():
    """NOTE [dataset adapters]: a ``datasets`` object gets the adapter without the user importing
    it (and without importing ``datasets``); workers receive that adapter by reference."""
    code = """
import pickle, sys
from mlx_audio.data._loader.adapters import adapter_for
Stream = type("IterableDataset", (), {"__module__": "datasets.iterable_dataset"})
stream = Stream()
assert adapter_for(object()) is None and "mlx_audio.data.audio.huggingface" not in sys.modules
adapter = adapter_for(stream)
assert type(adapter).__module__ == "mlx_audio.data.audio.huggingface", adapter
assert adapter.prepare(stream) is stream and "datasets" not in sys.modules
print(pickle.loads(pickle.dumps(adapter)).__class__ is type(adapter))
"""
    assert run(code) == "True"
    from mlx_audio.data.audio.huggingface import HuggingFaceAdapter

    assert type(pickle.loads(pickle.dumps(HuggingFaceAdapter()))) is HuggingFaceAdapter


def test_the_note_index_matches_the_sources():
    index = (SOURCE / "_loader/__init__.py").read_text()
    listed = dict(re.findall(r"^(\S.*?)\s{2,}``([\w/]+\.py)``$", index, re.M))
    defined = {}
    for path in SOURCE.rglob("*.py"):
        for name in re.findall(r"NOTE \[([^\]]+)\]:", path.read_text()):
            defined[name] = path.relative_to(SOURCE).as_posix()
    assert listed == defined
