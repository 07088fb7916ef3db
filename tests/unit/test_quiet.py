"""solver.quiet: known banners written to descriptor 2 are dropped, everything else is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from solver.quiet import is_banner

BANNERS = [
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796213783.549579   12772 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "I0000 00:00:1796213783.655329   12772 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with "
    "the appropriate compiler flags.",
    "E0000 00:00:1796213790.713897   12772 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "loc(\"compile_loss/ctc/ctc_loss_dense/While_1@__inference_one_step_on_data_41490\"): error: "
    "'tfg.While' op body function argument #7 type 'tensor<28x?xf32>' is not compatible with "
    "corresponding operand type: 'tensor<44x?xf32>'",
]


@pytest.mark.parametrize("line", BANNERS)
def test_banners_are_recognised(line: str) -> None:
    assert is_banner(line) and is_banner(line + "\n")


@pytest.mark.parametrize("line", [
    "error: models/shop: no trained model here",
    "WARNING solver.page: waited 10.0 s for a new captcha",
    "E0000 00:00:1796213790.713897   12772 model_builder.cc:52] the model file is corrupt",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU. and more",
    "loc(\"model/conv\"): error: 'tfg.Conv2D' op operand #0 has an invalid type",
])
def test_other_lines_are_not(line: str) -> None:
    assert not is_banner(line)


CHILD = r"""
import os, sys
from solver import quiet
quiet.show_banners(sys.argv[1] == "show")
print("before", file=sys.stderr, flush=True)
with quiet.native_stderr_filtered():
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    os.write(2, b"a real problem\n")
    with quiet.native_stderr_filtered():  # nested
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        print("from python", file=sys.stderr)
print("after", file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize("mode", ["filter", "show"])
def test_descriptor_two_is_filtered_then_restored(mode: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    if mode == "filter":
        assert lines == ["before", "a real problem", "from python", "after"]
    else:
        assert lines == ["before", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
                         "a real problem", "WARNING: All log messages before absl::InitializeLog() "
                         "is called are written to STDERR", "from python", "after"]


def test_threads_take_turns(capfd: pytest.CaptureFixture[str]) -> None:
    """Two threads in the filter at once would leave descriptor 2 on a closed file; they wait."""
    from solver.quiet import native_stderr_filtered

    before = os.fstat(2).st_ino

    def write(text: bytes) -> None:
        for _ in range(20):
            with native_stderr_filtered():
                os.write(2, text)

    threads = [threading.Thread(target=write, args=(f"line {n}\n".encode(),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert os.fstat(2).st_ino == before
    assert sorted(capfd.readouterr().err.splitlines()) == sorted(
        f"line {n}" for n in range(4) for _ in range(20))
