"""The golden files of this folder (golden/*.json: torch's and torchdata's results, recorded by
`make anchor`) are what they give now. Needs the anchor venv (skipped without it; a failure in
CI, where `make test` builds it): a stale golden file fails here. The live run is the one the
differential tests use where the venv exists, so this costs no second run."""

from __future__ import annotations

import pytest
from anchor import check_golden


@pytest.mark.parametrize("name", ["torch", "torchdata"])
def test_golden_file_is_what_torch_gives(name):
    check_golden(name)
