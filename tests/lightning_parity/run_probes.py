"""The Lightning side of the small differential tests: run each of probes.PROBES in a fresh
interpreter (this one: the anchor venv's) and write their results as JSON.

Run through ``tests/golden.py`` (golden/probes.json): ``.venv-anchor/bin/python run_probes.py OUT``.
"""

from __future__ import annotations

import json
import subprocess
import sys

from probes import PROBES


def main() -> None:
    results = {}
    for name, code in PROBES.items():
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
        )
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
