"""Exact resume: an interrupted run ends bit-identical to an uninterrupted one."""

import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from train_testing import TinyClassifier, assert_trees_equal, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelCheckpoint

EPOCHS = 3  # 200 samples / batch 16 = 13 batches -> 7 updates per epoch with accumulation 2


def make(root, **overrides):
    loader = DataLoader(blobs(200), batch_size=16, shuffle=True, num_workers=2, seed=3)
    trainer = Trainer(
        max_epochs=EPOCHS,
        accumulate_grad_batches=2,
        gradient_clip_val=1.0,
        seed=7,
        default_root_dir=str(root),
        enable_progress_bar=False,
        logger=False,
        log_every_n_steps=1,
        callbacks=[
            ModelCheckpoint(dirpath=str(root / "ckpt"), every_n_train_steps=1, save_top_k=0)
        ],
        **overrides,
    )
    return TinyClassifier(total_steps=21), loader, trainer


def reference(root):
    model, loader, trainer = make(root)
    trainer.fit(model, loader)
    return model, trainer


@pytest.mark.parametrize("stop_at", [1, 5, 7, 10])
def test_resume_after_max_steps_is_bit_identical(tmp_path, stop_at):
    """Stopping at update 7 ends an epoch; 5 and 10 are mid-epoch; 1 is the first update."""
    full_model, full_trainer = reference(tmp_path / "full")
    assert full_trainer.global_step == 21

    model, loader, trainer = make(tmp_path / "cut", max_steps=stop_at)
    trainer.fit(model, loader)
    assert trainer.global_step == stop_at

    model, loader, trainer = make(tmp_path / "cut")
    trainer.fit(model, loader, ckpt_path="last")
    assert trainer.global_step == 21 and trainer.current_epoch == EPOCHS
    assert_trees_equal(model.parameters(), full_model.parameters())
    assert_trees_equal(trainer.optimizer.state, full_trainer.optimizer.state)


def test_resume_after_a_completed_epoch_does_not_repeat_it(tmp_path):
    model, loader, trainer = make(tmp_path, max_steps=7)
    trainer.fit(model, loader)
    state = json.loads(open(tmp_path / "ckpt" / "last" / "trainer_state.json").read())
    # saved after the epoch's last batch (every_n_train_steps=1): the epoch has nothing left
    assert state["global_step"] == 7
    model, loader, trainer = make(tmp_path)
    seen = []
    model.on_train_epoch_start = lambda: seen.append(trainer.current_epoch)
    trainer.fit(model, loader, ckpt_path="last")
    assert seen == [1, 2]


