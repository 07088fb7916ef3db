"""Errors of `solver predict` and `--port`: one paragraph with the fix, never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from solver.cli import main

ROOT = Path(__file__).resolve().parents[2]
PROFILES = str(ROOT / "solver" / "shipped" / "profiles")
MODELS = str(ROOT / "solver" / "shipped" / "models")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "solver", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


# --------------------------------------------------------------------- --port

PORT_VERBS = [["serve"], ["site", "serve"], ["label", "--site", "example"], ["demo"]]


@pytest.mark.parametrize("verb", PORT_VERBS, ids=lambda verb: " ".join(verb[:2]))
@pytest.mark.parametrize("port", ["99999", "-5", "http"])
def test_a_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                              verb: list[str], port: str) -> None:
    with pytest.raises(SystemExit) as usage:
        main([*verb, "--port", port])
    assert usage.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f": error: argument --port: {port} is not a port (use 0-65535; 0 picks a free one)")


def test_a_busy_port_is_one_line_for_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--profiles-dir", PROFILES, "--port", str(port)]) == 1
    assert capsys.readouterr().err == (
        f"error: port {port} on 127.0.0.1 is already in use (stop whatever listens there, or "
        "choose another port with --port, or --port 0 for any free one)\n")


# --------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def captcha(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A look-alike of the example style that the shipped model reads."""
    from solver.drawing import CaptchaDrawer
    from solver.profiles import load_profile

    drawer = CaptchaDrawer.from_settings(load_profile(Path(PROFILES) / "example.yaml").synthetic,
                                         seed=3)
    path = tmp_path_factory.mktemp("captcha") / "good.png"
    path.write_bytes(drawer.png("AB12"))
    return path


def predict(*files: str | Path, json_output: bool = False) -> list[str]:
    return ["predict", "--site", "example", "--profiles-dir", PROFILES, "--models-dir", MODELS,
            *(["--json"] if json_output else []), *map(str, files)]


def test_predict_reads_the_good_files_and_names_the_bad_ones(
        capsys: pytest.CaptureFixture[str], captcha: Path, tmp_path: Path) -> None:
    text = tmp_path / "note.png"
    text.write_text("not an image\n")
    missing = tmp_path / "missing.png"
    assert main(predict(captcha, text, missing, tmp_path, captcha)) == 1
    out, err = capsys.readouterr()
    rows = [line.split("\t") for line in out.splitlines()]
    assert [row[0] for row in rows] == [str(captcha), str(captcha)]
    assert all(len(row) == 3 and float(row[2]) > 0 for row in rows)
    assert err.splitlines() == [
        f"error: {text}: not an image: 13 bytes starting with b'not an image' (send PNG, JPEG, "
        "GIF, BMP or WebP bytes; a page's HTML or an error message is not a captcha)",
        f"error: {missing}: cannot read it (No such file or directory)",
        f"error: {tmp_path}: not a regular file but a folder (give a captcha image file)",
        "error: 3 of 5 files could not be read (see above)",
    ]


def test_predict_json_stays_valid_with_a_bad_file(capsys: pytest.CaptureFixture[str],
                                                  captcha: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    assert main(predict(captcha, missing, json_output=True)) == 1
    out, err = capsys.readouterr()
    good, bad = json.loads(out)
    assert good["file"] == str(captcha) and set(good) == {"file", "text", "confidence", "ms"}
    assert bad == {"file": str(missing), "error": f"{missing}: cannot read it "
                   "(No such file or directory)"}
    assert f"error: {missing}: cannot read it" in err
    assert main(predict(missing, json_output=True)) == 1  # one file: one object, as on success
    assert json.loads(capsys.readouterr().out) == bad
    assert main(predict(captcha, json_output=True)) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"file", "text", "confidence", "ms"}


def test_predict_refuses_endless_and_blocking_files(captcha: Path, tmp_path: Path) -> None:
    """/dev/zero would be read until memory runs out, and a FIFO would wait for ever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = run_cli(*predict(captcha, "/dev/zero", fifo), timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith(f"{captcha}\t")
    assert "Traceback" not in done.stderr
    assert ("error: /dev/zero: not a regular file but a character device (give a captcha image "
            "file)") in done.stderr
    assert f"error: {fifo}: not a regular file but a FIFO (give a captcha image file)" in done.stderr
