"""Labels of AudioFolder / AudioManifest: a given class list, integer labels that never index
past ``classes``, the manifest forms people save (Excel's BOM, a JSON array, another label
column), and the files in a folder that are not data (macOS's ``._*``, ``__MACOSX``)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from mlx_audio.data import AudioFolder, AudioManifest, RandomCrop

RATE = 8000


def write(path, seconds=0.25):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.zeros(int(seconds * RATE), np.float32), RATE)


def test_integer_labels_never_index_past_the_classes(tmp_path):
    for i in range(4):
        write(tmp_path / f"{i}.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"{i}.wav,{i + 1}\n" for i in range(4)))
    data = AudioManifest(manifest)
    assert data.labels == [1, 2, 3, 4] and max(data.labels) < len(data.classes)
    assert data.classes == ["0", "1", "2", "3", "4"]
    manifest.write_text("path,label\n0.wav,-1\n1.wav,2\n")
    with pytest.raises(ValueError, match="-1 is not a class index"):
        AudioManifest(manifest)


def test_a_given_class_list_numbers_the_labels(tmp_path):
    for name in ("low", "mid"):
        write(tmp_path / "test" / name / "a.wav")
    data = AudioFolder(tmp_path / "test", classes=["high", "low", "mid"])
    assert data.classes == ["high", "low", "mid"] and data.targets == [1, 2]
    write(tmp_path / "test" / "owl" / "a.wav")
    with pytest.raises(ValueError, match=r"\['owl'\] are not among the classes"):
        AudioFolder(tmp_path / "test", classes=["high", "low", "mid"])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"path": "test/low/a.wav", "label": 2}\n{"path": "test/mid/a.wav", "label": "b"}\n'
    )
    assert AudioManifest(manifest, classes=["b", "2"]).labels == [1, 0]  # integers by name
    with pytest.raises(ValueError, match=r"labels \['b'\] are not among the classes \['1', '2'\]"):
        AudioManifest(manifest, classes=["1", "2"])


def test_manifests_as_people_save_them(tmp_path):
    write(tmp_path / "a.wav")
    write(tmp_path / "b.wav")
    excel = tmp_path / "excel.csv"
    excel.write_bytes("path,class\na.wav,dog\nb.wav,cat\n".encode("utf-8-sig"))  # BOM first
    data = AudioManifest(excel, label_column="class")
    assert data.columns == ["class", "path"] and data.classes == ["cat", "dog"]
    assert data.labels == [1, 0] and not AudioManifest(excel).has_label
    array = tmp_path / "m.json"
    array.write_text(json.dumps([{"path": "a.wav", "label": "x"}, {"path": "b.wav", "label": "y"}]))
    assert AudioManifest(array).labels == [0, 1]


def test_audio_folder_skips_what_macos_adds(tmp_path):
    write(tmp_path / "dog" / "a.wav")
    write(tmp_path / "cat" / "b.wav")
    (tmp_path / "dog" / "._a.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    write(tmp_path / "__MACOSX" / "dog" / "._a.wav")
    write(tmp_path / "cat" / ".hidden" / "c.wav")
    data = AudioFolder(tmp_path)
    assert data.classes == ["cat", "dog"] and len(data) == 2


def test_random_crop_without_padding_leaves_short_clips_for_the_collate():
    rng = np.random.default_rng(0)
    short = np.arange(5, dtype=np.float32)
    assert RandomCrop(8, pad=False)(short, rng=rng).tolist() == short.tolist()
    assert RandomCrop(3, pad=False)(np.arange(10), rng=rng).shape == (3,)
