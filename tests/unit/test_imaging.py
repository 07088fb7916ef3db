"""Image decoding with limits, transparency, and a model's input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from solver.drawing import CaptchaDrawer
from solver.imaging import ImageError, decode_image, read_image, to_model_input


def encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_png_jpeg_gif_decode_to_rgb() -> None:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200  # red
    for fmt in ("PNG", "BMP", "GIF", "JPEG", "WEBP"):
        image = decode_image(encode(rgb, fmt))
        assert image.shape == (20, 30, 3), fmt
        assert abs(int(image[5, 5, 0]) - 200) < 8 and image[5, 5, 2] < 8, fmt


def test_transparent_pixels_lie_over_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 255)
    image = decode_image(encode(rgba, "PNG"))
    assert image[0, 0].tolist() == [0, 0, 0]
    assert image[3, 3].tolist() == [255, 255, 255]


def test_not_an_image_is_explained() -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(b"<html>Forbidden</html>")
    assert str(caught.value) == (
        "not an image: 22 bytes starting with b'<html>Forbid' (send PNG, JPEG, GIF, BMP or "
        "WebP bytes; a page's HTML or an error message is not a captcha)")
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG of a huge, blank picture that compresses to a few kilobytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = zlib.compress(b"\x00" * (width + 1) * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = huge_png(10_000, 5_000)
    assert len(data) < 200_000
    with pytest.raises(ImageError) as caught:
        decode_image(data, source="upload")
    assert str(caught.value) == ("upload: 10000x5000 pixels is too large for a captcha (at most "
                                 "4096 a side and 4194304 pixels; crop it to the captcha)")


def test_pillow_sized_bombs_are_refused_too() -> None:
    with pytest.raises(ImageError, match="too large for a captcha"):
        decode_image(huge_png(12_000, 12_000))  # 144 MP: past Pillow's warning threshold
    with pytest.raises(ImageError, match="far too large for a captcha"):
        decode_image(huge_png(20_000, 20_000))  # 400 MP: Pillow refuses it outright


def test_truncated_image_is_an_error(tmp_path: Path) -> None:
    data = CaptchaDrawer().png("AB12")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        read_image(path)


def test_model_input_shapes_and_range() -> None:
    image = decode_image(CaptchaDrawer(width=160, height=60).png("Q7X9"))
    gray = to_model_input(image, height=32, width=128, channels=1)
    assert gray.shape == (32, 128, 1) and gray.dtype == np.float32
    assert 0.0 <= gray.min() < gray.max() <= 1.0
    color = to_model_input(image, height=60, width=160, channels=3)
    assert np.allclose(color * 255, image, atol=0.5)
    expected = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    assert np.allclose(to_model_input(image, 60, 160, 1)[..., 0] * 255, expected, atol=0.5)


def test_read_image_file_reads_a_regular_file_within_the_limit(tmp_path: Path) -> None:
    from solver.imaging import MAX_IMAGE_BYTES, read_image_file

    data = CaptchaDrawer().png("AB12")
    (tmp_path / "a.png").write_bytes(data)
    assert read_image_file(tmp_path / "a.png") == data
    big = tmp_path / "big.png"
    with big.open("wb") as sparse:  # sparse: no disk space used
        sparse.truncate(MAX_IMAGE_BYTES + 1)
    with pytest.raises(ImageError) as caught:
        read_image_file(big)
    assert str(caught.value) == (
        f"{big}: {MAX_IMAGE_BYTES + 1} bytes is more than the {MAX_IMAGE_BYTES} allowed for one "
        "captcha (is this really a captcha image?)")
    with pytest.raises(ImageError, match=r"big.png: .* more than the 10 allowed"):
        read_image_file(big, max_bytes=10)


def test_read_image_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    """A device would be read without end, a FIFO would block: both are refused unread."""
    import os

    from solver.imaging import read_image_file

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {fifo: "a FIFO", Path("/dev/zero"): "a character device", tmp_path: "a folder"}
    for path, kind in cases.items():
        with pytest.raises(ImageError) as caught:
            read_image_file(path)
        assert str(caught.value) == f"{path}: not a regular file but {kind} (give a captcha image file)"
        with pytest.raises(ImageError, match="not a regular file"):
            read_image(path)
    with pytest.raises(ImageError, match=r"nothing.png: cannot read it \(No such file or directory\)"):
        read_image_file(tmp_path / "nothing.png")


def _gif(frames: list, duration: int = 100) -> bytes:
    import io

    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=duration, disposal=1, optimize=False)
    return out.getvalue()


def test_an_animated_gif_is_read_as_its_frames_darkest_composite() -> None:
    import numpy as np
    from PIL import Image

    from solver.imaging import decode_image

    left, right = Image.new("L", (8, 2), 255), Image.new("L", (8, 2), 255)
    left.paste(0, (0, 0, 4, 2))  # the left half dark in the first frame only
    right.paste(0, (4, 0, 8, 2))  # the right half in the second
    image = decode_image(_gif([left.convert("P"), right.convert("P")]))
    assert image.shape == (2, 8, 3) and int(image.max()) == 0  # all of it, dark


def test_an_animation_with_too_many_frames_is_refused() -> None:
    from PIL import Image

    from solver.imaging import MAX_FRAMES, ImageError, decode_image

    frames = [Image.new("P", (8, 8), i % 2) for i in range(MAX_FRAMES + 40)]
    with pytest.raises(ImageError, match=rf"an animated image of more than {MAX_FRAMES} frames of "
                       r"8x8 pixels is too much for a captcha"):
        decode_image(_gif(frames))
