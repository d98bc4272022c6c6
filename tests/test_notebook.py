"""The default progress bar in a real Jupyter kernel (nbclient + ipykernel): ipywidgets bars
("Sanity Checking", "Epoch N", "Validation"), the epoch bar ending at 100 % with its values,
and the validation lines and the closing summary as text."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

TESTS = Path(__file__).resolve().parents[1] / "packages" / "mlx-audio-train" / "tests"
CELL = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from train_testing import TinyClassifier, blobs
from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
trainer = Trainer(max_epochs=2, logger=False, enable_checkpointing=False, seed=0)
trainer.fit(TinyClassifier(), DataLoader(blobs(64), batch_size=8), DataLoader(blobs(32, seed=1), batch_size=16))
"""
WIDGET = "application/vnd.jupyter.widget-view+json"


def test_progress_bar_draws_widgets_in_a_notebook(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL)]
    nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = notebook.cells[0].outputs
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    bars = [o["data"]["text/plain"] for o in outputs if WIDGET in o.get("data", {})]
    assert any(b.startswith("Sanity Checking") for b in bars) and any(
        b.startswith("Epoch") for b in bars
    )
    assert any(b.startswith("Validation") for b in bars)
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert (
        "epoch 1 validation: val_loss=" in text and "Trainer: finished at epoch 2, step 16" in text
    )
    assert "\r" not in text  # no terminal redraws in the cell's text: the bars are widgets
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    labels = [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]
    epoch = [label for label in labels if "8/8" in str(label)]
    assert epoch and "samples/s" in epoch[-1] and "loss=" in epoch[-1] and "lr=" in epoch[-1]
    assert any(str(label).startswith("Epoch\u20071:\u2007100%") for label in labels)
