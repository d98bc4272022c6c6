"""ClapTokenizer: RoBERTa BPE from a model folder's ``tokenizer.json`` via ``tokenizers``."""

from __future__ import annotations

import os

import numpy as np

from mlx_audio.data.support import require


class ClapTokenizer:
    """``tokenizer(texts) -> {"input_ids": (B, L) int32, "attention_mask": (B, L) int32}``,
    padded to the longest text (or ``max_length``) and truncated at ``max_length``."""

    def __init__(self, tokenizer_file: str, max_length: int = 77, pad_token: str = "<pad>") -> None:
        tokenizers = require(
            "tokenizers",
            "ClapTokenizer needs the tokenizers package: pip install 'mlx-audio-models[text]'",
        )
        self.tokenizer = tokenizers.Tokenizer.from_file(tokenizer_file)
        self.max_length = max_length
        pad_id = self.tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"{tokenizer_file} has no {pad_token!r} token")
        self.pad_id = pad_id

    @classmethod
    def from_pretrained(cls, folder: str, max_length: int = 77) -> ClapTokenizer:
        path = os.path.join(folder, "tokenizer.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{folder} has no tokenizer.json")
        return cls(path, max_length=max_length)

    def __call__(
        self, texts: str | list[str], padding: str = "longest", max_length: int | None = None
    ) -> dict[str, np.ndarray]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        limit = max_length or self.max_length
        encoded = [self.tokenizer.encode(t).ids[:limit] for t in texts]
        width = limit if padding == "max_length" else max(len(e) for e in encoded)
        ids = np.full((len(texts), width), self.pad_id, dtype=np.int32)
        mask = np.zeros((len(texts), width), dtype=np.int32)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        return {"input_ids": ids, "attention_mask": mask}
