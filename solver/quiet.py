"""Third-party start-up banners kept off the terminal (the CLI's ``--verbose`` shows them).

LiteRT prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` when
an interpreter first allocates its tensors, and TensorFlow prints absl and
CUDA lines when it loads, all from native code straight to file descriptor 2:
no environment variable silences every one of them, nor can Python's
``sys.stderr`` catch them. :func:`native_stderr_filtered` points descriptor 2
at a temporary file for the length of such a call, then writes back every
line that is not a known banner (so a real error still shows) and logs the
banners at DEBUG level::

    with native_stderr_filtered():
        interpreter.allocate_tensors()

A process-wide lock keeps two threads from swapping descriptor 2 at once; what
other threads write to stderr meanwhile comes out when the call ends.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

#: lines that say nothing a user can act on: LiteRT's delegate, absl's preamble, TensorFlow's
#: CUDA probing and CPU-instruction notes on a machine without a GPU
BANNERS = (
    re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."),
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"[IWE]\d{4} [\d:.]+ +\d+ (cudart_stub|cpu_feature_guard|cuda_platform|cuda_dnn|cuda_fft"
               r"|cuda_blas|cuda_executor|port)\.cc:\d+\] .*"),
    re.compile(r"To enable the following instructions: .* rebuild TensorFlow with the appropriate "
               r"compiler flags\."),
    # Grappler's graph checker on the first step of a CTC model trained after one with another
    # number of time steps in the same process (the recipe choice, solver learn): TensorFlow's
    # CTC loop keeps the first model's shape in its signature. The step runs and trains as it
    # should (tests/test_training.py trains the second model to a reading), so it is not an error
    re.compile(r"loc\(\".*\"\): error: 'tfg\.While' op body function argument #\d+ type '[^']*' "
               r"is not compatible with corresponding operand type: '[^']*'"),
)

_show = False
_lock = threading.RLock()


def show_banners(show: bool) -> None:
    """Let the banners through (the CLI's ``--verbose`` and ``--debug``) or filter them (the default)."""
    global _show
    _show = show


def is_banner(line: str) -> bool:
    return any(pattern.fullmatch(line.rstrip("\r\n")) for pattern in BANNERS)


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """For the length of the block, keep known banners written to descriptor 2 off stderr."""
    if _show:
        yield
        return
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no descriptor 2 (a detached process): nothing to filter
            yield
            return
        try:
            with tempfile.TemporaryFile() as capture:
                os.dup2(capture.fileno(), 2)
                try:
                    yield
                finally:
                    try:
                        sys.stderr.flush()
                    except ValueError:
                        pass
                    os.dup2(saved, 2)
                    capture.seek(0)
                    _write_back(capture.read())
        finally:
            os.close(saved)


def _write_back(captured: bytes) -> None:
    kept = []
    for line in captured.decode("utf-8", "replace").splitlines(keepends=True):
        if is_banner(line):
            logger.debug("filtered: %s", line.rstrip())
        else:
            kept.append(line)
    data = "".join(kept).encode("utf-8", "replace")
    while data:
        data = data[os.write(2, data):]