def test_last_that_does_not_exist_warns_and_starts_fresh(tmp_path, caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    model, loader, trainer = make(tmp_path, max_steps=2)
    trainer.fit(model, loader, ckpt_path="last")
    assert "starting from scratch" in caplog.text and trainer.global_step == 2


def training_script(loader_args: str, checkpoint_args: str, pause: float = 0.0) -> str:
    """A training run for the kill/preemption tests: prints every step, trains 60 steps, saves
    its final weights; ``sys.argv``: run folder, "fresh" or "resume"."""
    return textwrap.dedent(
        f"""
        import sys
        import time
        from pathlib import Path
        from train_testing import TinyClassifier, blobs
        from mlx_audio.data import DataLoader
        from mlx_audio.train import Trainer
        from mlx_audio.train.callbacks import Callback, ModelCheckpoint

        class Steps(Callback):
            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                print("STEP", trainer.global_step, flush=True)
                time.sleep({pause})  # time for a test to send its signal mid-run

        if __name__ == "__main__":
            root, resume = Path(sys.argv[1]), sys.argv[2] == "resume"
            loader = DataLoader(blobs(120), batch_size=8, shuffle=True, seed=3{loader_args})
            trainer = Trainer(max_epochs=4, seed=7, default_root_dir=str(root), enable_progress_bar=False, logger=False,
                              callbacks=[Steps(), ModelCheckpoint(dirpath=str(root / "ckpt"){checkpoint_args})])
            model = TinyClassifier(total_steps=60)
            print("STARTED", flush=True)
            trainer.fit(model, loader, ckpt_path="last" if resume else None)
            model.save_weights(str(root / "final.safetensors"))
            print("DONE", trainer.global_step, flush=True)
        """
    )


def launcher(tmp_path, source: str):
    """``launch(run_folder, "fresh" | "resume")`` for the script ``source``."""
    script = tmp_path / "train.py"
    script.write_text(source)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]
        ),
    }

    def launch(root, mode):
        return subprocess.Popen(
            [sys.executable, str(script), str(root), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    return launch


def assert_same_final_weights(root, reference, label=""):
    import mlx.core as mx

    expected = mx.load(str(reference / "final.safetensors"))
    got = mx.load(str(root / "final.safetensors"))
    for key in expected:
        np.testing.assert_array_equal(
            np.array(got[key]), np.array(expected[key]), err_msg=f"{label}{key}"
        )


def test_sigkill_at_random_points_always_resumes(tmp_path):
    """30 trials: kill the training process at a random moment (a random number of
    milliseconds after a random step, so sometimes while a checkpoint is being written or an
    older top-2 one deleted), check every directory that looks like a checkpoint is complete,
    resume from `last`, and check the final weights equal an uninterrupted run's. The trials'
    kill points are drawn first; two trials run at a time (each is mostly process start-up)."""
    from mlx_audio.train.checkpoint import load_arrays, read_state

    launch = launcher(
        tmp_path, training_script("", ", every_n_train_steps=1, save_top_k=2, monitor='train_loss'")
    )
    ref = launch(tmp_path / "ref", "fresh")
    out, err = ref.communicate(timeout=300)
    assert "DONE 60" in out, err[-2000:]
    rng = random.Random(0)
    points = [(f"STEP {rng.randint(1, 55)}", rng.uniform(0.0, 0.02)) for _ in range(30)]

    def trial(n: int) -> bool:
        """Trial ``n``; whether its run was still going when the SIGKILL came."""
        target, delay = points[n]
        root = tmp_path / f"trial{n}"
        proc = launch(root, "fresh")
        for line in proc.stdout:
            if line.strip() == target:
                time.sleep(delay)
                break
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        for name in os.listdir(root / "ckpt") if (root / "ckpt").is_dir() else []:
            if not name.startswith("."):  # complete or absent: never half-written or half-deleted
                directory, _ = read_state(str(root / "ckpt" / name))
                load_arrays(os.path.join(directory, "model.safetensors"))
        resumed = launch(root, "resume")
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0 and "DONE 60" in out, f"trial {n}: {err[-2000:]}"
        assert not [
            name for name in os.listdir(root / "ckpt") if name.startswith((".trash-", ".tmp-"))
        ]  # cleaned on start
        assert_same_final_weights(root, tmp_path / "ref", f"trial {n}: ")
        return killed

    with ThreadPoolExecutor(max_workers=2) as pool:
        kills = sum(pool.map(trial, range(30)))
    assert kills == 30, f"only {kills} of 30 trials were killed mid-run"


class _StopAtBatch(Exception):
    pass


def test_resume_from_a_checkpoint_inside_an_accumulation_group_is_exact(tmp_path):
    """Defect 8: validation (as in Lightning) runs after batch 3 of a 2-batch accumulation
    group; the monitored checkpoint written there must resume bit-identically."""
    from mlx_audio.train.callbacks import Callback

    def run(root, stop=False, ckpt_path=None):
        class Stop(Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if stop and trainer.current_epoch == 1 and batch_idx == 3:
                    raise _StopAtBatch

        model, loader, _ = make(root)
        trainer = Trainer(
            max_epochs=EPOCHS,
            accumulate_grad_batches=2,
            val_check_interval=3,
            seed=7,
            default_root_dir=str(root),
            enable_progress_bar=False,
            logger=False,
            num_sanity_val_steps=0,
            callbacks=[
                Stop(),
                ModelCheckpoint(dirpath=str(root / "ckpt"), monitor="val_loss", save_top_k=-1),
            ],
        )
        val = DataLoader(blobs(32, seed=1), batch_size=16)
        trainer.fit(model, loader, val, ckpt_path=ckpt_path)
        return model, trainer

    full, _ = run(tmp_path / "full")
    with pytest.raises(_StopAtBatch):
        run(tmp_path / "cut", stop=True)
    state = json.loads((tmp_path / "cut" / "ckpt" / "last" / "trainer_state.json").read_text())
    assert state["batch_in_epoch"] == 3 and state["accumulated_batches"] == 1  # inside a group
    resumed, trainer = run(tmp_path / "cut", ckpt_path="last")
    assert trainer.current_epoch == EPOCHS
    assert_trees_equal(resumed.parameters(), full.parameters())


def test_sigterm_mid_epoch_saves_exits_143_and_resumes_exactly(tmp_path):
    """A scheduler's preemption: SIGTERM mid-epoch (workers running) -> the step finishes, a
    `preempted-...` checkpoint becomes `last`, the workers and shared memory are gone, the exit
    status is 143; resuming ends bit-identical to an uninterrupted run."""
    launch = launcher(tmp_path, training_script(", num_workers=2", "", pause=0.03))
    ref = launch(tmp_path / "ref", "fresh")
    out, err = ref.communicate(timeout=300)
    assert "DONE 60" in out, err[-2000:]
    proc = launch(tmp_path / "run", "fresh")
    workers = []
    for line in proc.stdout:
        if line.startswith("STEP"):
            workers = [int(p) for p in os.popen(f"pgrep -P {proc.pid}").read().split()]
        if line.strip() == "STEP 22":  # mid-epoch 2 (15 steps per epoch)
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    last = os.path.basename(os.path.realpath(tmp_path / "run" / "ckpt" / "last"))
    assert last.startswith("preempted-epoch=") and 22 <= int(last.rsplit("=", 1)[1]) < 60, last
    time.sleep(0.5)
    assert workers and not [
        p
        for p in workers
        if os.path.exists(f"/proc/{p}") and "zombie" not in open(f"/proc/{p}/status").read().lower()
    ]
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"mlx_audio_{proc.pid}_")]
    resumed = launch(tmp_path / "run", "resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "DONE 60" in out, err[-2000:]
    assert_same_final_weights(tmp_path / "run", tmp_path / "ref")


@pytest.mark.parametrize("nohup", [False, True])
def test_closing_the_terminal_of_a_foreground_run_saves_like_sigterm(tmp_path, nohup):
    """SIGHUP: the run's terminal closes (the kernel hangs up a pty's session). The run saves
    a `preempted-...` checkpoint and exits 143, progress bar and all on the dead terminal;
    under `nohup` (SIGHUP ignored) it is left alone and trains to the end."""
    import fcntl
    import pty
    import select
    import termios

    source = (
        training_script("", "", pause=0.03)
        .replace(
            'print("STEP", trainer.global_step, flush=True)',
            'Path(sys.argv[1], "step").write_text(str(trainer.global_step))',
        )
        .replace("enable_progress_bar=False", "enable_progress_bar=True")
    )
    script = tmp_path / "train.py"
    script.write_text(source)
    master, slave = pty.openpty()

    def controlling_terminal():  # the child leads a new session whose terminal is the pty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    root = tmp_path / "run"
    root.mkdir()
    proc = subprocess.Popen(
        ["nohup" if nohup else "env", sys.executable, str(script), str(root), "fresh"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_terminal,
        cwd=tmp_path,  # nohup writes nohup.out here
        env={**os.environ, "PYTHONPATH": os.path.dirname(__file__)},
    )
    os.close(slave)
    screen: list[bytes] = []
    watched = [master]
    try:
        deadline = time.monotonic() + 120
        while not ((root / "step").exists() and int((root / "step").read_text() or 0) >= 22):
            assert proc.poll() is None and time.monotonic() < deadline, b"".join(screen)[-2000:]
            if select.select(watched, [], [], 0.01)[0]:  # the terminal shows what it gets
                try:
                    screen.append(os.read(master, 65536))
                except OSError:  # EIO: nothing has the terminal open (nohup moved the output)
                    watched = []
        os.close(master)  # the terminal closes (no read in flight): SIGHUP to the session
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    last = os.path.basename(os.path.realpath(root / "ckpt" / "last"))
    if nohup:
        assert code == 0 and (root / "final.safetensors").exists()
        assert not last.startswith("preempted-"), last
    else:
        assert code == 143, b"".join(screen)[-2000:]
        assert last.startswith("preempted-epoch=") and 22 <= int(last.rsplit("=", 1)[1]) < 60, last
