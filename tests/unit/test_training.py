"""Training for real, tiny: a small model learns a trivial captcha set well above chance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from solver.cli import main
from solver.drawing import CaptchaDrawer
from solver.profiles import load_profile
from solver.recognizers import Reading, Recognizer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = {"filters": (8, 16, 16, 16), "head_units": 32, "head_layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def profile_path(pair_profile_path: Path) -> Path:
    return pair_profile_path


@pytest.fixture(scope="module")
def trained(profile_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from solver.training.models import CTCConfig
    from solver.training.train import TrainOptions, train

    out = tmp_path_factory.mktemp("models") / "pair"
    result = train(TrainOptions(load_profile(profile_path), synthetic=1536, epochs=4,
                                batch_size=32, out=out, validation_synthetic=200, workers=1,
                                config=CTCConfig(height=24, width=48, **TINY), seed=1),
                   report=lambda line: None)
    assert result.epochs >= 1 and result.stopped_by in ("epochs", "early stopping")
    return out


def labelled_folder(folder: Path, profile_path: Path, count: int) -> Path:
    import random

    profile = load_profile(profile_path)
    drawer = CaptchaDrawer.from_settings(profile.synthetic, seed=42)  # the same pixels every run
    rng = random.Random(42)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        text = "".join(rng.choice("0123") for _ in range(2))
        (folder / f"{index:03d}.png").write_bytes(drawer.png(text))
        with (folder / "labels.csv").open("a") as manifest:
            if index == 0:
                manifest.write("file,label\n")
            manifest.write(f"{index:03d}.png,{text}\n")
    return folder


def accuracy_on(recognizer: Recognizer, folder: Path) -> tuple[float, list[Reading]]:
    rows = [line.split(",") for line in (folder / "labels.csv").read_text().split()[1:]]
    readings = recognizer.read_batch([(folder / name).read_bytes() for name, _ in rows])
    right = sum(r.text == label for r, (_, label) in zip(readings, rows))
    return right / len(rows), readings


def test_tiny_model_learns_far_above_chance(trained: Path, profile_path: Path,
                                            tmp_path: Path) -> None:
    recognizer = Recognizer(trained, load_profile(profile_path))
    accuracy, _ = accuracy_on(recognizer, labelled_folder(tmp_path / "fresh", profile_path, 100))
    assert accuracy > 0.5, f"sequence accuracy {accuracy:.0%} (chance is 1/16)"


def test_saved_model_describes_itself(trained: Path) -> None:
    import keras

    metadata = json.loads((trained / "metadata.json").read_text())
    assert metadata["charset"] == "0123" and metadata["blank_index"] == 4
    assert (metadata["input_height"], metadata["input_width"], metadata["input_channels"]) == (24, 48, 1)
    assert metadata["min_length"] == metadata["max_length"] == 2
    assert metadata["training"]["synthetic"] == 1536 and "tensorflow" in metadata["versions"]
    model = keras.models.load_model(trained / "model.keras", safe_mode=True)
    assert model.output_shape == (None, 12, 5)
    history = json.loads((trained / "history.json").read_text())["history"]
    assert history and all("val_sequence_accuracy" in h for h in history)


def test_a_colour_model_learns_and_reads_in_colour(profile_path: Path, tmp_path: Path) -> None:
    """--colour yes: look-alikes drawn, trained on and read back in RGB, end to end."""
    from solver.training.models import CTCConfig
    from solver.training.train import TrainOptions, train

    out = tmp_path / "colour"
    train(TrainOptions(load_profile(profile_path), synthetic=1536, epochs=4, batch_size=32,
                       out=out, validation_synthetic=200, workers=1, seed=1, colour="yes",
                       config=CTCConfig(height=24, width=48, **TINY)), report=lambda line: None)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["input_channels"] == metadata["arch_config"]["channels"] == 3
    recognizer = Recognizer(out, load_profile(profile_path))
    accuracy, _ = accuracy_on(recognizer, labelled_folder(tmp_path / "fresh", profile_path, 100))
    assert accuracy > 0.5, f"sequence accuracy {accuracy:.0%} (chance is 1/16)"


def _drawn_folder(folder: Path, count: int, **look: object) -> list:
    from solver.dataset import Sample

    drawer = CaptchaDrawer(width=120, height=40, font_sizes=(28,), noise_dots=20,
                           noise_curves=1, seed=7, **look)
    folder.mkdir(parents=True)
    samples = []
    for index in range(count):
        path = folder / f"{index}.png"
        path.write_bytes(drawer.png(f"{index % 10}{(index * 3) % 10}"))
        samples.append(Sample(path, f"{index % 10}{(index * 3) % 10}"))
    return samples


def test_colour_is_read_where_the_captchas_are_drawn_in_colour(tmp_path: Path) -> None:
    from solver.dataset import Sample
    from solver.training.data import colourful

    per_character = _drawn_folder(tmp_path / "stencil", 20, background="#dfe8f0",
                                  text_colours="random-dark", colour_per_character=True)
    gray = _drawn_folder(tmp_path / "gray", 20, background="#dfe8f0",
                         text_colours="random-dark", grayscale=True)
    jpeg = tmp_path / "jpeg"  # JPEG's chroma noise on gray images is no colour
    jpeg.mkdir()
    for sample in gray:
        image = cv2.imread(str(sample.path))
        cv2.imwrite(str(jpeg / (sample.path.stem + ".jpg")), image,
                    [cv2.IMWRITE_JPEG_QUALITY, 60])

    assert colourful(per_character)
    assert not colourful(gray)
    assert not colourful([Sample(path, "00") for path in sorted(jpeg.iterdir())])
    assert not colourful(per_character[:4])  # too few to tell: gray, as before


def test_a_gray_model_starts_a_colour_model_that_reads_exactly_as_it_did(tmp_path: Path) -> None:
    """Fine-tuning a colour model from the gray general model loses nothing at the start:
    the first kernels are spread over R, G and B in OpenCV's gray weights."""
    import keras
    import numpy as np

    from solver.imaging import to_model_input
    from solver.training.ctc import _load_weights
    from solver.training.models import CTCConfig, build_ctc_model

    keras.utils.set_random_seed(3)
    gray_config = CTCConfig(height=24, width=48, **TINY)
    _, gray = build_ctc_model(5, gray_config)
    (tmp_path / "gray").mkdir()
    gray.save(tmp_path / "gray" / "model.keras")
    colour_train, colour = build_ctc_model(5, CTCConfig(height=24, width=48, channels=3, **TINY))
    copied = _load_weights(colour_train, tmp_path / "gray")
    assert copied == sum(1 for layer in colour_train.layers if layer.get_weights())

    rgb = np.asarray(CaptchaDrawer(width=96, height=48, seed=2, text_colours="random",
                                   colour_per_character=True).image("3012").convert("RGB"))
    as_gray = gray.predict(to_model_input(rgb, 24, 48, 1)[None], verbose=0)
    as_colour = colour.predict(to_model_input(rgb, 24, 48, 3)[None], verbose=0)
    assert not np.allclose(as_gray, 1 / 5, atol=0.01)  # the untrained model does not read nothing
    # the gray input is rounded to whole levels; the colour model sees the unrounded sum
    np.testing.assert_allclose(as_colour, as_gray, atol=0.02)


