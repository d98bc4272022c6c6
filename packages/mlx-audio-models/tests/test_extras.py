"""Optional dependencies are lazy extras; a missing one names the extra to install."""

import subprocess
import sys

import pytest

CASES = {
    "tokenizers": (
        "from mlx_audio.models.clap import ClapTokenizer\nClapTokenizer('tokenizer.json')",
        "mlx-audio-models[text]",
    ),
    "huggingface_hub": (
        "from mlx_audio.models.clap import CLAP\nCLAP.from_pretrained('laion/clap-htsat-unfused')",
        "mlx-audio-models[hub]",
    ),
}


@pytest.mark.parametrize("module", sorted(CASES))
def test_missing_extra_is_named(module, tmp_path):
    code, extra = CASES[module]
    script = (
        f"import sys\nsys.modules[{module!r}] = None\ntry:\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "except ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert extra in result.stdout, result.stdout + result.stderr


def test_import_stays_light():
    code = "import sys, mlx_audio.models, mlx_audio.models.clap; print(sorted(m for m in ('tokenizers', 'huggingface_hub', 'torch', 'transformers') if m in sys.modules))"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )
