"""Device-side augmentation: SpecAugment masks against torchaudio's masking formula, mixup /
cutmix against timm's (lambda ~ Beta, soft targets), adaptive masks never touching padding.

torchaudio and timm are not in the anchor environment: their code paths are ported here
(``mask_along_axis_iid``, ``Mixup._params_per_batch``/``mixup_target``) and compared in
distribution with scipy's tests."""

import mlx.core as mx
import numpy as np
import pytest
from scipy import stats

from mlx_audio.data.audio.augment_mlx import FrequencyMasking, Mixup, TimeMasking, sample_beta


def torchaudio_masks(rng, n, size, mask_param, p=1.0):
    """torchaudio.functional.mask_along_axis_iid's draws: (start, width) of n masks."""
    if p < 1.0:
        mask_param = min(mask_param, int(size * p))
    value = rng.random(n) * mask_param
    min_value = rng.random(n) * (size - value)
    start = min_value.astype(np.int64)
    return start, (start + value.astype(np.int64)) - start


def masked_spans(masked):
    """(start, width) of each row's single contiguous mask (width 0: start -1)."""
    width = masked.sum(axis=-1)
    start = np.where(width > 0, masked.argmax(axis=-1), -1)
    return start, width


def two_sample_chi2(a, b, bins):
    table = np.array([np.bincount(a, minlength=bins), np.bincount(b, minlength=bins)])
    table = table[:, table.sum(axis=0) > 0]
    return stats.chi2_contingency(table).pvalue


@pytest.mark.parametrize("cls, axis", [(TimeMasking, -1), (FrequencyMasking, -2)])
def test_mask_widths_and_starts_follow_torchaudio(cls, axis):
    n, size, param = 4000, 40, 12
    spec = mx.ones((n, size, size))
    out = np.array(cls(param, iid_masks=True)(spec, key=mx.random.key(0)))
    masked = (out == 0).any(axis=-2 if axis == -1 else -1)  # per example, along the masked axis
    start, width = masked_spans(masked)
    ref_start, ref_width = torchaudio_masks(np.random.default_rng(0), n, size, param)
    assert width.max() == param - 1 and two_sample_chi2(width, ref_width, param) > 1e-3
    keep = width > 0
    assert two_sample_chi2(start[keep], ref_start[ref_width > 0], size) > 1e-3
    # a full band: the mask spans the other axis entirely
    assert ((out == 0).sum(axis=(-1, -2)) == width * size).all()


def test_one_mask_for_the_batch_unless_iid():
    spec = mx.ones((6, 8, 50))
    shared = np.array(TimeMasking(20)(spec, key=mx.random.key(3)))
    assert all((shared[i] == shared[0]).all() for i in range(6))
    own = np.array(TimeMasking(20, iid_masks=True)(spec, key=mx.random.key(3)))
    assert len({own[i].tobytes() for i in range(6)}) > 1


def test_time_masks_with_p_are_bounded_by_the_fraction():
    spec = mx.ones((2000, 1, 30))
    out = np.array(TimeMasking(25, iid_masks=True, p=0.2)(spec, key=mx.random.key(1)))[:, 0]
    widths = (out == 0).sum(axis=-1)
    assert widths.max() == 5  # min(25, int(30 * 0.2)) = 6 -> widths 0..5


def test_adaptive_masks_never_touch_the_padding():
    lengths = np.array([50, 20, 7, 1, 0, 33] * 200)
    spec = mx.ones((len(lengths), 4, 50))
    out = np.array(TimeMasking(30, p=0.5)(spec, lengths=mx.array(lengths), key=mx.random.key(2)))
    masked = (out == 0).any(axis=1)
    frames = np.arange(50)[None, :]
    assert not (masked & (frames >= lengths[:, None])).any()  # padding is never masked
    widths = masked.sum(axis=-1)
    bound = np.minimum(30, np.floor(lengths * 0.5))  # each clip's own p-fraction
    assert (widths <= np.maximum(bound - 1, 0)).all()
    assert widths[lengths == 50].max() == 24 and widths[lengths == 20].max() == 9


def test_frequency_masks_ignore_lengths():
    spec = mx.ones((3, 40, 6))
    lengths = mx.array([6, 2, 1])
    a = FrequencyMasking(30, iid_masks=True)(spec, lengths=lengths, key=mx.random.key(4))
    b = FrequencyMasking(30, iid_masks=True)(spec, key=mx.random.key(4))
    np.testing.assert_array_equal(np.array(a), np.array(b))


def test_beta_samples_match_numpy():
    for alpha in (0.2, 0.8, 1.0, 3.0):
        ours = np.array(sample_beta(alpha, (4000,), key=mx.random.key(int(alpha * 10))))
        ref = np.random.default_rng(0).beta(alpha, alpha, 4000)
        assert stats.ks_2samp(ours, ref).pvalue > 1e-3, alpha


def timm_lams(rng, n, mixup_alpha, cutmix_alpha, prob, switch_prob):
    """timm's Mixup._params_per_batch, n times: (lam, use_cutmix)."""
    lams, cuts = [], []
    for _ in range(n):
        lam, cut = 1.0, False
        if rng.random() < prob:
            if mixup_alpha > 0 and cutmix_alpha > 0:
                cut = rng.random() < switch_prob
                alpha = cutmix_alpha if cut else mixup_alpha
            else:
                cut, alpha = cutmix_alpha > 0, cutmix_alpha or mixup_alpha
            lam = rng.beta(alpha, alpha)
        lams.append(lam)
        cuts.append(cut)
    return np.array(lams), np.array(cuts)


