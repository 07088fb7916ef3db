"""Property tests: whatever bytes a manifest, a journal or an image holds, the answer is a value
or the project's own error, in bounded time, with a bounded message, and nothing is written."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.dataset import JOURNAL, MANIFEST, MANIFEST_COLUMNS, DatasetError, DatasetStore, read_labelled_folder
from solver.drawing import CaptchaDrawer
from solver.errors import SolverError
from solver.imaging import ImageError, decode_image

FUZZ = settings(max_examples=300, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
IMAGE = CaptchaDrawer(width=60, height=24, font_sizes=(18,), seed=3).png("AB")
MESSAGE_LIMIT = 600

cell = st.one_of(st.text(max_size=12), st.sampled_from(
    ["a.png", "../a.png", "/etc/passwd", "", "true", "FALSE", "yes", "abc", "nan", "inf", "0.5",
     "1e309", "\ufeff", "\x00", "\ud800", "a,b", '"', "\r\n"]))
rows = st.lists(st.lists(cell, max_size=9), max_size=8)


def csv_bytes(header: list[str], body: list[list[str]], encoding_noise: bytes) -> bytes:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue().encode("utf-8", "surrogatepass") + encoding_noise


def fresh(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    if folder.exists():
        for path in folder.iterdir():
            path.unlink()
    folder.mkdir(exist_ok=True)
    (folder / "a.png").write_bytes(IMAGE)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@FUZZ
@given(header=st.one_of(st.just(list(MANIFEST_COLUMNS)), st.just(["file", "label"]),
                        st.lists(cell, max_size=8)),
       body=rows, noise=st.binary(max_size=6))
def test_any_manifest_opens_or_is_refused_and_read_only_opens_write_nothing(
        tmp_path: Path, header: list[str], body: list[list[str]], noise: bytes) -> None:
    folder = fresh(tmp_path, "manifest")
    (folder / MANIFEST).write_bytes(csv_bytes(header, body, noise))
    before = snapshot(folder)
    for open_it in (lambda: DatasetStore(folder, read_only=True).stats(),
                    lambda: read_labelled_folder(folder)):
        try:
            open_it()
        except DatasetError as error:
            assert len(str(error)) < MESSAGE_LIMIT
    assert snapshot(folder) == before


@FUZZ
@given(data=st.binary(max_size=400))
def test_any_bytes_as_a_manifest_or_a_journal(tmp_path: Path, data: bytes) -> None:
    for name in (MANIFEST, JOURNAL):
        folder = fresh(tmp_path, name)
        if name == JOURNAL:
            (folder / MANIFEST).write_text(",".join(MANIFEST_COLUMNS) + "\n")
        (folder / name).write_bytes(data)
        before = snapshot(folder)
        try:
            store = DatasetStore(folder, read_only=True)
        except DatasetError as error:
            assert len(str(error)) < MESSAGE_LIMIT
        else:
            assert len(store) >= 1  # the image is there, listed or recovered
        assert snapshot(folder) == before


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


@st.composite
def png_like(draw: st.DrawFn) -> bytes:
    """Bytes near a PNG: real headers with hostile sizes, depths and truncated or random data."""
    width = draw(st.integers(0, 70000))
    height = draw(st.integers(0, 70000))
    depth = draw(st.sampled_from([1, 2, 4, 8, 16, 3, 0]))
    colour = draw(st.sampled_from([0, 2, 3, 4, 6, 5]))
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    payload = draw(st.one_of(st.binary(max_size=64),
                             st.builds(zlib.compress, st.binary(max_size=256))))
    data = b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", payload) + png_chunk(b"IEND", b"")
    cut = draw(st.integers(0, len(data)))
    return data[:cut] if draw(st.booleans()) else data


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real captcha PNG (or its JPEG, GIF, BMP, WebP) with some bytes flipped or cut."""
    from PIL import Image

    kind = draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP"]))
    out = io.BytesIO()
    Image.open(io.BytesIO(IMAGE)).convert("RGB").save(out, kind)
    data = bytearray(out.getvalue())
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(1, len(data)))])


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), png_like(), mutated()))
def test_any_bytes_decode_to_an_image_or_an_image_error(data: bytes) -> None:
    try:
        image = decode_image(data, source="fuzz")
    except ImageError as error:
        assert len(str(error)) < MESSAGE_LIMIT
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert 0 < image.shape[0] <= 4096 and 0 < image.shape[1] <= 4096


@FUZZ
@given(data=st.one_of(png_like(), mutated()), label=st.text(max_size=10))
def test_adding_any_image_and_label_stores_both_or_nothing(tmp_path: Path, data: bytes,
                                                           label: str) -> None:
    folder = tmp_path / "store"
    store = DatasetStore(folder, "ABCDEFGH", (2, 6))
    before = len(store)
    try:
        added = store.add(data, label)
    except SolverError as error:
        assert len(str(error)) < MESSAGE_LIMIT
        assert len(store) == before
    else:
        assert (folder / added.entry.file).read_bytes() == data
        assert DatasetStore(folder).get(added.entry.file).label == added.entry.label
