"""Built wheels install into fresh venvs: data alone, meta + data, and all five."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def uv() -> list[str]:
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [*uv(), "build", "--all-packages", "--wheel", "--out-dir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    found = {p.name.split("-")[0].replace("_", "-"): p for p in out.glob("*.whl")}
    assert set(found) == {
        "mlx-audio-data",
        "mlx-audio-loggers",
        "mlx-audio-train",
        "mlx-audio-models",
        "mlx-audio-stack",
    }, found
    return found


def venv_with(tmp_path: Path, *args: str) -> Path:
    env_dir = tmp_path / "venv"
    subprocess.run(
        [*uv(), "venv", "--python", sys.executable, str(env_dir)], check=True, capture_output=True
    )
    python = env_dir / "bin" / "python"
    result = subprocess.run(
        [*uv(), "pip", "install", "--python", str(python), *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return python


def run(python: Path, *code: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    source = "\n".join(textwrap.dedent(part) for part in code)
    result = subprocess.run(
        [str(python), "-c", source], capture_output=True, text=True, env=clean, cwd="/", timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


WORKERS_ITERATE = """
    import numpy as np
    from mlx_audio.data import DataLoader, ArrayDataset
    batches = list(DataLoader(ArrayDataset(np.arange(40, dtype=np.float32)), batch_size=8, num_workers=2, shuffle=True, seed=0))
    assert len(batches) == 5 and sorted(int(v) for b in batches for v in b[0].tolist()) == list(range(40))
    print("WORKERS-OK")
"""


def with_extra(wheel: Path, extra: str) -> str:
    """A requirement for a local wheel with an extra: ``name[extra] @ file:///...``."""
    name = wheel.name.split("-")[0].replace("_", "-")
    return f"{name}[{extra}] @ {wheel.as_uri()}"


def test_data_package_alone(tmp_path, wheels):
    python = venv_with(tmp_path, with_extra(wheels["mlx-audio-data"], "cpu"))
    out = run(
        python,
        """
        import importlib.metadata as md, importlib.util
        requires = [r for r in md.requires("mlx-audio-data") if "extra ==" not in r]
        names = sorted({r.split(";")[0].split(">")[0].split("[")[0].strip() for r in requires})
        assert names == ["mlx", "numpy"], requires
        installed = sorted(d.metadata["Name"].lower() for d in md.distributions())
        assert set(installed) <= {"mlx", "mlx-cpu", "mlx-metal", "numpy", "mlx-audio-data", "pip"}, installed
        import mlx_audio.data
        assert importlib.util.find_spec("mlx_audio.train") is None
        try:
            import mlx_audio.train
        except ModuleNotFoundError:
            print("NO-TRAIN")
        """,
        WORKERS_ITERATE,
    )
    assert "NO-TRAIN" in out and "WORKERS-OK" in out


def test_meta_package_is_lazy_with_only_data(tmp_path, wheels):
    python = venv_with(tmp_path, with_extra(wheels["mlx-audio-data"], "cpu"))
    subprocess.run(
        [
            *uv(),
            "pip",
            "install",
            "--python",
            str(python),
            "--no-deps",
            str(wheels["mlx-audio-stack"]),
        ],
        check=True,
        capture_output=True,
    )
    out = run(
        python,
        """
        import sys, time
        start = time.perf_counter()
        import mlx_audio
        elapsed = time.perf_counter() - start
        assert "mlx.core" not in sys.modules and "mlx_audio.data.dataloader" not in sys.modules
        from mlx_audio import data
        assert mlx_audio.DataLoader is data.DataLoader
        try:
            mlx_audio.Trainer
        except ImportError as error:
            assert "mlx-audio-train" in str(error), error
            print("TRAIN-MISSING-EXPLAINED")
        print(f"IMPORT {elapsed:.3f}")
        """,
    )
    assert "TRAIN-MISSING-EXPLAINED" in out
    assert float(out.split("IMPORT")[1]) < 0.5


def test_all_five_wheels(tmp_path, wheels):
    python = venv_with(
        tmp_path,
        *(str(w) for n, w in wheels.items() if n != "mlx-audio-stack"),
        with_extra(wheels["mlx-audio-stack"], "cpu"),
    )
    out = run(
        python,
        """
        import mlx_audio
        from mlx_audio import DataLoader, OptimizerConfig, Trainer, TrainModule
        import mlx_audio.data, mlx_audio.loggers, mlx_audio.train, mlx_audio.models
        assert DataLoader is mlx_audio.data.DataLoader and Trainer is mlx_audio.train.Trainer
        from mlx_audio.train.loggers import CSVLogger
        from mlx_audio.train.callbacks import ModelCheckpoint
        from mlx_audio.data.data.dataset import Dataset
        print("ALL-OK")
        """,
        WORKERS_ITERATE,
    )
    assert "ALL-OK" in out and "WORKERS-OK" in out


