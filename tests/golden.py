"""Golden files of the differential suites: the reference's results (torch, torchdata and
Lightning, run in the anchor venv) recorded as JSON and committed, so that the suites also run
where the anchor venv is missing; the expected values stay the reference's.

Recording (what ``make anchor`` runs after building the venv, with its interpreter)::

    .venv-anchor/bin/python tests/golden.py [--if-stale] [--into DIR] [NAME ...]

runs each golden document's reference script (``python SCRIPT OUT`` in its suite's folder) and
writes ``tests/<suite>/golden/<name>.json``: ``{"reference": versions of the reference packages,
"results": what the script wrote, "sources": a digest of the suite files the results come
from}``, keys sorted, one line per result. ``--if-stale`` records only the documents whose file
is missing or whose sources or reference versions differ from the recorded ones (``make anchor``:
a venv rebuilt with other versions, or a suite whose reference side changed, is recorded again;
the same versions and sources give the same results, which the tests check against a live run).
With ``CI`` set, recording a document whose results or sources differ from the committed file is
an error: the committed file was stale. ``--into DIR`` writes ``DIR/<name>.json`` instead (the
tests' live run: the committed files stay as they are).

In the tests (``reference(name)``): where the anchor venv exists, the reference runs live once a
session and its results are used; ``check_golden(name)`` compares them with the golden file, so a
stale golden file fails (``make test`` builds the anchor venv, so in CI it always runs). Without
the venv the golden file's results are used, once its sources digest matches the suite's files.

Imports only the standard library (pytest lazily, in the tests' functions): runs under both
interpreters.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
ANCHOR = ROOT / ".venv-anchor" / "bin" / "python"
REGENERATE = "`make anchor` regenerates it"


@dataclass(frozen=True)
class Golden:
    """One golden document: ``script`` (run in ``tests/<suite>``) writes the reference's results;
    they depend on ``sources`` (files of the suite) and on the ``packages``' versions."""

    name: str
    suite: str
    script: str
    sources: tuple[str, ...]
    packages: tuple[str, ...]

    @property
    def folder(self) -> Path:
        return TESTS / self.suite

    @property
    def path(self) -> Path:
        return self.folder / "golden" / f"{self.name}.json"

    @property
    def shown(self) -> str:
        return str(self.path.relative_to(ROOT))

    def digest(self) -> str:
        digest = hashlib.sha256()
        for source in sorted(self.sources):
            digest.update(f"{source}\0".encode())
            digest.update((self.folder / source).read_bytes())
            digest.update(b"\0")
        return digest.hexdigest()

    def load(self) -> dict[str, Any] | None:
        return json.loads(self.path.read_text()) if self.path.exists() else None


GOLDEN = {
    golden.name: golden
    for golden in (
        Golden(
            "scenarios",
            "lightning_parity",
            "run_lightning.py",
            ("run_lightning.py", "scenarios.py", "common.py"),
            ("torch", "lightning", "numpy"),
        ),
        Golden(
            "probes",
            "lightning_parity",
            "run_probes.py",
            ("run_probes.py", "probes.py"),
            ("torch", "lightning"),
        ),
        Golden(
            "loops",
            "lightning_port",
            "run_loops.py",
            ("run_loops.py",),
            ("torch", "lightning", "torchdata"),
        ),
        Golden(
            "torch",
            "torch_parity",
            "run_torch.py",
            ("run_torch.py", "cases.py"),
            ("torch", "numpy"),
        ),
        Golden(
            "torchdata",
            "torch_parity",
            "run_torchdata.py",
            ("run_torchdata.py", "state_cases.py"),
            ("torch", "torchdata", "numpy"),
        ),
        Golden(
            "lhotse",
            "lhotse_parity",
            "run_lhotse.py",
            ("run_lhotse.py", "lhotse_cases.py"),
            ("lhotse", "numpy"),
        ),
        Golden(
            "weight_averaging",
            "toolkit_parity",
            "run_averaging.py",
            ("run_averaging.py", "averaging_cases.py"),
            ("torch", "lightning", "numpy"),
        ),
        Golden(
            "torchmetrics",
            "toolkit_parity",
            "run_torchmetrics.py",
            ("run_torchmetrics.py", "metric_cases.py"),
            ("torch", "torchmetrics", "numpy"),
        ),
    )
}


def dumps(document: dict[str, Any]) -> str:
    """Stable text: keys sorted, one line per result (diffs show which cases changed)."""
    lines = ["{"]
    for key in sorted(document):
        value = document[key]
        if key == "results":
            items = [
                f"  {json.dumps(name)}: {json.dumps(value[name], sort_keys=True)}"
                for name in sorted(value)
            ]
            text = "{\n" + ",\n".join(items) + "\n }" if items else "{}"
        else:
            text = json.dumps(value, sort_keys=True)
        lines.append(f" {json.dumps(key)}: {text},")
    lines[-1] = lines[-1].removesuffix(",")
    return "\n".join(lines) + "\n}\n"


