"""The anchor venv (torch + transformers, built by `make anchor`, which `make test` runs)
produces reference outputs in a subprocess; tests that need it skip, visibly, without it, and
fail in CI (the `CI` environment variable set), where `make test` builds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ANCHOR = ROOT / ".venv-anchor" / "bin" / "python"

# One anchor process per session imports torch and transformers once (~5 s a time on 2 CPU
# cores) and forks a fresh child for every snippet: each runs as `python -c code args` would
# (its own process, sys.argv, stdout and stderr, exit status), only without the imports.
SERVER = r"""
import json, os, sys, traceback
import numpy, torch, transformers
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel  # the snippets' imports

replies = os.fdopen(os.dup(1), "w")  # fd 1 and 2 become each snippet's own files
replies.write("ready\n")
replies.flush()
for line in sys.stdin:
    n, code, args, out, err = json.loads(line)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.argv = ["-c", *args]
            exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    replies.write(f"{n} {os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}\n")
    replies.flush()
"""


@pytest.fixture(scope="session")
def anchor(tmp_path_factory):
    """Run a Python snippet in the anchor venv (a child of the session's anchor process, as
    ``python -c code *args``); returns its stdout."""
    folder = tmp_path_factory.mktemp("anchor")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LD_PRELOAD")
    }
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    server = None
    if ANCHOR.exists():
        with open(folder / "server.log", "w") as log:
            server = subprocess.Popen(
                [str(ANCHOR), "-c", SERVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
    if server is None or server.stdout.readline() != "ready\n":
        message = "anchor venv with torch + transformers is absent: run `make anchor` (make test builds it)"
        if server is not None:
            server.wait(60)
            message += "\n" + (folder / "server.log").read_text()[-2000:]
        if os.environ.get("CI"):  # `make test` builds it: in CI its absence is a failure
            pytest.fail(message)
        pytest.skip(message)
    calls = iter(range(1_000_000))

    def run(code: str, *args: str) -> str:
        n = next(calls)
        out, err = folder / f"{n}.out", folder / f"{n}.err"
        server.stdin.write(json.dumps([n, code, list(args), str(out), str(err)]) + "\n")
        server.stdin.flush()
        reply = ""
        while not reply.startswith(f"{n} "):  # a call cut short by a timeout answers late
            reply = server.stdout.readline()
            assert reply, (
                "the anchor process ended:\n" + (folder / "server.log").read_text()[-4000:]
            )
        assert reply == f"{n} 0\n", err.read_text()[-4000:]
        return out.read_text()

    try:
        yield run
    finally:
        server.stdin.close()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


TINY = {
    "text_config": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    ),
    "audio_config": dict(
        spec_size=64,
        window_size=4,
        num_mel_bins=16,
        depths=[2, 2, 2],
        num_attention_heads=[2, 2, 4],
        patch_embeds_hidden_size=16,
        hidden_size=64,
        patch_stride=2,
        patch_size=2,
    ),
    "projection_dim": 24,
}


def tiny_config(fusion: bool = False, stride=2) -> str:
    config = json.loads(json.dumps(TINY))
    config["audio_config"].update(
        enable_fusion=fusion, fusion_type="aff_2d" if fusion else None, patch_stride=stride
    )
    return json.dumps(config)


def pytest_configure(config):
    sys.path.insert(0, str(Path(__file__).parent))
