"""Captcha images: bytes or files to arrays, with limits, and a model's input.

Limits guard against what a page or an API client can send: a file that is
not an image, too many bytes, or a small file that decodes to a huge picture.
The header is read before any pixel is decoded.

    >>> from solver.drawing import CaptchaDrawer
    >>> image = decode_image(CaptchaDrawer(width=160, height=60).png("AB12"))
    >>> image.shape, image.dtype.name
    ((60, 160, 3), 'uint8')
    >>> to_model_input(image, height=32, width=96, channels=1).shape
    (32, 96, 1)
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np

from solver.errors import SolverError

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_SIDE = 4096
MAX_PIXELS = 4096 * 1024
#: an animated image (GIF, APNG, WebP) is read as all its frames laid over one another;
#: more frames than this, or more pixels over all frames, is refused
MAX_FRAMES = 64
MAX_ANIMATION_PIXELS = 4 * MAX_PIXELS


class ImageError(SolverError):
    """Bytes that are not a usable captcha image."""


def _describe(data: bytes) -> str:
    head = data[:12]
    return f"{len(data)} bytes starting with {head!r}"


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, without decoding pixels."""
    width, height, _ = _header(data)
    return width, height


def _header(data: bytes) -> tuple[int, int, int]:
    """(width, height, frames) without decoding pixels (frames: 1 for a still image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # the size is checked by the caller, against tighter limits
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if not getattr(image, "is_animated", False):
                    return width, height, 1
                if width * height == 0:
                    return width, height, 1
                # counting parses frame headers only; stop as soon as the count is too many
                frames = 1
                while frames <= MAX_FRAMES:
                    try:
                        image.seek(frames)
                    except EOFError:
                        break
                    frames += 1
                return width, height, frames
    except Image.DecompressionBombError:
        raise ImageError(f"the image is far too large for a captcha ({_describe(data)}; "
                         "crop it to the captcha)") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageError(f"not an image: {_describe(data)} (send PNG, JPEG, GIF, BMP or WebP "
                         "bytes; a page's HTML or an error message is not a captcha)") from None


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Decode image bytes to an RGB ``uint8`` array of shape (height, width, 3).

    Transparent pixels are laid over white, as a page shows them. An animated
    image (GIF, APNG, WebP) is read whole: its frames, each as shown, laid over
    one another darkest-first (:func:`darkest_frame`), for captchas whose
    frames each show part of the answer; at most :data:`MAX_FRAMES` frames.
    """
    if not data:
        raise ImageError(f"{source}: empty (0 bytes); the captcha was not loaded yet?")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{source}: {len(data)} bytes is more than the {MAX_IMAGE_BYTES} allowed "
                         "for one captcha (is this really a captcha image?)")
    width, height, frames = _header(data)
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(f"{source}: {width}x{height} pixels is too large for a captcha (at most "
                         f"{MAX_SIDE} a side and {MAX_PIXELS} pixels; crop it to the captcha)")
    if width == 0 or height == 0:
        raise ImageError(f"{source}: the image is empty ({width}x{height} pixels)")
    if frames > 1:
        if frames > MAX_FRAMES or frames * width * height > MAX_ANIMATION_PIXELS:
            shown = f"more than {MAX_FRAMES}" if frames > MAX_FRAMES else str(frames)
            raise ImageError(f"{source}: an animated image of {shown} frames of {width}x{height} "
                             f"pixels is too much for a captcha (at most {MAX_FRAMES} frames and "
                             f"{MAX_ANIMATION_PIXELS} pixels over all of them)")
        return darkest_frame(_frames_with_pillow(data, source))
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:  # formats OpenCV does not read (GIF): let Pillow do it
        array = _decode_with_pillow(data, source)
    else:
        array = _to_rgb(array)
    return array


def darkest_frame(frames: list[np.ndarray]) -> np.ndarray:
    """The frames of an animation laid over one another: each pixel the darkest it is in any
    frame. Text drawn dark on a light ground, a part in each frame, comes out whole.

        >>> left = np.full((1, 2, 3), 255, np.uint8); left[0, 0] = 0
        >>> right = np.full((1, 2, 3), 255, np.uint8); right[0, 1] = 0
        >>> darkest_frame([left, right])[0].tolist()
        [[0, 0, 0], [0, 0, 0]]
    """
    return np.minimum.reduce(frames)


