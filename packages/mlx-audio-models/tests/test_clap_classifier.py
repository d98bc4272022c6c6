"""ClapAudioClassifier: the pretrained audio tower (CLAP.get_audio_features, weight for weight)
under a new linear head; the fusion variant takes is_longer."""

import json

import mlx.core as mx
import numpy as np
import pytest
from conftest import TINY
from mlx.utils import tree_flatten

from mlx_audio.models.clap import CLAP, ClapAudioClassifier, ClapConfig


def tiny(fusion=False) -> CLAP:
    config = json.loads(json.dumps(TINY))
    config["audio_config"].update(enable_fusion=fusion, fusion_type="aff_2d" if fusion else None)
    return CLAP(ClapConfig.from_dict(config))


@pytest.mark.parametrize("fusion", [False, True])
def test_from_pretrained_is_the_audio_tower_under_a_new_head(tmp_path, fusion):
    clap = tiny(fusion)
    clap.save_pretrained(str(tmp_path))
    clap = CLAP.from_pretrained(str(tmp_path))
    model = ClapAudioClassifier.from_pretrained(str(tmp_path), num_classes=5)
    model.eval()
    mels = TINY["audio_config"]["num_mel_bins"]
    audio = mx.random.normal((2, 4 if fusion else 1, mels, 40), key=mx.random.key(0))
    is_longer = mx.array([[True], [False]]) if fusion else None
    expected = clap.get_audio_features(audio, is_longer)
    np.testing.assert_allclose(
        np.array(model.backbone(audio, is_longer)), np.array(expected), atol=1e-6
    )
    assert model(audio, is_longer).shape == (2, 5)
    names = {k for k, _ in tree_flatten(model.parameters())}
    assert names == {
        f"backbone.{k}" for k, _ in tree_flatten(clap.parameters()) if k.startswith("audio_")
    } | {
        "head.weight",
        "head.bias",
    }
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        ClapAudioClassifier(clap.config, 0)


def test_checkpointing_the_classifier_changes_no_gradient():
    """The fine-tuning path has CLAP's checkpointing (and transformers' names for it)."""
    import mlx.nn as nn

    model = ClapAudioClassifier(tiny().config, num_classes=3)
    model.train()
    mels = TINY["audio_config"]["num_mel_bins"]
    audio = mx.random.normal((2, 1, mels, 40), key=mx.random.key(1))

    def grads():
        mx.random.seed(5)  # the same dropout masks whether recomputed or not
        loss = nn.value_and_grad(model, lambda m: m(audio).sum())(model)[1]
        return dict(tree_flatten(loss))

    assert not model.is_gradient_checkpointing
    plain = grads()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    monkey = mx.checkpoint
    try:
        mx.checkpoint = lambda fn: fn  # the same key draws, nothing recomputed
        kept = grads()
    finally:
        mx.checkpoint = monkey
    staged = grads()
    for k, a in kept.items():
        np.testing.assert_allclose(np.array(staged[k]), np.array(a), rtol=1e-5, atol=1e-7)
    assert plain.keys() == staged.keys()
    assert model.enable_checkpointing(False) is model and not model.is_gradient_checkpointing


def test_features_of_the_wrong_shape_name_the_expected_one():
    model = ClapAudioClassifier(tiny().config, num_classes=3)
    mels = TINY["audio_config"]["num_mel_bins"]
    with pytest.raises(ValueError, match=rf"n_mels = {mels} .*got shape \(2, 1, 40, {mels}\)"):
        model(mx.zeros((2, 1, 40, mels)))  # frames and mel bins swapped
