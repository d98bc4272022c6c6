"""Our CLAP vs transformers' ClapModel on the same HF-format weights (fp32, CPU): < 1e-4."""

import json

import mlx.core as mx
import numpy as np
import pytest
from conftest import tiny_config

from mlx_audio.models.clap import CLAP

REFERENCE = """
import json, sys, numpy as np, torch
from transformers import ClapConfig, ClapModel
folder, config, frames, batch = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
model = ClapModel(ClapConfig(**config)).eval()
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.02)   # non-zero position biases, scales...
mels = model.config.audio_config.num_mel_bins
channels = 4 if model.config.audio_config.enable_fusion else 1
feats = torch.randn(batch, channels, frames, mels)
ids = torch.randint(3, model.config.text_config.vocab_size, (batch, 12))
mask = torch.ones(batch, 12, dtype=torch.long)
ids[-1, 7:] = 1; mask[-1, 7:] = 0                       # a padded caption
is_longer = torch.tensor([[i % 2 == 0] for i in range(batch)])
with torch.no_grad():
    out = model(input_features=feats, input_ids=ids, attention_mask=mask, is_longer=is_longer if channels == 4 else None)
model.save_pretrained(folder)
np.savez(folder + "/io.npz", feats=feats.numpy(), ids=ids.numpy(), mask=mask.numpy(), is_longer=is_longer.numpy(),
         **{k: getattr(out, k).numpy() for k in ("audio_embeds", "text_embeds", "logits_per_audio", "logits_per_text")})
"""


def compare(folder) -> dict[str, float]:
    io = np.load(f"{folder}/io.npz")
    model = CLAP.from_pretrained(str(folder))
    fusion = model.config.audio_config.enable_fusion
    out = model(
        mx.array(io["feats"]).transpose(0, 1, 3, 2),
        mx.array(io["ids"]),
        mx.array(io["mask"]),
        mx.array(io["is_longer"]) if fusion else None,
    )
    return {
        k: float(np.abs(np.array(out[k]) - io[k]).max())
        for k in ("audio_embeds", "text_embeds", "logits_per_audio", "logits_per_text")
    }


@pytest.mark.parametrize(
    "fusion, stride, frames",
    [(False, 2, 50), (True, 2, 50), (False, [2, 2], 256), (True, 2, 256)],
    ids=["unfused", "fused", "unfused-tuple-stride-full-length", "fused-full-length"],
)
def test_tiny_configs_match_transformers(anchor, tmp_path, fusion, stride, frames):
    anchor(REFERENCE, str(tmp_path), tiny_config(fusion, stride), str(frames), "3")
    errors = compare(tmp_path)
    print("max abs errors:", errors)
    assert max(errors.values()) < 1e-4, errors


def test_default_htsat_unfused_size_matches_once(anchor, tmp_path):
    anchor(REFERENCE, str(tmp_path), json.dumps({}), "1001", "2")
    errors = compare(tmp_path)
    print("max abs errors (htsat-unfused size):", errors)
    assert max(errors.values()) < 1e-4, errors


INIT_REFERENCE = """
import json, sys, numpy as np, torch
from transformers import ClapConfig, ClapModel
torch.manual_seed(0)
model = ClapModel(ClapConfig(**json.loads(sys.argv[2])))
stats = {k: [float(v.float().std()) if v.numel() > 1 else 0.0, float(v.float().mean()), v.numel()] for k, v in model.state_dict().items()
         if v.is_floating_point()}
json.dump(stats, open(sys.argv[1], "w"))
"""


@pytest.mark.parametrize("fusion", [False, True], ids=["unfused", "fused"])
def test_initial_weights_are_drawn_as_transformers_draws_them(anchor, tmp_path, fusion):
    """Each parameter's spread and centre at initialization equal transformers' (its
    ``_init_weights``): the same std, within sampling error where there are enough values to tell; exact zeros
    and ones for biases, norms and relative-position tables. Training a CLAP from scratch
    depends on it (examples/clap_zero_shot.py)."""
    from mlx.utils import tree_flatten

    from mlx_audio.models.clap import ClapConfig
    from mlx_audio.models.clap.weights import mlx_to_hf

    config = tiny_config(fusion)
    anchor(INIT_REFERENCE, str(tmp_path / "stats.json"), config)
    reference = json.loads((tmp_path / "stats.json").read_text())
    mx.random.seed(0)
    ours = mlx_to_hf(
        dict(tree_flatten(CLAP(ClapConfig.from_dict(json.loads(config))).parameters()))
    )
    checked = 0
    for name, value in ours.items():
        if name not in reference:
            continue
        std, mean, count = reference[name]
        got = np.array(value, dtype=np.float64)
        if std == 0.0:
            assert np.all(got == mean), name
        elif count >= 256:
            # both are samples: 5 standard errors of two std estimates (22 % at 256 values)
            assert abs(got.std() - std) <= 5 * std / np.sqrt(count), (name, got.std(), std)
            assert abs(got.mean()) <= 4 * std / np.sqrt(count), (name, got.mean())
        checked += 1
    assert checked >= 0.9 * len(ours), (checked, len(ours))


@pytest.mark.parametrize("fusion", [False, True], ids=["unfused", "fused"])
def test_every_swin_variant_matches_transformers(anchor, tmp_path, monkeypatch, fusion):
    """The window-major layout, transformers' own formulation (swin_reference.py) and a model
    with gradient checkpointing enabled (inactive in eval mode, as in transformers)."""
    from mlx_audio.models.clap.audio import HTSATEncoder

    anchor(REFERENCE, str(tmp_path), tiny_config(fusion), "50", "3")
    for formulation in ("windows", "reference"):
        monkeypatch.setattr(HTSATEncoder, "formulation", formulation)
        errors = compare(tmp_path)
        assert max(errors.values()) < 1e-4, (formulation, errors)
    monkeypatch.setattr(
        CLAP, "eval", lambda self: CLAP.train(self, False).enable_checkpointing("stage")
    )
    errors = compare(tmp_path)
    assert max(errors.values()) < 1e-4, ("checkpointing", errors)
