"""Model folders and the Recognizer, with a real (tiny, untrained) Keras model exported to LiteRT."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from solver.artifacts import ModelError, ModelMetadata, find_model, read_metadata, write_metadata
from solver.charset import Charset
from solver.drawing import CaptchaDrawer
from solver.imaging import decode_image
from solver.profiles import profile_from_data
from solver.recognizers import Recognizer

CHARSET = "0123456789"
HEIGHT, WIDTH = 32, 96


def tiny_ctc_model(classes: int, seed: int = 0):  # type: ignore[no-untyped-def]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((HEIGHT, WIDTH, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Permute((2, 1, 3))(x)
    x = keras.layers.Reshape((WIDTH // 2, (HEIGHT // 2) * 8))(x)
    outputs = keras.layers.Conv1D(classes, 3, padding="same", activation="softmax")(x)
    return keras.Model(inputs, outputs)


def profile(charset: str = CHARSET, length: list[int] | None = None):  # type: ignore[no-untyped-def]
    return profile_from_data({
        "name": "digits", "url": "http://127.0.0.1:8765/digits/",
        "captcha": {"selector": "img"}, "form": {"input": "#a", "submit": "#b"},
        "format": {"charset": charset, "length": length or [4, 4]},
    })


def metadata(**changes: object) -> ModelMetadata:
    base = {"name": "digits", "arch": "ctc", "charset": CHARSET, "case_sensitive": True,
            "blank_index": len(CHARSET), "input_height": HEIGHT, "input_width": WIDTH,
            "input_channels": 1, "min_length": 4, "max_length": 4,
            "profile_fingerprint": profile().fingerprint()}
    return ModelMetadata(**{**base, **changes})


@pytest.fixture(scope="module")
def keras_model():  # type: ignore[no-untyped-def]
    return tiny_ctc_model(len(CHARSET) + 1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, keras_model) -> Path:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("models") / "digits"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_keras_model(keras_model).convert())
    write_metadata(folder, metadata())
    return folder


def captchas(count: int) -> list[bytes]:
    drawer = CaptchaDrawer(width=120, height=45, font_sizes=(32,))
    return [drawer.png(f"{i:04d}") for i in range(count)]


def test_lite_model_reads_what_keras_reads(model_dir: Path, keras_model) -> None:  # type: ignore[no-untyped-def]
    recognizer = Recognizer(model_dir, profile())
    images = captchas(5)
    readings = recognizer.read_batch(images)
    batch = np.stack([recognizer.prepare(image) for image in images])
    lengths = (recognizer.metadata.min_length, recognizer.metadata.max_length)
    expected = Charset(CHARSET).decode_ctc_batch(keras_model.predict_on_batch(batch), lengths)
    assert [r.text for r in readings] == [text for text, _ in expected]
    for reading, (_, confidence) in zip(readings, expected):
        assert reading.confidence == pytest.approx(confidence, rel=1e-3, abs=1e-6)
        assert 0.0 <= reading.confidence <= 1.0 and reading.milliseconds > 0
    single = recognizer.read(images[2])  # batch size changes back and forth
    assert single.text == readings[2].text
    assert recognizer.read(decode_image(images[2])).text == readings[2].text  # arrays work too


def test_metadata_round_trip(model_dir: Path) -> None:
    assert read_metadata(model_dir) == metadata()
    data = json.loads((model_dir / "metadata.json").read_text())
    assert data["blank_index"] == 10 and data["format_version"] == 2 and data["arch"] == "ctc"


def test_a_version_1_folder_reads_with_its_config_typed(tmp_path: Path) -> None:
    """Version 1 named the arch ``pipeline`` and kept its config in ``training.config``
    (ctc) or ``segmentation`` (segment); both read as version 2's ``arch_config``."""
    from solver.archs import CTCConfig, SegmentConfig

    shipped = read_metadata(find_model("general"))  # a version 1 file, as shipped
    assert shipped.arch == "ctc" and isinstance(shipped.config, CTCConfig)
    assert (shipped.config.height, shipped.config.width) == (shipped.input_height, shipped.input_width)
    old = {"name": "digits", "pipeline": "segment", "charset": CHARSET, "case_sensitive": True,
           "blank_index": 10, "input_height": 32, "input_width": 32, "input_channels": 1,
           "min_length": 4, "max_length": 4, "normalisation": "binary_crop", "format_version": 1,
           "segmentation": {"character_aspect": 0.55, "crop_size": 32}}
    (tmp_path / "metadata.json").write_text(json.dumps(old))
    metadata = read_metadata(tmp_path)
    assert metadata.arch == "segment" and metadata.config == SegmentConfig(0.55, 32)


def test_an_unknown_arch_or_a_wrong_config_is_refused_with_the_fix(tmp_path: Path) -> None:
    write_metadata(tmp_path, metadata(arch="vit"))
    with pytest.raises(ModelError, match=r"arch 'vit' is not one of ctc, segment.*retrain"):
        read_metadata(tmp_path)
    write_metadata(tmp_path, metadata(arch_config={"filters": [32], "pools": 3}))
    with pytest.raises(ModelError, match=r"arch_config .* is not a ctc config"):
        read_metadata(tmp_path)


def test_model_that_does_not_fit_the_profile_is_refused(model_dir: Path) -> None:
    with pytest.raises(ModelError) as caught:
        Recognizer(model_dir, profile(charset="0123456789X", length=[4, 6]))
    assert str(caught.value) == (
        f"{model_dir}: this model does not fit profile 'digits': the model's charset "
        "'0123456789' differs from the profile's '0123456789X' (it lacks 'X'); the model reads "
        "4..4 characters, the profile wants 4..6 (retrain it with `solver train --site digits`, "
        "or use the profile it was trained for)")


def test_changed_look_only_warns(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    changed = profile().model_copy(update={"synthetic": profile().synthetic.model_copy(
        update={"noise_dots": 5})})
    with caplog.at_level(logging.WARNING):
        Recognizer(model_dir, changed)
    assert "was trained for another version of profile 'digits'" in caplog.text


def test_missing_and_broken_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no trained model here \(no metadata.json; train one "
                                         r"with `solver train --site nothing`"):
        Recognizer(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        read_metadata(broken)
    write_metadata(broken, metadata(blank_index=0))
    with pytest.raises(ModelError, match=r"blank_index 0 is not 10 \(the blank is the last class\)"):
        read_metadata(broken)
    write_metadata(broken, metadata())
    with pytest.raises(ModelError, match="the light model is missing"):
        Recognizer(broken)


def test_shapes_are_checked_against_the_metadata(model_dir: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "model.tflite").write_bytes((model_dir / "model.tflite").read_bytes())
    write_metadata(mixed, metadata(input_width=WIDTH * 2))
    with pytest.raises(ModelError, match=r"takes input \(32, 96, 1\), but its metadata says "
                                         r"\(32, 192, 1\)"):
        Recognizer(mixed)
    write_metadata(mixed, metadata(charset="0123456789AB", blank_index=12))
    with pytest.raises(ModelError, match="has 11 output classes, but its charset needs 13"):
        Recognizer(mixed)
