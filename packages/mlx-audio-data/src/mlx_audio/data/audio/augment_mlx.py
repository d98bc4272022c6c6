"""Batch augmentation on the accelerator, in MLX: SpecAugment masks (torchaudio's
``FrequencyMasking``/``TimeMasking``) and mixup/cutmix with soft labels (timm's ``Mixup``).

NOTE [device augmentation RNG]: every draw uses MLX's global key unless ``key=`` is given, and
nothing branches on a drawn value in Python (a skipped mask or mix is selected with
``mx.where``), so these run inside a compiled train step. Call them in ``compute_loss`` /
``training_step``: there MLX's key is part of the Trainer's compiled step state -- set once per
``fit`` (from seed, step, micro-batch and rank), advanced on the device by each step's draws,
never reseeded by the host per step, and saved in every checkpoint (``"mlx_key"``) -- so a
resumed run draws the same masks and mixes as the uninterrupted one, bit for bit (NOTE [the
run's key] in ``mlx_audio.train._rng``). (As a DataLoader ``mlx_transforms`` they also work,
but then run eagerly between steps, drawing from the same key whenever the loader hands the
batch out: prefer the step.) Validation: call them only when ``self.training``-like logic says
so; they always augment.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

__all__ = ["FrequencyMasking", "TimeMasking", "Mixup", "sample_beta"]


def _check_param(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int (bins or frames), got {value!r}")
    return value


class _AxisMasking:
    """torchaudio's ``_AxisMasking`` on ``(..., freq, time)``: a band of width
    ``floor(u * mask_param)`` starting at ``floor(v * (size - width))``, filled with
    ``mask_value``; one band for the whole batch, or one per example (and channel) when
    ``iid_masks``."""

    axis = -1

    def __init__(self, mask_param: int, iid_masks: bool = False, p: float = 1.0) -> None:
        self.mask_param = _check_param(type(self).__name__ + " mask_param", mask_param)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1] (the largest masked fraction), got {p!r}")
        self.iid_masks = iid_masks
        self.p = float(p)

    def __call__(
        self,
        specgram: mx.array,
        mask_value: float = 0.0,
        lengths: mx.array | None = None,
        key: mx.array | None = None,
    ) -> mx.array:
        if specgram.ndim < 2:
            raise ValueError(
                f"expected a spectrogram (..., freq, time), got shape {specgram.shape}"
            )
        size = specgram.shape[self.axis]
        if self.axis != -1:
            lengths = None  # lengths count frames: a frequency band spans them all
        lengths = None if lengths is None else mx.array(lengths)
        if lengths is not None and (specgram.ndim < 3 or lengths.ndim != 1):
            raise ValueError(
                f"lengths must be (batch,) for a batch (batch, ..., freq, time); got lengths "
                f"{tuple(lengths.shape)} for a spectrogram {tuple(specgram.shape)}"
            )
        lead = specgram.shape[:-2]
        iid = (self.iid_masks or lengths is not None) and specgram.ndim >= 3
        shape = lead if iid else ()
        if lengths is not None:  # NOTE: the valid frames only; padding is never masked/counted
            valid = (
                mx.array(lengths)
                .astype(mx.float32)
                .reshape(lengths.shape + (1,) * (len(lead) - lengths.ndim))
            )
            valid = mx.broadcast_to(valid, lead)
        else:
            valid = mx.full(shape, float(size))
        # torchaudio's _get_mask_param: with p < 1 a mask covers at most p of the axis
        param = mx.array(float(self.mask_param))
        if lengths is not None:  # adaptive: a mask never reaches into the padding
            param = mx.minimum(param, valid)
        if self.p < 1.0:
            param = mx.minimum(param, mx.floor(valid * self.p))
        k1, k2 = mx.random.split(key) if key is not None else (None, None)
        value = mx.random.uniform(shape=shape, key=k1) * param
        low = mx.random.uniform(shape=shape, key=k2) * (valid - value)
        start = mx.floor(low)
        end = start + mx.floor(value)
        # masks of width < 1 mask nothing (torchaudio returns early when mask_param < 1)
        positions = mx.arange(size, dtype=mx.float32)
        start = start.reshape(start.shape + (1, 1))
        end = end.reshape(end.shape + (1, 1))
        if self.axis == -1:
            positions = positions.reshape(1, size)
        else:
            positions = positions.reshape(size, 1)
        mask = mx.logical_and(positions >= start, positions < end)
        return mx.where(mask, mx.array(mask_value, specgram.dtype), specgram)


class FrequencyMasking(_AxisMasking):
    """torchaudio's ``FrequencyMasking(freq_mask_param, iid_masks)`` on ``(..., freq, time)``.
    ``lengths`` is accepted for symmetry (a frequency band spans the padding too, harmlessly)."""

    axis = -2

    def __init__(self, freq_mask_param: int, iid_masks: bool = False) -> None:
        super().__init__(freq_mask_param, iid_masks, 1.0)
        self.freq_mask_param = freq_mask_param


class TimeMasking(_AxisMasking):
    """torchaudio's ``TimeMasking(time_mask_param, iid_masks, p)`` on ``(..., freq, time)``:
    with ``p < 1`` a mask covers at most ``p`` of the frames. Adaptive for padded batches: given
    ``lengths`` (each example's valid frames, shape ``(batch,)``) each example draws its own
    mask inside its valid frames, and ``p`` bounds it by that example's length -- the padding is
    never counted (this implies ``iid_masks``)."""

    axis = -1

    def __init__(self, time_mask_param: int, iid_masks: bool = False, p: float = 1.0) -> None:
        super().__init__(time_mask_param, iid_masks, p)
        self.time_mask_param = time_mask_param


def sample_beta(alpha: float, shape: tuple[int, ...] = (), key: mx.array | None = None) -> mx.array:
    """``Beta(alpha, alpha)`` samples from MLX's RNG (no host work, compilable): two Gamma draws
    by Marsaglia and Tsang's method, vectorized over 8 proposals (the chance that all 8 are
    rejected is below 1e-9; then the last one is used), boosted as ``G(a+1) U^(1/a)`` for
    ``alpha < 1``."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    keys = mx.random.split(key, 4) if key is not None else [None] * 4
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    proposals = 8
    full = (2, *shape)

    x = mx.random.normal(shape=(proposals, *full), key=keys[0])
    u = mx.random.uniform(shape=(proposals, *full), key=keys[1])
    v = (1.0 + c * x) ** 3
    ok = mx.logical_and(
        v > 0, mx.log(u) < 0.5 * x * x + d - d * v + d * mx.log(mx.maximum(v, 1e-30))
    )
    # the first accepted proposal: cumulative count of accepted == 1 at the first one
    first = mx.logical_and(ok, mx.cumsum(ok.astype(mx.int32), axis=0) == 1)
    none = mx.logical_not(mx.any(ok, axis=0))
    pick = mx.where(none, v[-1], mx.sum(mx.where(first, v, 0.0), axis=0))
    gamma = d * pick
    if alpha < 1.0:
        boost = mx.random.uniform(shape=full, key=keys[2])
        gamma = gamma * mx.power(mx.maximum(boost, 1e-30), 1.0 / alpha)
    gamma = mx.maximum(gamma, 1e-30)
    return gamma[0] / (gamma[0] + gamma[1])