# -- recording (in the anchor venv) ------------------------------------------------------------


def versions(golden: Golden) -> dict[str, str]:
    found = {name: metadata.version(name) for name in golden.packages}
    return {"python": "{}.{}".format(*sys.version_info[:2]), **found}


def record(golden: Golden) -> dict[str, Any]:
    """Run the reference side of ``golden`` with this interpreter: its document."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "results.json"
        subprocess.run(
            [sys.executable, golden.script, str(out)], cwd=golden.folder, check=True, timeout=600
        )
        results = json.loads(out.read_text())
    return {"reference": versions(golden), "results": results, "sources": golden.digest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(GOLDEN) + " (all)")
    parser.add_argument("--if-stale", action="store_true", help="only missing or stale ones")
    parser.add_argument("--into", type=Path, help="write DIR/NAME.json, not the golden files")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(GOLDEN))
    if unknown:
        parser.error(f"unknown golden documents {unknown}: {', '.join(GOLDEN)}")
    stale = []
    for name in args.names or list(GOLDEN):
        golden = GOLDEN[name]
        old = golden.load()
        if args.if_stale and old and old.get("sources") == golden.digest():
            if old.get("reference") == versions(golden):
                continue
        document = record(golden)
        target = args.into / f"{name}.json" if args.into else golden.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dumps(document))
        if args.into:
            continue
        changed = [k for k in ("results", "sources") if old is None or old.get(k) != document[k]]
        print(f"{golden.shown}: recorded ({', '.join(changed) or 'versions'} changed)")
        if changed:
            stale.append(golden.shown)
    if stale and os.environ.get("CI"):
        print(
            "error: the committed golden files were stale (recorded again here; commit them): "
            + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


# -- in the tests (the workspace venv) -------------------------------------------------------


def _anchor_missing() -> NoReturn:
    import pytest

    if os.environ.get("CI"):  # `make test` builds it: in CI its absence is a failure
        pytest.fail(
            "the anchor venv .venv-anchor is missing or lacks a reference package; `make test` "
            "builds it (make anchor)"
        )
    pytest.skip("the anchor venv (make anchor) is not built or lacks a reference package")


@functools.cache
def _live_text(name: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [str(ANCHOR), str(TESTS / "golden.py"), "--into", folder, name],
            cwd=ROOT,
            check=True,
            timeout=900,
        )
        return (Path(folder) / f"{name}.json").read_text()


@functools.cache
def _anchor_has(packages: tuple[str, ...]) -> bool:
    """Whether the anchor venv has the reference packages (one built before a package was
    added to it lacks it: its golden file stands in until `make anchor` rebuilds it)."""
    check = "import importlib.metadata as m, sys; [m.version(p) for p in sys.argv[1:]]"
    found = subprocess.run([str(ANCHOR), "-c", check, *packages], capture_output=True, timeout=120)
    return found.returncode == 0


def live(name: str) -> dict[str, Any] | None:
    """The reference's document recorded live in the anchor venv (run once a session; a fresh
    copy each call), or None without the venv (or without its reference packages)."""
    if not ANCHOR.exists() or not _anchor_has(GOLDEN[name].packages):
        return None
    return json.loads(_live_text(name))


def reference(name: str) -> dict[str, Any]:
    """The reference's results for ``name``: live where the anchor venv exists (compared with the
    golden file by ``check_golden``), else from the golden file."""
    import pytest

    document = live(name)
    if document is not None:
        return document["results"]
    golden = GOLDEN[name]
    document = golden.load()
    if document is None:
        pytest.fail(f"{golden.shown} is missing and so is the anchor venv: {REGENERATE}")
    if document["sources"] != golden.digest():
        pytest.fail(
            f"{golden.shown} was recorded from other versions of {', '.join(golden.sources)} "
            f"(tests/{golden.suite}): {REGENERATE}"
        )
    return document["results"]


def check_golden(name: str) -> None:
    """The golden file is what the reference gives now (needs the anchor venv)."""
    document = live(name)
    if document is None:
        _anchor_missing()
    golden = GOLDEN[name]
    committed = golden.load()
    assert committed is not None, f"{golden.shown} is missing: {REGENERATE}"
    assert committed["sources"] == document["sources"], (
        f"{golden.shown} was recorded from other versions of {', '.join(golden.sources)} "
        f"(tests/{golden.suite}): {REGENERATE}"
    )
    assert committed["results"] == document["results"], (
        f"{golden.shown} differs from the reference run here (recorded with "
        f"{committed['reference']}, here {document['reference']}): record it again with "
        f"`.venv-anchor/bin/python tests/golden.py {name}` (make anchor does when the versions "
        "differ)"
    )


if __name__ == "__main__":
    sys.exit(main())