def test_editable_workspace_namespace():
    import mlx_audio
    import mlx_audio.data
    import mlx_audio.loggers
    import mlx_audio.models
    import mlx_audio.train

    assert mlx_audio.DataLoader is mlx_audio.data.DataLoader
    assert (
        mlx_audio.TrainModule is mlx_audio.train.TrainModule
        and mlx_audio.OptimizerConfig is mlx_audio.train.OptimizerConfig
    )
    assert len(mlx_audio.__path__) >= 4


def test_every_wheel_ships_py_typed(wheels):
    """PEP 561: each distribution marks its (sub)package as typed, so users' mypy reads our hints."""
    import zipfile

    expected = {
        "mlx-audio-data": "mlx_audio/data/py.typed",
        "mlx-audio-loggers": "mlx_audio/loggers/py.typed",
        "mlx-audio-train": "mlx_audio/train/py.typed",
        "mlx-audio-models": "mlx_audio/models/py.typed",
        "mlx-audio-stack": "mlx_audio/py.typed",
    }
    for dist, marker in expected.items():
        assert marker in zipfile.ZipFile(wheels[dist]).namelist(), (dist, marker)


def test_installing_next_to_another_backend_leaves_it_alone(tmp_path, wheels):
    """mlx-audio-data without an extra adds no MLX backend: an MLX build already in the
    environment (here the CPU one; on GPU machines the CUDA one) stays exactly as it was."""
    python = venv_with(tmp_path, "mlx[cpu]")

    def mlx_dists() -> list[str]:
        listed = subprocess.run(
            [*uv(), "pip", "list", "--python", str(python), "--format", "freeze"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return sorted(line for line in listed if line.lower().startswith("mlx"))

    before = mlx_dists()
    subprocess.run(
        [*uv(), "pip", "install", "--python", str(python), str(wheels["mlx-audio-data"])],
        check=True,
        capture_output=True,
    )
    after = [d for d in mlx_dists() if not d.startswith("mlx-audio")]
    assert after == before, (before, after)
    import zipfile

    metadata = next(
        n for n in zipfile.ZipFile(wheels["mlx-audio-data"]).namelist() if n.endswith("METADATA")
    )
    requires = [
        line
        for line in zipfile.ZipFile(wheels["mlx-audio-data"]).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist: mlx")
    ]
    unconditional = [r for r in requires if "extra ==" not in r]
    assert unconditional == ["Requires-Dist: mlx>=0.29"], requires
    assert any("cuda13" in r for r in requires) and any("cpu" in r for r in requires)
    run(python, "import mlx.core as mx, mlx_audio.data; print(mx.array([1]) + 1)")


@pytest.mark.parametrize(
    "dist, module",
    [
        ("mlx-audio-data", "mlx_audio.data"),
        ("mlx-audio-loggers", "mlx_audio.loggers"),
        ("mlx-audio-train", "mlx_audio.train"),
        ("mlx-audio-models", "mlx_audio.models"),
        ("mlx-audio-stack", "mlx_audio"),
    ],
)
def test_each_wheel_installs_alone_and_imports(tmp_path, wheels, dist, module):
    """Each distribution by itself (its mlx-audio dependencies from the same build), with the
    Linux CPU backend where MLX is needed: it imports, and importing warns about nothing."""
    extra = "" if dist == "mlx-audio-loggers" else "[cpu]"
    folder = wheels[dist].parent
    python = venv_with(tmp_path, "--find-links", str(folder), f"{dist}{extra}")
    out = run(
        python,
        f"import warnings; warnings.simplefilter('error'); import {module}; print('IMPORTED', {module}.__name__)",
    )
    assert f"IMPORTED {module}" in out


def test_all_extras_stay_lean(tmp_path, wheels):
    """`mlx-audio-stack[all]` (docs/getting-started.md, "Install sizes"): MLflow's client only,
    no pandas/pyarrow/scipy/scikit-learn/matplotlib, under 300 MB of site-packages."""
    local = [str(w) for n, w in wheels.items() if n != "mlx-audio-stack"]
    python = venv_with(tmp_path, *local, with_extra(wheels["mlx-audio-stack"], "all,cpu"))
    out = run(
        python,
        """
        import importlib.metadata as md, os, re, sysconfig
        names = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in md.distributions()}
        heavy = names & {"mlflow", "pandas", "pyarrow", "scipy", "scikit-learn", "matplotlib", "torch"}
        assert not heavy, heavy
        assert {"mlflow-skinny", "wandb", "tensorboardx", "soundfile", "huggingface-hub", "tokenizers"} <= names, names
        root = sysconfig.get_paths()["purelib"]
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
        print(f"SIZE {size / 2**20:.0f}")
        from mlx_audio.loggers import MLflowLogger, TensorBoardLogger, WandbLogger
        MLflowLogger(tracking_uri="http://127.0.0.1:9")  # a server: the client is enough
        try:
            MLflowLogger()
        except ValueError as error:
            assert "mlx-audio-loggers[mlflow]" in str(error) and "tracking_uri" in str(error), error
            print("LOCAL-STORE-EXPLAINED")
        """,
    )
    assert "LOCAL-STORE-EXPLAINED" in out and float(out.split("SIZE")[1].split()[0]) < 300, out


def readme_stack_installs() -> list[str]:
    """The README's install lines of the meta-package, as written: ``mlx-audio-stack[cpu]``..."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r'^pip install "?(mlx-audio-stack(?:\[[\w,]+\])?)"?', text, flags=re.M)


def extras_of(requirement: str) -> set[str]:
    return set(requirement.partition("[")[2].rstrip("]").split(",")) - {""}


def write_clips(root: Path) -> None:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    for label, pitch in (("low", 220.0), ("high", 880.0)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            wave = np.sin(2 * np.pi * pitch * np.arange(8000) / 16000) / 2
            sf.write(root / label / f"{i}.flac", wave + rng.normal(0, 0.05, 8000), 16000)


COMMAND_LINE = """
    import os, subprocess, sys
    os.chdir(sys.argv[1])
    cli = os.path.join(os.path.dirname(sys.executable), "mlx-audio")
    def run(*args):
        done = subprocess.run([cli, *args], capture_output=True, text=True)
        print(f"$ mlx-audio {args[0]}: {done.returncode}", done.stdout.strip().splitlines()[-1:], done.stderr.strip().splitlines())
        return done
    small = ["--data.clip_seconds", "0.5", "--data.num_workers", "1", "--model.channels", "[4]", "--trainer.max_epochs", "1"]
    assert run("train", "--data", "clips", "--trainer.default_root_dir", "run", *small).returncode == 0
    assert run("evaluate", "--run", "run", "--data", "clips").returncode == 0
    assert run("predict", "--run", "run", "--data", "clips", "--out", "p.csv").returncode == 0
    assert len(open("p.csv").read().splitlines()) == 13
    plot = run("plot", "run")
    print("PLOT", plot.returncode, repr(plot.stderr))
    open("x.m4a", "wb").write(b"not audio")  # m4a/aac need PyAV ([ffmpeg]) only where they are
    from mlx_audio.data.audio import AudioDecodeError, load_audio
    try:
        load_audio("x.m4a")
    except AudioDecodeError as error:
        print("M4A", len(str(error).splitlines()), str(error))
"""


def test_readme_install_lines_give_what_the_command_line_needs(tmp_path, wheels):
    """Each README line of the meta-package: on Linux, `[cpu]` trains, evaluates and predicts on
    audio files through `mlx-audio` (plot says what to add) and `[cpu,plot]` plots; the macOS
    lines resolve, for macOS, to MLX's Metal build with soundfile (and matplotlib for plot)."""
    lines = readme_stack_installs()
    assert {"mlx-audio-stack", "mlx-audio-stack[cpu]", "mlx-audio-stack[cpu,plot]"} <= set(lines)
    folder = wheels["mlx-audio-stack"].parent
    python = venv_with(tmp_path, "--find-links", str(folder), "mlx-audio-stack[cpu]")
    work = tmp_path / "work"
    write_clips(work / "clips")  # flac files, written here: the venv reads them
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    script = textwrap.dedent(COMMAND_LINE)

    def command_line() -> str:
        done = subprocess.run(
            [str(python), "-c", script, str(work)], capture_output=True, text=True, env=clean
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = command_line()
    assert (
        "PLOT 2 \"mlx-audio plot: error: mlx-audio plot needs matplotlib: pip install 'mlx-audio-stack[plot]'\\n\""
        in out
    ), out
    assert "M4A 1 " in out and "mlx-audio-data[ffmpeg]" in out, out
    for line in (x for x in lines if "cpu" in extras_of(x) and x != "mlx-audio-stack[cpu]"):
        extra = subprocess.run(
            [*uv(), "pip", "install", "--python", str(python), "--find-links", str(folder), line],
            capture_output=True,
            text=True,
        )
        assert extra.returncode == 0, extra.stderr
        shutil.rmtree(work / "run")
        out = command_line()
        assert "PLOT 0 ''" in out and (work / "run" / "curves.png").exists(), out
    for line in (x for x in lines if not extras_of(x) & {"cpu", "cuda12", "cuda13"}):  # macOS
        resolved = subprocess.run(
            [*uv(), "pip", "compile", "-", "--python-platform", "aarch64-apple-darwin"]
            + ["--python-version", "3.11", "--find-links", str(folder), "--no-header"],
            input=line,
            capture_output=True,
            text=True,
        )
        assert resolved.returncode == 0, resolved.stderr
        names = set(re.findall(r"^([\w.-]+)==", resolved.stdout, flags=re.M))
        wanted = {"mlx-metal", "soundfile", "soxr"} | ({"matplotlib"} if "plot" in line else set())
        assert wanted <= names, (line, resolved.stdout)
