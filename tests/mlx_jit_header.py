"""Precompiles the header of MLX's CPU kernels, so that each kernel the tests JIT-compile takes
0.2 s of g++ instead of 0.9 s (what ``make test`` runs before pytest)::

    python tests/mlx_jit_header.py

On Linux, ``mx.compile`` turns each fused graph into C++ that MLX compiles with ``g++`` into
``$TMPDIR/mlx/<version>/cpu/``, once per machine; the test suite compiles about 1,300 such
kernels where that folder is empty (a fresh machine): about 15 minutes of CPU on their own. Each
kernel's source starts with ``#include "mlx/backend/cpu/compiled_preamble.h"``, ~69,000 lines
once preprocessed, which is most of its compile time. GCC looks for a precompiled
``<header>.gch`` in every folder it searches for the header, first the kernel source's own: one
written into that folder, compiled with the flags MLX uses, serves every kernel after it.

GCC uses a precompiled header only where it is valid (the same compiler and code-generating
flags), and a valid one compiles exactly as the header would: the kernels are the same
machine code. Nothing is taken on trust: the flags are those of the command MLX itself runs
(recorded from a probe kernel, compiled in a scratch folder through a ``g++`` that writes down
its arguments), and the header is installed only if the probe kernel compiled with it uses it
and comes out byte-identical to MLX's own build of it. Otherwise (no g++, another platform, an
MLX that inlines the preamble or builds differently) nothing is written and the kernels compile
as before. The file sits in MLX's own cache folder, which is per MLX version; it is made again
at every run (2 s), whole or not at all for a kernel compiling meanwhile.

Measured on 2 CPU cores, kernel cache empty: test_schedulers.py 103.7 s -> 38.1 s (177 kernels),
test_demo.py + test_cli.py + test_cli_augment.py 298.8 s -> 127.1 s (410 kernels); all 587
kernels byte-identical to those compiled without it, but for the random name of MLX's temporary
source file, which the libraries record.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HEADER = "mlx/backend/cpu/compiled_preamble.h"
PROBE = """
import mlx.core as mx
with mx.stream(mx.cpu):
    mx.eval(mx.compile(lambda x: mx.exp(x) * 3.0 + 1.0)(mx.arange(8, dtype=mx.float32)))
"""
RECORDER = '#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/args"\nexec "$REAL_GXX" "$@"\n'


def temp_directory() -> Path:
    """std::filesystem::temp_directory_path() (libstdc++), where MLX keeps its kernels."""
    for name in ("TMPDIR", "TMP", "TEMP", "TEMPDIR"):
        if os.environ.get(name):
            return Path(os.environ[name])
    return Path("/tmp")


def compile_(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["g++", *args], capture_output=True, text=True)


def main() -> str:
    if sys.platform != "linux":
        return "not Linux: MLX compiles no C++ kernels here"
    real = subprocess.run(["sh", "-c", "command -v g++"], capture_output=True, text=True)
    if real.returncode:
        return "no g++"
    with tempfile.TemporaryDirectory() as scratch:
        tools, cache = Path(scratch, "bin"), Path(scratch, "tmp")
        tools.mkdir()
        cache.mkdir()
        (tools / "g++").write_text(RECORDER)
        (tools / "g++").chmod(0o755)
        env = os.environ | {
            "TMPDIR": str(cache),
            "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
            "REAL_GXX": real.stdout.strip(),
        }
        probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True)
        if probe.returncode or not (tools / "args").exists():
            return "MLX compiled no kernel with g++:\n" + probe.stderr.decode()[-2000:]
        args = (tools / "args").read_text().splitlines()
        named = [a for a in args if a.endswith(".cpp")]
        kernels = sorted(cache.glob("mlx/*/cpu/*.cpp"))  # (MLX may rename what it compiled)
        libraries = sorted(cache.glob("mlx/*/cpu/*.so"))
        if len(named) != 1 or len(kernels) != 1 or len(libraries) != 1 or "-o" not in args:
            return f"an unexpected compile: g++ {shlex.join(args)}"
        source, library = kernels[0], libraries[0]
        version = library.parent.parent.name  # .../mlx/<version>/cpu/lib<kernel>.so
        target = temp_directory() / "mlx" / version / "cpu" / (HEADER + ".gch")
        target.unlink(missing_ok=True)  # a header of an earlier run is used only if made again
        includes = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-I"]
        if f'#include "{HEADER}"' not in source.read_text() or len(includes) != 1:
            return "MLX's kernels do not include the preamble from its include folder"
        output = args[args.index("-o") + 1]
        flags = [a for a in args if a not in (named[0], output, "-o", "-shared")]
        # the probe again, next to a precompiled header made with MLX's flags
        trial = Path(scratch, "trial")
        header = trial / (HEADER + ".gch")
        header.parent.mkdir(parents=True)
        made = compile_([*flags, "-x", "c++-header", f"{includes[0]}/{HEADER}", "-o", str(header)])
        if made.returncode:
            return "g++ could not precompile the header:\n" + made.stderr[-2000:]
        copy, built = trial / Path(named[0]).name, trial / Path(output).name  # names as MLX's
        copy.write_text(source.read_text())
        rebuilt = [str(copy) if a == named[0] else str(built) if a == output else a for a in args]
        used = compile_([*rebuilt, "-H"])
        if f"! {header}" not in used.stderr.splitlines():
            return "g++ does not use the precompiled header with MLX's flags"
        if built.read_bytes() != library.read_bytes():
            return "the kernel compiled with the precompiled header differs: not used"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.copyfile(header, partial)
        os.replace(partial, target)  # whole or absent for a kernel compiling now
        return f"{target} ({target.stat().st_size / 2**20:.0f} MB, MLX {version})"


if __name__ == "__main__":
    try:
        outcome = main()
    except Exception as error:  # a speed-up only: never the reason a test run fails
        outcome = f"not installed ({type(error).__name__}: {error})"
    print("MLX JIT header:", outcome)
