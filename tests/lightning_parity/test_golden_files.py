"""The golden files of this folder (golden/*.json: real Lightning's results, recorded by `make
anchor`) are what Lightning gives now. Needs the anchor venv (skipped without it; a failure in
CI, where `make test` builds it): a stale golden file fails here. The live run is the one the
differential tests use where the venv exists, so this costs no second run."""

from __future__ import annotations

import pytest
from lightning_anchor import check_golden


@pytest.mark.parametrize("name", ["scenarios", "probes"])
def test_golden_file_is_what_lightning_gives(name):
    check_golden(name)
