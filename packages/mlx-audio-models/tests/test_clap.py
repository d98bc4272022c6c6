"""CLAP as users touch it: default build, input shapes, buffers, freezing, saving, the hub path,
bf16, checkpointing, zero-shot classification; and the CNN classifiers."""

import json
import os

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import TINY
from mlx.utils import tree_flatten

from mlx_audio.models.clap import CLAP, ClapConfig, ClapTokenizer, zero_shot_classify
from mlx_audio.models.cnn import AudioCNN, CNNClassifier


@pytest.fixture(scope="module")
def default_clap():
    return CLAP()


def tiny(fusion=False, dropout=0.1) -> CLAP:
    config = json.loads(json.dumps(TINY))
    config["audio_config"].update(
        enable_fusion=fusion, fusion_type="aff_2d" if fusion else None, hidden_dropout_prob=dropout
    )
    config["text_config"].update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return CLAP(ClapConfig.from_dict(config))


def test_default_is_htsat_unfused_with_tutorial_and_ten_second_inputs(default_clap):
    total = sum(v.size for _, v in tree_flatten(default_clap.parameters()))
    assert 153_000_000 < total < 154_000_000  # laion/clap-htsat-unfused: 153.5 M
    default_clap.eval()
    ids = mx.array(np.random.default_rng(0).integers(3, 50265, (2, 64)).astype(np.int32))
    for frames in (256, 1001):
        out = default_clap(
            mx.random.normal((2, 1, 64, frames)), ids, mx.ones((2, 64), dtype=mx.int32)
        )
        assert out["logits_per_audio"].shape == (2, 2) and out["audio_embeds"].shape == (2, 512)
        np.testing.assert_allclose(
            np.linalg.norm(np.array(out["text_embeds"]), axis=-1), 1.0, rtol=1e-5
        )


def test_index_buffers_are_not_parameters(default_clap):
    names = [k for k, _ in tree_flatten(default_clap.parameters())]
    assert not any("index" in n or "mask" in n or "position_ids" in n for n in names)
    assert any(n.endswith("relative_position_bias_table") for n in names)


def test_freezing_shows_in_trainable_parameters():
    model = tiny()
    total = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    model.text_encoder.freeze()
    text = sum(v.size for _, v in tree_flatten(model.text_encoder.parameters()))
    assert sum(v.size for _, v in tree_flatten(model.trainable_parameters())) == total - text
    model.audio_encoder.freeze()
    model.audio_projection.freeze()
    left = {k.split(".")[0] for k, _ in tree_flatten(model.trainable_parameters())}
    assert left == {"text_projection", "logit_scale_a", "logit_scale_t"}


def test_bad_inputs_are_explained():
    model = tiny()
    ids = mx.zeros((1, 4), dtype=mx.int32)
    with pytest.raises(ValueError, match="1 channel"):
        model(mx.zeros((1, 4, 16, 20)), ids)
    with pytest.raises(ValueError, match="exceed"):
        model(mx.zeros((1, 1, 16, 5000)), ids)
    with pytest.raises(ValueError, match="both audio and input_ids"):
        model(mx.zeros((1, 1, 16, 20)))


