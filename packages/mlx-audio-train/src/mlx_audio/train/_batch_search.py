"""Lightning's batch-size search (``lightning.pytorch.tuner.batch_size_scaling``): the trial
runs and the sizes they lead to, separated from how a trial runs (tuner.py)."""

from __future__ import annotations

from collections.abc import Callable

from ._status import rank_zero_info

_OOM = ("out of memory", "outofmemory", "insufficient memory", "[metal::malloc]", "[cuda::malloc]")


def is_oom_error(error: BaseException) -> bool:
    """Whether ``error`` is MLX's out-of-memory error (Metal's or CUDA's allocator, or a command
    buffer that ran out of memory)."""
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(k in text for k in _OOM)


def search_batch_size(
    trial: Callable[[int], None],
    set_size: Callable[[int], None],
    dataset_length: int,
    mode: str,
    init_val: int,
    max_trials: int,
    margin: float,
    max_val: int,
) -> int:
    """The largest size whose ``trial`` raised no out-of-memory error (``tuner.is_oom_error``;
    any other error propagates), by Lightning's ``_run_power_scaling`` /
    ``_run_binsearch_scaling``, with its messages. ``set_size`` sees every size tried."""
    size = init_val

    def adjust(new: int, desc: str | None = None) -> tuple[int, bool]:
        """Lightning's ``_adjust_batch_size``: the next size, capped, and whether it changed."""
        if size >= dataset_length:
            rank_zero_info(
                f"The batch size {size} is greater or equal than the length of your dataset: "
                f"{dataset_length}."
            )
            return size, False
        if new > max_val:
            if desc:
                rank_zero_info(
                    f"Batch size {new} exceeds max_val limit {max_val}, capping at {max_val}"
                )
            new = max_val
        if desc:
            rank_zero_info(f"Batch size {size} {desc}, trying batch size {new}")
        set_size(new)
        return new, new != size

    set_size(size)
    low, high, count, any_success = 1, 0, 0, False
    last_good = size
    for i in range(max_trials) if mode == "power" else iter(int, 1):
        if size >= max_val:
            rank_zero_info(f"Reached the maximum batch size limit of {max_val}. Stopping search.")
            break
        try:
            trial(size)
        except RuntimeError as error:
            if not is_oom_error(error):
                raise
            if mode == "power":
                size, _ = adjust(int(size * 0.5), "failed")
                if any_success:
                    break
                continue
            high = size
            size, _ = adjust((high + low) // 2, "failed")
            if high - low <= 1:
                break
            continue
        last_good = size
        if mode == "power":
            if i + 1 >= max_trials:
                size = last_good
                break
            size, changed = adjust(int(size * 2.0), "succeeded")
            if not changed:
                break
            any_success = True
            continue
        count += 1
        if count >= max_trials:
            size = last_good
            break
        low = size
        if high:
            if high - low <= 1:
                break
            size, changed = adjust((high + low) // 2, "succeeded")
        else:
            size, changed = adjust(int(size * 2.0), "succeeded")
        if not changed:
            break
    if mode == "binsearch" and margin > 0:
        reduced = max(1, int(size * (1 - margin)))
        if reduced != size:
            rank_zero_info(
                f"Applying margin of {margin:.1%}, reducing batch size from {size} to {reduced}"
            )
            size = reduced
            set_size(size)
    rank_zero_info(
        f"Finished batch size finder, will continue with full run using batch size {size}"
    )
    return size
