"""Importing mlx_audio before mlx.core makes MLX's Linux CPU wheels use OpenBLAS; when that
is too late, training says so once through logging (never a warning at import).

Each case runs a plain ``python script.py`` (no LD_PRELOAD, no Makefile) and times the
matmul of the tutorial CNN's biggest layer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux-only: macOS uses Accelerate"
)

SCRIPT = textwrap.dedent(
    """
    import logging, sys, time, warnings
    warnings.simplefilter("error")  # importing must never warn (python -W error programs)
    if sys.argv[1] == "mlx_audio_first":
        import mlx_audio.data
    import mlx.core as mx
    if sys.argv[1] == "mlx_first":
        import mlx_audio.data
    logging.basicConfig()
    from mlx_audio.data.support import report_slow_blas
    report_slow_blas(); report_slow_blas()  # what Trainer.fit does on the CPU: says it once
    a = mx.random.normal((12544, 288)); b = mx.random.normal((288, 64)); mx.eval(a, b)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter(); mx.eval(a @ b); best = min(best, time.perf_counter() - t)
    print(f"MS {best * 1000:.2f}")
    """
)


def run(tmp_path, mode: str, **env: str) -> tuple[float, str]:
    script = tmp_path / "matmul.py"
    script.write_text(SCRIPT)
    clean = {
        k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MLX_AUDIO_NO_OPENBLAS")
    }
    result = subprocess.run(
        [sys.executable, str(script), mode],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    ms = float(result.stdout.split("MS")[1])
    return ms, result.stderr


@pytest.fixture(scope="module")
def openblas():
    from mlx_audio.data import support

    path = support.find_openblas()
    if path is None:
        pytest.skip("OpenBLAS is not installed (make test installs libopenblas0-pthread)")
    return path


def test_import_order_gives_the_speedup(tmp_path, openblas):
    fast, fast_err = run(tmp_path, "mlx_audio_first")
    slow, _ = run(tmp_path, "mlx_audio_first", MLX_AUDIO_NO_OPENBLAS="1")
    assert "reference BLAS" not in fast_err
    assert slow / fast > 3, f"OpenBLAS {fast:.1f} ms vs reference {slow:.1f} ms"


def test_mlx_imported_first_gets_one_clear_hint(tmp_path, openblas):
    _, err = run(tmp_path, "mlx_first")
    assert err.count("slow reference BLAS") == 1
    assert "import mlx_audio before mlx.core" in err and "LD_PRELOAD" in err


def test_ld_preload_needs_no_hint(tmp_path, openblas):
    _, err = run(tmp_path, "mlx_first", LD_PRELOAD=openblas)
    assert "reference BLAS" not in err


def test_missing_openblas_hint_names_the_package(tmp_path):
    _, err = run(tmp_path, "mlx_audio_first", MLX_AUDIO_OPENBLAS="/nonexistent/libopenblas.so.0")
    assert err.count("slow reference BLAS") == 1
    assert "no OpenBLAS library was found" in err and "apt-get install libopenblas0-pthread" in err


def test_import_is_fast_and_lazy():
    code = "import time; t=time.perf_counter(); import mlx_audio, sys; print(time.perf_counter()-t, 'mlx.core' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    seconds, mlx_loaded = result.stdout.split()
    assert mlx_loaded == "False"
    assert float(seconds) < 0.5


def test_no_package_warns_at_import_even_after_mlx_core():
    code = (
        "import mlx.core\n"
        "import mlx_audio, mlx_audio.data, mlx_audio.loggers, mlx_audio.train, mlx_audio.models\n"
        "from mlx_audio import Trainer, TrainModule, DataLoader\n"
        "print('OK')"
    )
    clean = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stderr
