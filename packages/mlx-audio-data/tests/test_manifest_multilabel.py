"""AudioManifest's multi-label manifests: a `labels` column of `;`-separated class names gives
multi-hot float32 targets over the sorted names (or given classes); mistakes are one message."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mlx_audio.data import AudioManifest, DataLoader


@pytest.fixture
def folder(tmp_path):
    for i in range(4):
        sf.write(tmp_path / f"{i}.wav", np.zeros(800, np.float32), 16000)
    return tmp_path


def write(folder, text, name="m.csv"):
    (folder / name).write_text(text)
    return folder / name


def test_labels_column_gives_multi_hot_targets(folder):
    path = write(folder, "path,labels\n0.wav,dog;cat\n1.wav,cat\n2.wav,\n3.wav, bird ;dog\n")
    data = AudioManifest(path)
    assert data.multilabel and data.classes == ["bird", "cat", "dog"]
    assert data.labels == [[1, 2], [1], [], [0, 2]]
    np.testing.assert_array_equal(data[3][1], np.array([1, 0, 1], np.float32))
    assert data[2][1].dtype == np.float32 and not data[2][1].any()  # no label: all zeros
    waves, targets = next(iter(DataLoader(data, batch_size=4)))
    assert tuple(targets.shape) == (4, 3)


def test_jsonl_custom_separator_and_given_classes(folder):
    path = write(
        folder, '{"path": "0.wav", "tags": "a|b"}\n{"path": "1.wav", "tags": "b"}\n', "m.jsonl"
    )
    data = AudioManifest(path, labels_column="tags", label_separator="|", classes=["b", "a", "c"])
    np.testing.assert_array_equal(data[0][1], np.array([1, 1, 0], np.float32))
    with pytest.raises(ValueError, match=r"labels \['a'\] are not among the classes \['b', 'c'\]"):
        AudioManifest(path, labels_column="tags", label_separator="|", classes=["b", "c"])


def test_label_and_labels_together_are_refused(folder):
    path = write(folder, "path,label,labels\n0.wav,dog,dog;cat\n")
    with pytest.raises(ValueError, match="both a 'label' column .* and a 'labels' column"):
        AudioManifest(path)
