"""Readers for what the real backends wrote (used by the logger tests)."""

from __future__ import annotations

import glob
import json
import os
import struct


def read_wandb_records(run_dir: str) -> list:
    """All protobuf records of an offline run's ``run-*.wandb`` file.

    The file is a LevelDB-style log: a 7-byte header ("W&B" magic, version), then 32 KiB blocks
    of records, each ``crc32c (4) | length (2) | type (1) | data``; types 1 FULL, 2 FIRST,
    3 MIDDLE, 4 LAST reassemble one ``wandb_internal_pb2.Record``.
    """
    from wandb.proto import wandb_internal_pb2

    (path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    with open(path, "rb") as f:
        data = f.read()
    position, block, records, pending = 7, 32768, [], b""
    while position + 7 <= len(data):
        left_in_block = block - (position % block)
        if left_in_block < 7:  # trailing padding of a block
            position += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(run_dir: str) -> list[dict]:
    """The logged rows, each a dict of key -> value (JSON-decoded)."""
    rows = []
    for record in read_wandb_records(run_dir):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def wandb_exit_code(run_dir: str) -> int | None:
    for record in read_wandb_records(run_dir):
        if record.WhichOneof("record_type") == "exit":
            return record.exit.exit_code
    return None


def wandb_config(run_dir: str) -> dict:
    config = {}
    for record in read_wandb_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "config" or (kind == "run" and record.run.HasField("config")):
            items = record.config.update if kind == "config" else record.run.config.update
            for item in items:
                config[item.key] = json.loads(item.value_json)
    return config


def tensorboard_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)], read with tensorboard's own event reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def tensorboard_plugins(log_dir: str) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir)
    accumulator.Reload()
    return set(accumulator.PluginTagToContent("hparams") and ["hparams"])


def wait_for_wandb_exit(run_dir: str, seconds: float = 20.0) -> int | None:
    """W&B's service process writes the run file asynchronously: wait for its exit record."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = wandb_exit_code(run_dir)
        if code is not None:
            return code
        time.sleep(0.2)
    return None
