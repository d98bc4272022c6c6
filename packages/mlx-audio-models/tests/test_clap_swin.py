"""NOTE [window-major layout] against transformers' formulation (swin_reference.py) on the same
modules: forward and gradient, shifted and unshifted windows, padded grids, odd patch merging;
gradient checkpointing per stage and per block; the frozen text tower outside the gradient."""

import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import TINY
from mlx.utils import tree_flatten

from mlx_audio.models.clap import CLAP, ClapConfig, swin_reference
from mlx_audio.models.clap.audio import HTSATEncoder
from mlx_audio.models.clap.config import ClapAudioConfig
from mlx_audio.models.clap.recompute import Dropout
from mlx_audio.models.clap.swin import RowGather, SwinStage


def randomize(module: nn.Module, seed: int = 0) -> None:
    """Non-zero position biases and norms, so every table and padding slot matters."""
    rng = np.random.default_rng(seed)
    module.load_weights(
        [
            (k, v + mx.array(rng.standard_normal(v.shape).astype(np.float32) * 0.2))
            for k, v in tree_flatten(module.parameters())
        ]
    )


def stage_pair(resolutions, window, depth=2, dim=8):
    config = ClapAudioConfig(
        spec_size=64,
        num_mel_bins=16,
        window_size=window,
        patch_embeds_hidden_size=dim,
        hidden_size=dim * 2,
        depths=[depth, depth],
        num_attention_heads=[2, 2],
        hidden_dropout_prob=0.0,
    )
    stages = [
        SwinStage(dim * 2**i, res, depth, 2, i == 0, config) for i, res in enumerate(resolutions)
    ]
    stages[0].link(stages[1])
    stages[1].link(None)
    for i, s in enumerate(stages):
        randomize(s, i)
    return stages


def run_new(stages, x):
    x = stages[0].enter(x)
    for s in stages:
        x = s(x)
    return x


def run_reference(stages, x):
    for s in stages:
        x = swin_reference.stage(s, x)
    return x


@pytest.mark.parametrize(
    "resolutions, window",
    [
        (((16, 16), (8, 8)), 4),  # no padding; shifted blocks in both stages
        (((15, 13), (8, 7)), 4),  # padded windows, odd patch merging, a rectangle
        (((10, 10), (5, 5)), 4),  # padded to 12, then one window covering a 5x5 stage
        (((12, 12), (6, 6)), 6),  # first stage shifted, second one window (no shift)
    ],
    ids=["even", "padded-odd-merge", "padded-then-single-window", "single-window-stage"],
)
def test_window_major_layout_equals_transformers_formulation(resolutions, window):
    stages = stage_pair(resolutions, window)
    h, w = resolutions[0]
    x = mx.random.normal((2, h * w, 8), key=mx.random.key(1))
    new, ref = run_new(stages, x), run_reference(stages, x)
    assert new.shape == ref.shape == (2, resolutions[1][0] * resolutions[1][1], 16)
    np.testing.assert_allclose(np.array(new), np.array(ref), rtol=1e-5, atol=1e-5)

    weight = mx.random.normal(ref.shape, key=mx.random.key(2))

    def loss(params, x, run):
        for s, p in zip(stages, params):
            s.update(p)
        return (run(stages, x) * weight).sum()

    params = [s.trainable_parameters() for s in stages]
    grad = mx.grad(loss, argnums=(0, 1))
    (g_new, gx_new), (g_ref, gx_ref) = grad(params, x, run_new), grad(params, x, run_reference)
    np.testing.assert_allclose(np.array(gx_new), np.array(gx_ref), rtol=1e-4, atol=1e-5)
    flat_new, flat_ref = dict(tree_flatten(g_new)), dict(tree_flatten(g_ref))
    assert flat_new.keys() == flat_ref.keys() and len(flat_new) > 20
    for k, a in flat_ref.items():
        close_at_scale(flat_new[k], a, atol=1e-5, err_msg=k)


def test_the_padding_slots_never_reach_a_real_token():
    """A non-finite value in a padding slot of the residual stream stays there."""
    stages = stage_pair(((15, 13), (8, 7)), 4)
    x = mx.random.normal((1, 15 * 13, 8), key=mx.random.key(3))
    inside = stages[0].enter(x)
    valid = np.array(stages[0]._valid[0])
    poisoned = mx.where(mx.array(valid)[:, None], inside, mx.array(np.inf))
    out = stages[1](stages[0](poisoned))
    assert np.isfinite(np.array(out)).all()


def test_row_gather_gradient_is_the_inverse_gather():
    index = np.array([2, 0, 4, 1])  # 4 = a zero row; source row 3 is never taken
    gather = RowGather(index, 4)
    x = mx.arange(8, dtype=mx.float32).reshape(1, 4, 2)
    np.testing.assert_array_equal(np.array(gather(x))[0], [[4, 5], [0, 1], [0, 0], [2, 3]])
    g = mx.grad(lambda x: (gather(x) * mx.arange(8).reshape(1, 4, 2)).sum())(x)
    np.testing.assert_array_equal(np.array(g)[0], [[2, 3], [6, 7], [0, 1], [0, 0]])
    with pytest.raises(ValueError, match="at most once"):
        RowGather(np.array([0, 0]), 2)