def test_save_and_load_pretrained_round_trip(tmp_path):
    model = tiny(fusion=True)
    model.eval()
    model.save_pretrained(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    keys = mx.load(str(tmp_path / "model.safetensors")).keys()
    assert any(k.startswith("audio_model.audio_encoder.") for k in keys) and any(
        k.startswith("text_model.") for k in keys
    )
    again = CLAP.from_pretrained(str(tmp_path))
    audio, ids = mx.random.normal((2, 4, 16, 30)), mx.array([[5, 6, 7, 2], [5, 6, 1, 1]])
    longer = mx.array([[True], [False]])
    a, b = model(audio, ids, None, longer), again(audio, ids, None, longer)
    np.testing.assert_allclose(
        np.array(a["logits_per_audio"]), np.array(b["logits_per_audio"]), atol=1e-6
    )


def test_repo_id_goes_through_huggingface_hub_to_a_local_cache(tmp_path, monkeypatch):
    """No network here: the repo's snapshot is placed in a local hub cache, read offline."""
    cache = tmp_path / "hub"
    snapshot = (
        cache
        / "models--laion--tiny-clap"
        / "snapshots"
        / "0123456789abcdef0123456789abcdef01234567"
    )
    tiny().save_pretrained(str(snapshot))
    (cache / "models--laion--tiny-clap" / "refs").mkdir()
    (cache / "models--laion--tiny-clap" / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import importlib

    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)
    model = CLAP.from_pretrained("laion/tiny-clap")
    assert model.config.audio_config.spec_size == 64


def test_bf16_inference_and_training_step():
    model = tiny()
    model.set_dtype(mx.bfloat16)
    audio, ids = (
        mx.random.normal((2, 1, 16, 30)).astype(mx.bfloat16),
        mx.array([[5, 6, 7, 2], [5, 6, 7, 2]]),
    )
    out = model(audio, ids)
    assert out["logits_per_audio"].dtype == mx.bfloat16

    def loss_fn(m):
        logits = m(audio, ids)["logits_per_audio"].astype(mx.float32)
        return mx.mean(nn.losses.cross_entropy(logits, mx.arange(2)))

    loss, grads = nn.value_and_grad(model, loss_fn)(model)
    assert np.isfinite(loss.item()) and all(
        np.isfinite(np.array(g.astype(mx.float32))).all() for _, g in tree_flatten(grads)
    )


def test_checkpointing_gives_the_same_gradients():
    model = tiny(dropout=0.0)  # no dropout, so the two runs match
    model.train()
    audio, ids = mx.random.normal((2, 1, 16, 30)), mx.array([[5, 6, 7, 2], [5, 6, 7, 2]])

    def loss_fn(m):
        return m(audio, ids)["logits_per_audio"].sum()

    _, plain = nn.value_and_grad(model, loss_fn)(model)
    model.enable_checkpointing()
    _, saved = nn.value_and_grad(model, loss_fn)(model)
    plain, saved = dict(tree_flatten(plain)), dict(tree_flatten(saved))
    assert plain and plain.keys() == saved.keys()  # a gradient for every parameter, both ways
    for k, a in plain.items():
        np.testing.assert_allclose(np.array(a), np.array(saved[k]), rtol=1e-4, atol=1e-6, err_msg=k)


def local_tokenizer(folder) -> str:
    """A small RoBERTa-style byte-level BPE built here (the real one lives in the model repo)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=90,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(
        ["this is a sound of dog barking", "this is a sound of rain", "cat meowing loudly"], trainer
    )
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    path = os.path.join(folder, "tokenizer.json")
    tokenizer.save(path)
    return path


def test_tokenizer_and_zero_shot_classification(tmp_path):
    local_tokenizer(tmp_path)
    tokenizer = ClapTokenizer.from_pretrained(str(tmp_path))
    tokens = tokenizer(["This is a sound of dog.", "rain"])
    assert (
        tokens["input_ids"].shape == tokens["attention_mask"].shape
        and tokens["input_ids"][0, 0] == 0
    )
    assert (
        tokens["attention_mask"][1].sum() < tokens["attention_mask"][0].sum()
        and tokens["input_ids"][1, -1] == 1
    )
    config = json.loads(json.dumps(TINY))
    config["text_config"]["vocab_size"] = tokenizer.tokenizer.get_vocab_size()
    model = CLAP(ClapConfig.from_dict(config))
    model.eval()
    probs = zero_shot_classify(
        model, mx.random.normal((3, 1, 16, 40)), ["dog", "rain", "cat"], tokenizer
    )
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(np.array(probs).sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="tokenizer"):
        zero_shot_classify(model, mx.zeros((1, 1, 16, 40)), ["dog"])


def test_cnn_classifiers():
    assert CNNClassifier()(mx.zeros((2, 28, 28))).shape == (2, 10)
    model = AudioCNN(num_classes=5)
    model.eval()
    for frames in (50, 301):
        assert model(mx.random.normal((3, 1, 64, frames))).shape == (3, 5)
    with pytest.raises(ValueError, match=r"\(batch, 1, n_mels, frames\)"):
        model(mx.zeros((3, 64, 50)))
