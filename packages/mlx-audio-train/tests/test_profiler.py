"""``Trainer(profiler=...)``: Lightning's SimpleProfiler and AdvancedProfiler reports at the end
of ``fit`` (and ``validate``/``test``/``predict``), through logging or to ``dirpath/filename``,
with the same action names (``run_training_epoch``, ``run_training_batch``, ``[Callback]...``,
``[LightningModule]...``)."""

from __future__ import annotations

import logging
import os
from copy import deepcopy
from unittest.mock import patch

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


# Ported from Lightning 2.6 (tests/tests_pytorch/profilers/test_profiler.py).
def test_simple_profiler_value_errors():
    simple_profiler = SimpleProfiler()
    action = "test"
    with pytest.raises(ValueError, match="Attempting to stop recording an action*"):
        simple_profiler.stop(action)
    simple_profiler.start(action)
    with pytest.raises(ValueError, match="Attempted to start test*"):
        simple_profiler.start(action)
    simple_profiler.stop(action)


def test_simple_profiler_deepcopy(tmp_path):
    simple_profiler = SimpleProfiler(dirpath=tmp_path, filename="test")
    simple_profiler.describe()
    assert deepcopy(simple_profiler)


def test_simple_profiler_dirpath(tmp_path):
    """The profiler's dirpath defaults to `trainer.log_dir` (default_root_dir without a logger)."""
    profiler = SimpleProfiler(filename="profiler")
    assert profiler.dirpath is None
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        max_epochs=1,
        profiler=profiler,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(TinyClassifier(), DataLoader(blobs(16), batch_size=8))
    assert profiler.dirpath == str(tmp_path)
    assert (tmp_path / "fit-profiler.txt").exists()


def test_simple_profiler_with_nonexisting_dirpath(tmp_path):
    nonexisting_tmp_path = tmp_path / "nonexisting"
    profiler = SimpleProfiler(dirpath=nonexisting_tmp_path, filename="profiler")
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        max_epochs=1,
        limit_train_batches=1,
        profiler=profiler,
        **QUIET,
    )
    trainer.fit(TinyClassifier(), DataLoader(blobs(16), batch_size=8))
    assert (nonexisting_tmp_path / "fit-profiler.txt").exists()


def test_simple_profiler_logs(in_tmp, caplog):
    trainer = Trainer(fast_dev_run=2, profiler=SimpleProfiler(), enable_progress_bar=False)
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        trainer.fit(TinyClassifier(), DataLoader(blobs(32), batch_size=8))
        trainer.test(TinyClassifier(), DataLoader(blobs(32), batch_size=8))
    assert caplog.text.count("Profiler Report") == 2


