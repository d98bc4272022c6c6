"""``Trainer(profiler=...)``: Lightning's SimpleProfiler and AdvancedProfiler reports at the end
of ``fit`` (and ``validate``/``test``/``predict``), through logging or to ``dirpath/filename``,
with the same action names (``run_training_epoch``, ``run_training_batch``, ``[Callback]...``,
``[LightningModule]...``)."""

from __future__ import annotations

import logging

import mlx.core as mx
import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import AdvancedProfiler, PassThroughProfiler, SimpleProfiler, Trainer

QUIET = {"enable_progress_bar": False, "logger": False, "enable_checkpointing": False}


def fit(profiler, epochs: int = 2) -> Trainer:
    trainer = Trainer(max_epochs=epochs, profiler=profiler, **QUIET)
    trainer.fit(
        TinyClassifier(), DataLoader(blobs(48), batch_size=8), DataLoader(blobs(16), batch_size=8)
    )
    return trainer


def rows(report: str) -> dict[str, list[str]]:
    table = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] != "Action":
            table[cells[0]] = cells[1:]
    return table


def test_simple_profiler_reports_each_action_through_logging(in_tmp, caplog):
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        trainer = fit("simple")
    report = next(r.getMessage() for r in caplog.records if "Profiler Report" in r.getMessage())
    assert report.startswith("FIT Profiler Report")
    table = rows(report)
    assert table["run_training_epoch"][1] == "2"
    assert table["run_training_batch"][1] == "12"  # 6 batches x 2 epochs
    assert table["[_TrainingEpochLoop].train_dataloader_next"][1] == "12"
    assert table["[Callback]ModelSummary.on_fit_start"][1] == "1"
    assert table["[LightningModule]TinyClassifier.on_validation_epoch_end"][1] == "3"  # sanity too
    assert table["Total"][3] == "100 %"
    assert isinstance(trainer.profiler, SimpleProfiler)
    totals = {a: float(r[2]) for a, r in table.items() if a != "Total"}
    assert totals["run_training_epoch"] >= totals["run_training_batch"]


def test_simple_profiler_writes_its_file(in_tmp):
    profiler = SimpleProfiler(dirpath=str(in_tmp / "prof"), filename="perf")
    trainer = fit(profiler, epochs=1)
    text = (in_tmp / "prof" / "fit-perf.txt").read_text()
    assert "FIT Profiler Report" in text and "run_training_batch" in text
    trainer.test(TinyClassifier(), DataLoader(blobs(16), batch_size=8))
    assert "TEST Profiler Report" in (in_tmp / "prof" / "test-perf.txt").read_text()


def test_simple_profiler_not_extended(in_tmp, caplog):
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        fit(SimpleProfiler(extended=False), epochs=1)
    report = next(r.getMessage() for r in caplog.records if "Profiler Report" in r.getMessage())
    assert "Num calls" not in report and "run_training_batch" in report


def test_advanced_profiler_runs_cprofile_per_action(in_tmp, caplog):
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        fit("advanced", epochs=1)
    report = next(r.getMessage() for r in caplog.records if "Profiler Report" in r.getMessage())
    assert "Profile stats for: run_training_batch" in report
    assert "function calls" in report and "Ordered by: cumulative time" in report


def test_advanced_profiler_dumps_stats(in_tmp):
    fit(AdvancedProfiler(dirpath=str(in_tmp / "p"), filename="adv", dump_stats=True), epochs=1)
    assert (in_tmp / "p" / "fit-adv-run_training_batch.prof").exists()


def test_the_step_is_on_the_device_when_its_clock_stops(in_tmp, monkeypatch):
    """NOTE [device time in the profile]: run_training_batch waits for the step's arrays
    (``mx.eval`` of the step's state and loss) before its clock stops, so its time is the
    device's; the default profiler leaves the step asynchronous (no such wait)."""
    import mlx_audio.train.profiler as profiler_module

    waited: list[int] = []
    real_eval = mx.eval

    def eval_(*arrays):
        waited.append(id(arrays[-1]))
        return real_eval(*arrays)

    monkeypatch.setattr(profiler_module.mx, "eval", eval_)
    synced: list[bool] = []

    class Probe(SimpleProfiler):
        def stop(self, action_name):
            if action_name == "run_training_batch":
                synced.append(bool(waited) and waited[-1] == id(trainer.last_loss))
            super().stop(action_name)

    for profiler in (Probe(), None):
        waited.clear()
        trainer = Trainer(max_epochs=1, profiler=profiler, **QUIET)
        trainer.fit(TinyClassifier(), DataLoader(blobs(16), batch_size=8))
        if profiler is None:
            assert id(trainer.last_loss) not in waited
    assert synced == [True, True]


@pytest.mark.parametrize("profiler", [None, PassThroughProfiler()])
def test_no_report_without_a_profiler(in_tmp, caplog, profiler):
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        trainer = fit(profiler, epochs=1)
    assert isinstance(trainer.profiler, PassThroughProfiler)
    assert not any("Profiler Report" in r.getMessage() for r in caplog.records)


def test_a_profiler_records_what_the_user_profiles(in_tmp):
    profiler = SimpleProfiler()
    with profiler.profile("mine"):
        pass
    assert len(profiler.recorded_durations["mine"]) == 1
    with pytest.raises(ValueError, match="which was never started"):
        profiler.stop("other")