def close_at_scale(actual, desired, atol: float = 1e-6, err_msg: str = "") -> None:
    """Equal to float32 rounding: 1e-4 relative, or 4e-6 of the array's largest magnitude (a
    gradient's element summed from terms ~10^4 times its size cancels to that: the BLAS's
    summation order -- OpenBLAS's kernel differs between CPUs -- moves it by as much)."""
    desired = np.array(desired)
    scale = float(np.abs(desired).max()) if desired.size else 0.0
    np.testing.assert_allclose(
        np.array(actual), desired, rtol=1e-4, atol=max(atol, 4e-6 * scale), err_msg=err_msg
    )


def tiny(dropout=0.0) -> CLAP:
    config = json.loads(json.dumps(TINY))
    config["audio_config"].update(hidden_dropout_prob=dropout)
    config["text_config"].update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    mx.random.seed(0)
    model = CLAP(ClapConfig.from_dict(config))
    randomize(model.audio_encoder, 5)
    return model


def gradients(model, audio, ids):
    def loss_fn(m):
        return (m(audio, ids)["logits_per_audio"] * mx.arange(4).reshape(2, 2)).sum()

    grads = dict(tree_flatten(nn.value_and_grad(model, loss_fn)(model)[1]))
    assert all(np.isfinite(np.array(g)).all() for g in grads.values())
    return grads


def test_whole_model_formulations_and_checkpointing_agree(monkeypatch):
    model = tiny()
    model.train()
    audio, ids = (
        mx.random.normal((2, 1, 16, 30), key=mx.random.key(4)),
        mx.array([[5, 6, 7, 2]] * 2),
    )
    plain = gradients(model, audio, ids)
    variants = {}
    for mode in ("stage", "block"):
        model.enable_checkpointing(mode)
        variants[mode] = gradients(model, audio, ids)
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    assert all(s.checkpoint == "stage" for s in model.audio_encoder.layers)
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing
    monkeypatch.setattr(HTSATEncoder, "formulation", "reference")
    variants["reference"] = gradients(model, audio, ids)
    model.enable_checkpointing("stage")
    variants["reference-stage"] = gradients(model, audio, ids)
    assert len(plain) > 50
    for name, grads in variants.items():
        assert grads.keys() == plain.keys(), name
        for k, a in plain.items():
            close_at_scale(grads[k], a, err_msg=f"{name}: {k}")
    with pytest.raises(ValueError, match="'stage' or 'block'"):
        model.enable_checkpointing("layer")


@pytest.mark.parametrize("mode", ["stage", "block"])
def test_checkpointing_recomputes_the_forwards_dropout_masks(mode, monkeypatch):
    """NOTE [checkpointing replays the dropout masks]: with dropout on, the gradients of a
    checkpointed model are those of its own forward -- equal to the same forward with the
    activations kept (``mx.checkpoint`` as the identity) -- not of a forward with new masks
    (MLX's ``nn.utils.checkpoint`` redraws them: 2.6 % / 16 % off on the audio / text tower)."""
    model = tiny(dropout=0.3)
    model.train()
    model.enable_checkpointing(mode)
    audio, ids = (
        mx.random.normal((2, 1, 16, 30), key=mx.random.key(4)),
        mx.array([[5, 6, 7, 2]] * 2),
    )

    def run():
        mx.random.seed(123)

        def loss_fn(m):
            out = m(audio, ids)
            return (out["logits_per_audio"] * mx.arange(4).reshape(2, 2)).sum()

        loss, grads = nn.value_and_grad(model, loss_fn)(model)
        return loss.item(), dict(tree_flatten(grads)), int(mx.random.randint(0, 2**30).item())

    recomputed = run()
    monkeypatch.setattr(mx, "checkpoint", lambda fn: fn)
    kept = run()
    assert recomputed[0] == kept[0] and recomputed[2] == kept[2]  # same forward, same key after
    assert recomputed[1].keys() == kept[1].keys() and len(kept[1]) > 50
    for k, a in kept[1].items():
        np.testing.assert_allclose(
            np.array(recomputed[1][k]), np.array(a), rtol=1e-5, atol=1e-7, err_msg=k
        )


def test_dropout_outside_checkpointing_draws_as_mlx():
    """Outside a checkpointed call the CLAP's Dropout is ``nn.Dropout``, draw for draw."""
    x = mx.ones((64, 8))
    ours, theirs = Dropout(0.4), nn.Dropout(0.4)
    mx.random.seed(7)
    a = ours(x)
    mx.random.seed(7)
    b = theirs(x)
    assert mx.array_equal(a, b).item() and 0 < float((a == 0).mean().item()) < 1


def test_a_frozen_text_tower_is_outside_the_gradient():
    model = tiny()
    audio, ids = (
        mx.random.normal((2, 1, 16, 30), key=mx.random.key(4)),
        mx.array([[5, 6, 7, 2]] * 2),
    )
    trained = gradients(model, audio, ids)
    model.text_encoder.freeze()
    frozen = gradients(model, audio, ids)
    assert not any(k.startswith("text_encoder") for k in frozen)
    assert any(k.startswith("text_projection") for k in frozen)
    for k, a in frozen.items():
        np.testing.assert_allclose(
            np.array(a), np.array(trained[k]), rtol=1e-5, atol=1e-7, err_msg=k
        )