def test_mixup_lambda_follows_timm():
    mix = Mixup(mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.7, switch_prob=0.3, mode="elem")
    lam, cut = (np.array(a) for a in mix.params(4000, key=mx.random.key(5)))
    ref_lam, ref_cut = timm_lams(np.random.default_rng(0), 4000, 0.4, 1.0, 0.7, 0.3)
    assert abs((lam == 1).mean() - (ref_lam == 1).mean()) < 0.03
    assert abs(cut.mean() - ref_cut.mean()) < 0.03
    assert stats.ks_2samp(lam[cut], ref_lam[ref_cut]).pvalue > 1e-3
    mixed, ref_mixed = lam[(lam < 1) & ~cut], ref_lam[(ref_lam < 1) & ~ref_cut]
    assert stats.ks_2samp(mixed, ref_mixed).pvalue > 1e-3


def test_mixup_mixes_inputs_and_soft_targets_as_timm():
    x = mx.arange(4, dtype=mx.float32)[:, None, None] * mx.ones((4, 3, 16))
    labels = mx.array([0, 1, 2, 1])
    mix = Mixup(mixup_alpha=1.0, label_smoothing=0.1, num_classes=3)
    out, target = mix(x, labels, key=mx.random.key(7))
    lam = 1 - float(out[0, 0, 0]) / 3  # x[0] * lam + x[3] * (1 - lam) with x[0]=0, x[3]=3
    on, off = 1 - 0.1 + 0.1 / 3, 0.1 / 3
    hot = np.full((4, 3), off)
    hot[np.arange(4), [0, 1, 2, 1]] = on
    np.testing.assert_allclose(np.array(target), hot * lam + hot[::-1] * (1 - lam), atol=1e-5)
    np.testing.assert_allclose(
        np.array(out[:, 0, 0]), np.arange(4) * lam + np.arange(4)[::-1] * (1 - lam), atol=1e-5
    )


def test_cutmix_cuts_a_time_span_and_corrects_lambda():
    x = mx.arange(4, dtype=mx.float32)[:, None, None] * mx.ones((4, 2, 40)) + 10
    labels = mx.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])  # multi-hot passes
    cut = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode="elem", num_classes=2)
    for seed in range(10):
        out, target = cut(x, labels, key=mx.random.key(seed))
        out, target = np.array(out), np.array(target)
        for i in range(4):
            own = out[i, 0] == 10 + i
            assert (out[i] == out[i, :1]).all()  # the span covers every bin
            first, last = np.flatnonzero(~own)[[0, -1]] if (~own).any() else (0, -1)
            assert (~own).sum() == last - first + 1  # one contiguous span
            kept = own.mean()
            want = np.array(labels)[i] * kept + np.array(labels)[3 - i] * (1 - kept)
            np.testing.assert_allclose(target[i], want, atol=1e-6)


def test_augmentations_compile():
    mix = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, mode="pair", num_classes=5)
    mask = TimeMasking(4, iid_masks=True)
    step = mx.compile(lambda x, y: mix(mask(x), y))
    x, y = mx.ones((4, 3, 10)), mx.array([0, 1, 2, 3])
    mx.random.seed(0)
    a = step(x, y)
    mx.random.seed(0)
    b = step(x, y)
    np.testing.assert_array_equal(np.array(a[0]), np.array(b[0]))
    with pytest.raises(ValueError, match="mode must be 'batch', 'pair' or 'elem'"):
        Mixup(mode="half")
    with pytest.raises(ValueError, match=r"lengths must be \(batch,\)"):
        TimeMasking(3)(mx.ones((8, 10)), lengths=mx.array([10]))
    with pytest.raises(ValueError, match="mask_param must be a non-negative int"):
        TimeMasking(-1)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("alphas", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_odd_batches_leave_the_middle_example_unmixed(mode, alphas):
    """DIFFERENCE (timm asserts an even batch): the flip pairs the middle example of an odd
    batch with itself; it keeps its input and target exactly (lam 1), the others are mixed
    with their mirrors as in an even batch."""
    mix = Mixup(*alphas, mode=mode, label_smoothing=0.0, num_classes=7)
    x = mx.random.normal((7, 3, 50), key=mx.random.key(1))
    y = mx.arange(7)
    mixed, targets = mix(x, y, key=mx.random.key(2))
    np.testing.assert_array_equal(np.array(mixed[3]), np.array(x[3]))
    np.testing.assert_array_equal(np.array(targets[3]), np.eye(7)[3])
    t = np.array(targets)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)
    for i in range(7):  # only an example and its mirror share its target
        assert set(np.flatnonzero(t[i] > 0)) <= {i, 6 - i}
    assert not np.allclose(np.array(mixed), np.array(x))  # the others are mixed
    step = mx.compile(lambda a, b: mix(a, b))  # odd batches compile too
    assert step(x, y)[0].shape == x.shape


@pytest.mark.parametrize("labels, bad", [([0, 1, 5], "5"), ([0, -1, 2], "-1")])
def test_mixup_refuses_labels_outside_num_classes(labels, bad):
    """Out-of-range indices would give targets that do not sum to 1: a ValueError naming them
    and num_classes (eager labels; inside mx.compile they cannot be read, and pass unchecked)."""
    mix = Mixup(mixup_alpha=0.4, num_classes=3)
    x = mx.zeros((3, 10))
    with pytest.raises(ValueError, match=rf"labels {bad} .*num_classes=3 \(valid: 0\.\.2\)"):
        mix(x, mx.array(labels))
    _, targets = mix(x, mx.array([0, 1, 2]))
    assert np.allclose(np.array(targets.sum(-1)), 1.0)
    compiled = mx.compile(lambda x, y: mix(x, y)[1])
    assert compiled(x, mx.array(labels)).shape == (3, 3)  # no host read inside a compiled step