def test_predict_and_eval_output(trained: Path, profile_path: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = labelled_folder(tmp_path / "set", profile_path, 30)
    site = ["--site", str(profile_path), "--model", str(trained)]
    assert main(["predict", *site, str(folder / "000.png"), str(folder / "001.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    file, text, confidence = lines[0].split("\t")
    assert file == str(folder / "000.png") and len(text) <= 3 and 0 <= float(confidence) <= 1
    assert main(["predict", *site, "--json", str(folder / "000.png")]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"file", "text", "confidence", "ms"}
    assert main(["eval", *site, "--data", str(folder), "--report", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "sequence accuracy" in out and "threshold  coverage  accuracy" in out
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["images"] == 30 and 0 <= metrics["sequence_accuracy"] <= 1
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {
        "metrics.json", "report.md", "coverage.png", "training.png"}


def test_resume_continues_from_the_last_epoch(profile_path: Path, tmp_path: Path) -> None:
    from solver.training.models import CTCConfig
    from solver.training.train import TrainOptions, train

    options = dict(synthetic=256, batch_size=32, out=tmp_path / "m", validation_synthetic=64,
                   workers=1, config=CTCConfig(height=24, width=48, **TINY), patience=99)
    first = train(TrainOptions(load_profile(profile_path), epochs=1, **options),
                  report=lambda line: None)
    assert first.epochs == 1
    lines: list[str] = []
    second = train(TrainOptions(load_profile(profile_path), epochs=3, resume=True, **options),
                   report=lines.append)
    assert second.epochs == 3 and [h["epoch"] for h in second.history] == [1, 2, 3]
    assert any("from epoch 2" in line for line in lines)


def test_ctrl_c_keeps_the_best_model_so_far(profile_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "solver", "train", "--site", str(profile_path),
               "--synthetic", "2048", "--epochs", "50", "--patience", "99", "--batch-size", "32",
               "--workers", "1", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               # a suite started with `cmd &` ignores SIGINT, and children inherit
                               # that: give the child Ctrl-C's meaning in a terminal
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("epoch 1/50"):
            process.send_signal(signal.SIGINT)
            break
    rest, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors
    assert "interrupted: keeping the best model so far" in rest
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["training"]["stopped_by"] == "interrupted"
    assert (out / "model.tflite").is_file()


def test_segment_pipeline_trains_and_reads(profile_path: Path, tmp_path: Path) -> None:
    from solver.training.train import TrainOptions, train

    out = tmp_path / "segmented"
    lines: list[str] = []
    train(TrainOptions(load_profile(profile_path), pipeline="segment", synthetic=400, epochs=6,
                       out=out, seed=2), report=lines.append)
    assert any(line.startswith("segmentation: ") and "kept after forcing" in line for line in lines)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["arch"] == "segment" and metadata["normalisation"] == "binary_crop"
    assert 0.2 <= metadata["arch_config"]["character_aspect"] <= 2.0
    assert 0.0 <= metadata["metrics"]["segmentation_kept_rate"] <= 1.0
    recognizer = Recognizer(out, load_profile(profile_path))
    accuracy, readings = accuracy_on(recognizer, labelled_folder(tmp_path / "fresh", profile_path, 60))
    assert accuracy > 0.3, f"sequence accuracy {accuracy:.0%} (chance is 1/16)"
    assert all(len(r.text) == 2 for r in readings)  # the forced count is the profile's length


def test_emphasis_draws_the_chosen_characters_more_often() -> None:
    from collections import Counter

    from solver.errors import UsageError
    from solver.profiles import profile_from_data
    from solver.training.synth import parse_emphasis, random_texts

    profile = profile_from_data({
        "name": "shop", "url": "http://127.0.0.1/", "captcha": {"selector": "img"},
        "form": {"input": "input", "submit": "button"},
        "format": {"charset": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "length": 4}})
    assert parse_emphasis("0O:3", profile.format.charset) == {"0": 3.0, "O": 3.0}
    assert parse_emphasis("0O", profile.format.charset) == {"0": 3.0, "O": 3.0}
    with pytest.raises(UsageError, match="'a' is not in the profile's charset"):
        parse_emphasis("0a:2", profile.format.charset)
    with pytest.raises(UsageError, match=r"write CHARS\[:WEIGHT\], e.g. 0O:3"):
        parse_emphasis("0O:x", profile.format.charset)
    plain = Counter("".join(random_texts(profile, 3000, 1)))
    boosted = Counter("".join(random_texts(profile, 3000, 1, {"0": 3.0, "O": 3.0})))
    share = lambda counts: (counts["0"] + counts["O"]) / sum(counts.values())  # noqa: E731
    assert 0.04 < share(plain) < 0.07  # 2 of 36
    assert 0.13 < share(boosted) < 0.18  # 6 of 40


def test_learning_curve_trains_per_size_and_saves_its_lists(profile_path: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = labelled_folder(tmp_path / "data", profile_path, 60)
    out = tmp_path / "curve"
    code = main(["eval", "--site", str(profile_path), "--data", str(folder), "--curve", "10,30,500",
                 "--steps", "8", "--test-fraction", "0.25", "--seed", "3", "--report", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "skipping sizes [500]: the training pool holds only 45 images" in printed
    record = json.loads((out / "curve.json").read_text())
    assert [p["labels"] for p in record["points"]] == [10, 30]
    assert all(p["test_images"] == 15 for p in record["points"])
    lists = {p.name: (p / "labels.csv").read_text().splitlines()[1:] for p in (out / "splits").iterdir()}
    assert len(lists["train_10"]) == 10 and lists["train_30"][:10] == lists["train_10"]  # nested
    assert not set(lists["test"]) & set(lists["train_30"])
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "models" / "train_30" / "metadata.json").is_file()


def test_epochs_of_a_large_set_are_capped_and_lookalikes_warped_afresh() -> None:
    import numpy as np

    from solver.training.data import MixedBatches
    from solver.training.synth import ImageSet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (640, 32, 88), dtype=np.uint8)
    labels = ["".join(rng.choice(list("AB0O"), 4)) for _ in range(640)]
    lookalikes = ImageSet(images, labels)
    empty = ImageSet(np.empty((0, 32, 88), np.uint8), [])

    def seen(batches: MixedBatches) -> set[bytes]:
        return {bytes(row) for index in range(len(batches))
                for row in (batches[index][0][..., 0] * 255).round().astype(np.uint8)
                .reshape(len(batches[index][0]), -1)}

    whole = MixedBatches(empty, lookalikes, "AB0O", 4, 32, 0.5, seed=1)
    assert len(whole) == 20
    capped = MixedBatches(empty, lookalikes, "AB0O", 4, 32, 0.5, seed=1, max_batches=5)
    assert len(capped) == 5  # 160 of the 640 an epoch
    first = seen(capped)
    capped.on_epoch_end()
    second = seen(capped)
    assert len(first) == len(second) == 160
    assert first != second  # each epoch a fresh random part, drawn from the whole set
    assert first | second <= {bytes(image.reshape(-1)) for image in images}

    plain_x, plain_y = whole[0]
    warped = MixedBatches(empty, lookalikes, "AB0O", 4, 32, 0.5, seed=1, augment_synthetic=0.5)
    warped_x, warped_y = warped[0]
    np.testing.assert_array_equal(plain_y, warped_y)  # the same images, in the same order
    assert warped_x.shape == plain_x.shape
    assert np.mean(np.abs(warped_x - plain_x)) > 0.05  # but warped


def test_train_command_takes_the_epoch_length_input_height_and_warps(
        profile_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pair"
    assert main(["train", "--site", str(profile_path), "--synthetic", "320", "--epochs", "2",
                 "--epoch-steps", "3", "--batch-size", "32", "--input-height", "24",
                 "--augment-lookalikes", "0.5", "--workers", "1", "--validation-lookalikes", "60",
                 "--out", str(out)]) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["input_height"] == 24 and metadata["input_width"] == 48  # 80x40 kept at 24 rows
    assert metadata["training"]["augment_lookalikes"] == 0.5
    assert metadata["metrics"]["validation_images"] == 60
    printed = capsys.readouterr().out
    assert "for up to 2 epochs of 3 batches" in printed  # not the set's 10
    assert "validation: 60 fresh look-alikes" in printed
    history = json.loads((out / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_fine_tuning_takes_more_rows_and_colour_than_its_start_had(
        trained: Path, profile_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--from a 24-row gray model, --input-height 32 --colour yes: every block's weights
    come along (the first spread over R, G and B); only the fold over the rows is new."""
    out = tmp_path / "taller"
    assert main(["train", "--site", str(profile_path), "--recipe", "manual", "--from", str(trained),
                 "--input-height", "32", "--colour", "yes", "--synthetic", "64", "--epochs", "1",
                 "--batch-size", "32", "--workers", "1", "--validation-lookalikes", "32",
                 "--out", str(out)]) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    assert (metadata["input_height"], metadata["input_width"], metadata["input_channels"]) == (
        32, 64, 3)
    import keras

    layers = keras.models.load_model(trained / "model.keras", safe_mode=True).layers
    with_weights = sum(1 for layer in layers if layer.get_weights())
    assert f"{with_weights - 1} layers copied" in capsys.readouterr().out  # all but fold_conv


def test_models_of_other_sizes_train_one_after_another_without_a_false_error(
        profile_path: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The recipe choice trains models of 24 and then 32 rows in one process: TensorFlow's
    graph checker says "error: 'tfg.While' op ..." on the second one's first step, though it
    trains as it should. The second learns, and no error line reaches the terminal."""
    from solver.training.models import CTCConfig
    from solver.training.train import TrainOptions, train

    folder = labelled_folder(tmp_path / "real", profile_path, 96)
    results = []
    for rows, width in ((24, 48), (32, 64)):
        results.append(train(TrainOptions(
            load_profile(profile_path), data=[folder], synthetic=1024, epochs=4, batch_size=32,
            out=tmp_path / f"rows{rows}", workers=1, seed=1,
            config=CTCConfig(height=rows, width=width, **TINY)), report=lambda line: None))
    assert [json.loads((r.model_dir / "metadata.json").read_text())["input_height"]
            for r in results] == [24, 32]
    assert results[1].best_accuracy > 0.5  # the 2-digit set of 4 characters: chance is 1/16
    captured = capfd.readouterr()
    assert "error:" not in captured.err and "tfg.While" not in captured.err


def test_bfloat16_training_saves_a_float32_model_that_reads(profile_path: Path,
                                                             tmp_path: Path) -> None:
    import keras

    from solver.training.models import CTCConfig
    from solver.training.train import TrainOptions, train

    out = tmp_path / "pair"
    train(TrainOptions(load_profile(profile_path), synthetic=1536, epochs=4, batch_size=32,
                       out=out, validation_synthetic=200, workers=1, precision="bfloat16",
                       config=CTCConfig(height=24, width=48, **TINY), seed=1),
          report=lambda line: None)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["training"]["precision"] == "bfloat16"
    saved = keras.models.load_model(out / "model.keras", safe_mode=True)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    recognizer = Recognizer(out, load_profile(profile_path))  # through the light (LiteRT) model
    accuracy, _ = accuracy_on(recognizer, labelled_folder(tmp_path / "fresh", profile_path, 100))
    assert accuracy > 0.5, f"sequence accuracy {accuracy:.0%} (chance is 1/16)"


def test_float32_copy_reads_as_the_bfloat16_model() -> None:
    import numpy as np

    from solver.training.models import CTCConfig, build_ctc_model, float32_copy

    config = CTCConfig(height=24, width=48, **TINY)
    model, inference = build_ctc_model(5, config, precision="bfloat16")
    assert model.get_layer("block0_conv").compute_dtype == "bfloat16"
    assert model.get_layer("logits_conv").compute_dtype == "float32"  # the loss sees float32
    images = np.random.default_rng(0).random((4, 24, 48, 1), dtype=np.float32)
    copy = float32_copy(model, 5, config)
    assert copy.get_layer("block0_conv").compute_dtype == "float32"
    np.testing.assert_allclose(copy.predict(images, verbose=0), inference.predict(images, verbose=0),
                               atol=0.05)
    with pytest.raises(ValueError, match="precision 'half'"):
        build_ctc_model(5, config, precision="half")


def test_train_command_refuses_an_empty_validation_set(profile_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--site", str(profile_path), "--validation-lookalikes", "0"])
    assert stopped.value.code == 2
    assert "--validation-lookalikes: 0 is too few: give at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(("image_height", "start_rows", "rows"), [
    (50, 32, 48),   # stencil, kaggle_v2: shrunk to 32 rows, 6 and G, 8 and B lose what tells them apart
    (42, 32, 40),   # dark_digits
    (35, 32, 32),   # trt_courts: no more rows than the captcha has, in steps of 8
    (24, 32, 32),   # rscaptcha: never fewer than the start model's
    (120, 32, 48),  # a large captcha: at most MAX_ROWS, for a CPU's sake
    (120, 64, 64),  # a start model with more rows keeps them
])
def test_a_fine_tuned_model_reads_as_many_rows_as_the_captcha_has(
        image_height: int, start_rows: int, rows: int) -> None:
    from solver.training.ctc import fine_tuning_rows

    assert fine_tuning_rows(image_height, start_rows) == rows