@pytest.mark.parametrize("extended", [True, False])
@patch("time.perf_counter", return_value=70)
def test_simple_profiler_summary(_, extended):
    profiler = SimpleProfiler(extended=extended)
    profiler.start_time = 63.0
    hooks = [
        "on_train_start",
        "on_train_end",
        "on_train_epoch_start",
        "on_train_epoch_end",
        "on_before_batch_transfer",
        "on_fit_start",
    ]
    sometime = 0.773434
    sep = os.linesep
    max_action_len = len("on_before_batch_transfer")
    for i, hook in enumerate(hooks):
        with profiler.profile(hook):
            pass
        profiler.recorded_durations[hook] = [sometime + i]
    if extended:
        header_string = (
            f"{sep}|  {'Action':<{max_action_len}s}\t|  {'Mean duration (s)':<15}\t|  {'Num calls':<15}\t|"
            f"  {'Total time (s)':<15}\t|  {'Percentage %':<15}\t|"
        )
        sep_lines = f"{sep}{'-' * len(header_string.expandtabs())}"
        expected_text = (
            f"Profiler Report{sep}"
            f"{sep_lines}"
            f"{sep}|  Action                       |  Mean duration (s)    |  Num calls            |  Total time (s)       |  Percentage %         |"  # noqa: E501
            f"{sep_lines}"
            f"{sep}|  Total                        |  -                    |  6                    |  7.0                  |  100 %                |"  # noqa: E501
            f"{sep_lines}"
            f"{sep}|  on_fit_start                 |  5.7734               |  1                    |  5.7734               |  82.478               |"  # noqa: E501
            f"{sep}|  on_before_batch_transfer     |  4.7734               |  1                    |  4.7734               |  68.192               |"  # noqa: E501
            f"{sep}|  on_train_epoch_end           |  3.7734               |  1                    |  3.7734               |  53.906               |"  # noqa: E501
            f"{sep}|  on_train_epoch_start         |  2.7734               |  1                    |  2.7734               |  39.62                |"  # noqa: E501
            f"{sep}|  on_train_end                 |  1.7734               |  1                    |  1.7734               |  25.335               |"  # noqa: E501
            f"{sep}|  on_train_start               |  0.77343              |  1                    |  0.77343              |  11.049               |"  # noqa: E501
            f"{sep_lines}{sep}"
        )
    else:
        header_string = f"{sep}|  {'Action':<{max_action_len}s}\t|  {'Mean duration (s)':<15}\t|  {'Total time (s)':<15}\t|"
        sep_lines = f"{sep}{'-' * len(header_string.expandtabs())}"
        expected_text = (
            f"Profiler Report{sep}"
            f"{sep_lines}"
            f"{sep}|  Action                       |  Mean duration (s)    |  Total time (s)       |"
            f"{sep_lines}"
            f"{sep}|  on_fit_start                 |  5.7734               |  5.7734               |"
            f"{sep}|  on_before_batch_transfer     |  4.7734               |  4.7734               |"
            f"{sep}|  on_train_epoch_end           |  3.7734               |  3.7734               |"
            f"{sep}|  on_train_epoch_start         |  2.7734               |  2.7734               |"
            f"{sep}|  on_train_end                 |  1.7734               |  1.7734               |"
            f"{sep}|  on_train_start               |  0.77343              |  0.77343              |"
            f"{sep_lines}{sep}"
        )
    assert expected_text == profiler.summary().expandtabs()


def test_advanced_profiler_describe(tmp_path):
    advanced_profiler = AdvancedProfiler(dirpath=tmp_path, filename="profiler")
    with advanced_profiler.profile("test"):
        pass
    advanced_profiler.describe()
    assert (tmp_path / "profiler.txt").read_text("utf-8")


@pytest.mark.parametrize("char", ["/", "\\", ":", "*", "?", '"', "<", ">", "|", "\n", "\r", "\t"])
def test_advanced_profiler_dump_states_sanitizes_filename(tmp_path, char):
    profiler = AdvancedProfiler(dirpath=tmp_path, dump_stats=True)
    with profiler.profile(f"before{char}after"):
        pass
    profiler.describe()
    prof_files = [f for f in os.listdir(tmp_path) if f.endswith(".prof")]
    assert len(prof_files) == 1
    assert not any(bad in prof_files[0] for bad in '/\\:*?"<>|\n\r\t')
    assert (tmp_path / prof_files[0]).read_bytes()


def test_advanced_profiler_value_errors_deepcopy_and_nesting(tmp_path):
    advanced_profiler = AdvancedProfiler(dirpath=tmp_path, filename="profiler")
    with pytest.raises(ValueError, match="Attempting to stop recording*"):
        advanced_profiler.stop("test")
    advanced_profiler.start("test")
    advanced_profiler.stop("test")
    with advanced_profiler.profile("outer"), advanced_profiler.profile("inner"):
        pass
    advanced_profiler.describe()
    assert deepcopy(advanced_profiler)


@pytest.mark.parametrize(
    ("profiler", "expected"),
    [
        (None, PassThroughProfiler),
        (SimpleProfiler(), SimpleProfiler),
        (AdvancedProfiler(), AdvancedProfiler),
        ("simple", SimpleProfiler),
        ("Simple", SimpleProfiler),
        ("advanced", AdvancedProfiler),
    ],
)
def test_trainer_profiler_correct_args(profiler, expected):
    kwargs = {"profiler": profiler} if profiler is not None else {}
    assert isinstance(Trainer(max_epochs=1, logger=False, **kwargs).profiler, expected)


def test_trainer_profiler_incorrect_str_arg():
    with pytest.raises(
        ValueError,
        match=r"When passing string value for the `profiler` parameter of `Trainer`, it can only be one of.*",
    ):
        Trainer(max_epochs=1, profiler="unknown_profiler")