class Mixup:
    """timm's ``Mixup`` for a batch ``x`` (time on ``time_axis``) and labels: mixes each example
    with its mirror in the batch (``x.flip(0)``), returning ``(mixed x, soft targets)``.

    - ``mixup_alpha``/``cutmix_alpha``: ``lam ~ Beta(alpha, alpha)``; with both > 0 cutmix is
      picked with probability ``switch_prob``. ``prob``: the chance a batch (or an element) is
      mixed at all. ``mode``: ``"batch"`` (one ``lam`` for the batch), ``"pair"`` (one per
      mirrored pair) or ``"elem"`` (one per example).
    - An odd batch (duration batching makes them; timm asserts an even one): the pairing is the
      same flip, so the middle example is its own mirror; it is left as it is, ``lam = 1`` for
      it (its input and target unchanged, exactly), and every other example is mixed as timm
      mixes an even batch.
    - Cutmix on spectrograms/waveforms cuts a span along time (timm's box, in one dimension):
      a span of ``int(T * (1 - lam))`` frames around a uniform centre, clipped to the batch;
      ``correct_lam`` then sets ``lam`` to the kept fraction. ``cutmix_minmax`` is not offered.
    - Targets: int class indices (``num_classes`` one-hot, ``label_smoothing`` as timm:
      ``off = s / C``, ``on = 1 - s + off``) or already soft/multi-hot ``(batch, C)`` floats.
      Train on them with ``nn.losses.cross_entropy(logits, targets)`` (probability targets).
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        correct_lam: bool = True,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
        time_axis: int = -1,
    ) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha!r}, {cutmix_alpha!r}"
            )
        for name, value in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if mode not in ("batch", "pair", "elem"):
            raise ValueError(f"mode must be 'batch', 'pair' or 'elem', got {mode!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.mix_prob, self.switch_prob, self.mode = float(prob), float(switch_prob), mode
        self.correct_lam, self.label_smoothing = correct_lam, float(label_smoothing)
        self.num_classes, self.time_axis = num_classes, time_axis
        self.mixup_enabled = self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def params(self, batch: int, key: mx.array | None = None) -> tuple[mx.array, mx.array]:
        """``(lam, use_cutmix)`` per draw: shape ``()`` for ``"batch"``, ``(batch // 2,)`` for
        ``"pair"``, ``(batch,)`` for ``"elem"`` (timm's ``_params_per_*``)."""
        shape: tuple[int, ...] = {
            "batch": (),
            "pair": (batch // 2,),
            "elem": (batch,),
        }[self.mode]
        keys = mx.random.split(key, 4) if key is not None else [None] * 4
        one = mx.ones(shape)
        if not self.mixup_enabled:
            return one, mx.zeros(shape, dtype=mx.bool_)
        applied = mx.random.uniform(shape=shape, key=keys[0]) < self.mix_prob
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            cut = mx.random.uniform(shape=shape, key=keys[1]) < self.switch_prob
            lam_mix = mx.where(
                cut,
                sample_beta(self.cutmix_alpha, shape, keys[2]),
                sample_beta(self.mixup_alpha, shape, keys[3]),
            )
        elif self.mixup_alpha > 0:
            cut = mx.zeros(shape, dtype=mx.bool_)
            lam_mix = sample_beta(self.mixup_alpha, shape, keys[3])
        else:
            cut = mx.ones(shape, dtype=mx.bool_)
            lam_mix = sample_beta(self.cutmix_alpha, shape, keys[2])
        return mx.where(applied, lam_mix, one), mx.logical_and(applied, cut)

    def __call__(self, x: mx.array, target: Any, key: mx.array | None = None) -> tuple[Any, Any]:
        batch = x.shape[0]
        k1, k2 = mx.random.split(key) if key is not None else (None, None)
        lam, cut = self.params(batch, k1)
        axis = self.time_axis % x.ndim
        frames = x.shape[axis]
        # cutmix: a span of int(T (1 - lam)) around a uniform centre (timm's rand_bbox in 1-D)
        centre = mx.floor(mx.random.uniform(shape=lam.shape, key=k2) * frames)
        if self.mode == "pair":  # the pair's draws for both of its examples (odd: the middle)
            middle = [mx.ones((batch % 2,), dtype=a.dtype) for a in (lam, cut, centre)]
            lam, cut, centre = (
                mx.concatenate([a, m, a[::-1]]) for a, m in zip((lam, cut, centre), middle)
            )
        per = mx.broadcast_to(lam, (batch,))
        cut = mx.broadcast_to(cut, (batch,))
        centre = mx.broadcast_to(centre, (batch,))
        if batch % 2:  # NOTE: the middle example is its own mirror: lam 1, no cut (unchanged)
            alone = mx.arange(batch) == batch // 2
            per = mx.where(alone, 1.0, per)
            cut = mx.logical_and(cut, mx.logical_not(alone))
        half = mx.floor(mx.floor(frames * (1.0 - per)) / 2)
        low = mx.clip(centre - half, 0, frames)
        high = mx.clip(centre + half, 0, frames)
        kept = 1.0 - (high - low) / frames if self.correct_lam else per
        lam_out = mx.where(cut, kept, per)
        flipped = x[::-1]
        view = [1] * x.ndim
        view[0] = batch
        pos_shape = [1] * x.ndim
        pos_shape[axis] = frames
        positions = mx.arange(frames, dtype=mx.float32).reshape(pos_shape)
        inside = mx.logical_and(positions >= low.reshape(view), positions < high.reshape(view))
        cutmixed = mx.where(inside, flipped, x)
        w = per.reshape(view).astype(x.dtype)
        mixed = x * w + flipped * (1 - w)
        out = mx.where(cut.reshape(view), cutmixed, mixed)
        return out, self.mix_target(target, lam_out)

    def _check_indices(self, y: mx.array) -> None:
        """Class indices outside ``[0, num_classes)`` would give targets that do not sum to 1:
        a ``ValueError``. NOTE: checked where the labels are concrete (eager, one host sync);
        inside ``mx.compile``/``vmap`` they cannot be read, so there the caller checks them
        before the compiled step (the command line does, per batch)."""
        if y.size == 0 or mx.issubdtype(y.dtype, mx.floating):
            return
        try:
            low, high = int(np.asarray(mx.min(y))), int(np.asarray(mx.max(y)))
        except ValueError:  # "[eval] ... during function transformations": not concrete
            return
        if low < 0 or high >= self.num_classes:
            flat = np.asarray(y).reshape(-1)
            values = sorted({int(v) for v in flat if not 0 <= int(v) < self.num_classes})
            bad = ", ".join(map(str, values[:5]))
            raise ValueError(
                f"Mixup: labels {bad} are not class indices for num_classes={self.num_classes} "
                f"(valid: 0..{self.num_classes - 1})"
            )

    def mix_target(self, target: Any, lam: mx.array) -> mx.array:
        """timm's ``mixup_target``: smoothed one-hot targets mixed with the mirror's."""
        y = mx.array(target)
        if y.ndim == 1:
            self._check_indices(y)
            off = self.label_smoothing / self.num_classes
            on = 1.0 - self.label_smoothing + off
            hot = y[:, None] == mx.arange(self.num_classes)[None, :]
            y = mx.where(hot, on, off)
        y = y.astype(mx.float32)
        w = lam.reshape(-1, 1)
        return y * w + y[::-1] * (1.0 - w)