def _frames_with_pillow(data: bytes, source: str) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    try:
        with Image.open(io.BytesIO(data)) as image:
            return [_over_white(np.asarray(frame.convert("RGBA")))
                    for frame in ImageSequence.Iterator(image)]
    except (OSError, ValueError) as error:
        raise ImageError(f"{source}: the image is corrupt ({error}); grab it again") from None


def _decode_with_pillow(data: bytes, source: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgba = np.asarray(image.convert("RGBA"))
    except (OSError, ValueError) as error:
        raise ImageError(f"{source}: the image is corrupt ({error}); grab it again") from None
    return _over_white(rgba)


def _to_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:  # 16-bit PNGs
        array = (array / 257).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    if array.shape[2] == 4:
        return _over_white(cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA))
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.rint(rgb).astype(np.uint8)


def _kind_of_file(mode: int) -> str:
    """What a non-regular file is, in words (for the error that refuses it)."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def read_image_file(path: str | os.PathLike[str], max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of an image file given by a user, refused beyond ``max_bytes``.

    Only a regular file is read: a device such as ``/dev/zero`` would be read
    without end, and a FIFO would block until something writes to it. It is
    opened without blocking and checked again once open (the path may have
    changed in between), and at most ``max_bytes + 1`` bytes are ever read.
    Every failure is an :class:`ImageError` that starts with the path.

        >>> try:
        ...     read_image_file("/dev/zero")
        ... except ImageError as error:
        ...     print(error)
        /dev/zero: not a regular file but a character device (give a captcha image file)
    """
    path = Path(path)

    def refuse_unless_regular(mode: int) -> None:
        if not stat.S_ISREG(mode):
            raise ImageError(f"{path}: not a regular file but {_kind_of_file(mode)} "
                             "(give a captcha image file)")

    def too_large(size: int) -> ImageError:
        return ImageError(f"{path}: {size} bytes is more than the {max_bytes} allowed for one "
                          "captcha (is this really a captcha image?)")

    try:
        refuse_unless_regular(os.stat(path).st_mode)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as file:
            status = os.fstat(file.fileno())
            refuse_unless_regular(status.st_mode)
            if status.st_size > max_bytes:
                raise too_large(status.st_size)
            data = file.read(max_bytes + 1)  # the file may grow after the fstat
    except OSError as error:
        raise ImageError(f"{path}: cannot read it ({error.strerror or error})") from None
    if len(data) > max_bytes:
        raise too_large(len(data))
    return data


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file to an RGB array, with the same limits as :func:`decode_image`.

    The file is read by :func:`read_image_file`: only a regular file, at most
    :data:`MAX_IMAGE_BYTES`.
    """
    return decode_image(read_image_file(path), source=str(path))


def model_pixels(image: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """An RGB ``uint8`` image as a model sees it, still ``uint8``: (H, W, C).

    The one preprocessing step, shared by training (real images and look-alikes)
    and solving, so that a model reads at solve time exactly the pixels it was
    trained on. Grayscale is OpenCV's (``COLOR_RGB2GRAY``); shrinking uses
    ``INTER_AREA``, growing ``INTER_LINEAR``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an RGB image of shape (height, width, 3), got {image.shape}")
    if channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif channels != 3:
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if image.shape[:2] != (height, width):
        shrinking = image.shape[0] > height or image.shape[1] > width
        image = cv2.resize(image, (width, height),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image.reshape(height, width, channels)


def normalise(pixels: np.ndarray) -> np.ndarray:
    """``uint8`` pixels (any shape) to the model's float32 in [0, 1]."""
    return pixels.astype(np.float32) / 255.0


def to_model_input(image: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """Resize an RGB ``uint8`` image to a model's input: float32 in [0, 1], (H, W, C)."""
    return normalise(model_pixels(image, height, width, channels))
