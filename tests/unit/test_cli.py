"""The `solver` command line: verbs, exit statuses, and errors without tracebacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from solver.cli import main

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "solver" / "shipped" / "profiles"


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "solver", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def test_profiles_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "example" ).mkdir()
    (tmp_path / "example" / "metadata.json").write_text("{}")
    assert main(["profiles", "list", "--profiles-dir", str(PROFILES),
                 "--models-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "URL", "PIPELINE", "MODEL", "PROFILE"]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    # the local model shadows the shipped one; digits has only the shipped one
    assert rows["example"] == ["example", "http://127.0.0.1:8765/example/", "ctc",
                               str(tmp_path / "example"), "shipped"]
    assert rows["digits"][-2:] == ["shipped", "shipped"]
    assert rows["canvas"][-2:] == ["no", "shipped"]
    assert set(rows) == {p.stem for p in PROFILES.glob("*.yaml")}
    assert lines[-1].startswith(f"(looked in {PROFILES}/ and {tmp_path}/, then the shipped ones in ")


def test_profiles_list_says_where_each_comes_from(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    """A profile in the profiles folder shadows the shipped one of that name; the rest are shipped."""
    data = yaml.safe_load((PROFILES / "digits.yaml").read_text())
    (tmp_path / "digits.yaml").write_text(yaml.safe_dump({**data, "url": "http://127.0.0.1:1/own/"}))
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump({**data, "name": "shop"}))
    assert main(["profiles", "list", "--profiles-dir", str(tmp_path),
                 "--models-dir", str(tmp_path / "none")]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert rows["digits"] == ["digits", "http://127.0.0.1:1/own/", "ctc", "shipped",
                              str(tmp_path / "digits.yaml")]
    assert rows["shop"][-2:] == ["no", str(tmp_path / "shop.yaml")]
    assert rows["example"][-2:] == ["shipped", "shipped"]
    from solver.profiles import ProfileRegistry

    assert ProfileRegistry(tmp_path).load("digits").url == "http://127.0.0.1:1/own/"
    assert ProfileRegistry(tmp_path, shipped=False).names() == ["digits", "shop"]


def test_profiles_list_flags_invalid_files(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("url: [\n")
    assert main(["profiles", "list", "--profiles-dir", str(tmp_path)]) == 1
    assert "(invalid: run `solver profiles check" in capsys.readouterr().out


def test_profiles_check_prints_every_problem(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load((PROFILES / "example.yaml").read_text())
    data.pop("name")
    data["captcha"]["capture"] = "pixels"
    data["format"]["length"] = [7, 2]
    bad.write_text(yaml.safe_dump(data))
    status = main(["profiles", "check", str(PROFILES / "example.yaml"), str(bad)])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out == [
        f"{PROFILES / 'example.yaml'}: ok",
        f"{bad}: captcha.capture: 'pixels' is not one of auto, src, data-uri, canvas, background, "
        "screenshot (use one of them)",
        f"{bad}: format.length: min 7 is greater than max 2 (write [2, 7])",
        "1 valid, 1 invalid",
    ]


def test_profiles_check_all_shipped_pass(capsys: pytest.CaptureFixture[str]) -> None:
    paths = sorted(str(p) for p in PROFILES.glob("*.yaml"))
    assert main(["profiles", "check", *paths]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{len(paths)} valid, 0 invalid"


def test_profiles_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "solver site profile"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"url", "captcha", "form", "format"}


def test_profiles_show_fills_defaults(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    minimal = {"url": "http://x.test/", "captcha": {"selector": "img"},
               "form": {"input": "#a", "submit": "#b"}, "format": {"charset": "01", "length": 3}}
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(minimal))
    assert main(["profiles", "show", "--site", "mini", "--profiles-dir", str(tmp_path)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["name"] == "mini"
    assert shown["format"]["length"] == [3, 3]
    assert shown["model"] == {"pipeline": "ctc", "min_confidence": 0.5}


def test_unknown_site_exits_2_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "--site", "exampel", "--profiles-dir", str(PROFILES)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "did you mean 'example'?" in err and "available: background, canvas" in err


def test_broken_yaml_is_one_paragraph_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("url: http://x/\ncaptcha:\n  selector: [img\n")
    done = run_cli("profiles", "show", "--site", str(tmp_path / "broken.yaml"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {tmp_path / 'broken.yaml'}: line 4, column 1: invalid YAML")
    assert "Traceback" not in done.stderr
    debug = run_cli("--debug", "profiles", "show", "--site", str(tmp_path / "broken.yaml"))
    assert "Traceback" in debug.stderr


def test_no_browser_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli("browser", "which", env={"SOLVER_CHROMIUM": str(tmp_path / "none")})
    assert done.returncode == 1
    assert "is not an executable file" in done.stderr and "Traceback" not in done.stderr


def test_site_styles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["site", "styles"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["example", "digits", "datauri", "canvas", "iframe", "background", "framedoc",
                     "pagelink", "delayed", "lazy", "once", "shadow", "fetchform", "redirect", "gif",
                     "pair", "serif", "stencil"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_site_serve_runs_and_a_busy_port_is_refused() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "solver", "site", "serve", "--style", "digits",
                               "--port", str(port), "--seed", "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in banner
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.url.endswith("/digits/")  # --style is the home page
                    assert b'id="captcha"' in response.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        busy = run_cli("site", "serve", "--port", str(port))
        assert busy.returncode == 1
        assert busy.stderr == (f"error: port {port} on 127.0.0.1 is already in use (stop whatever "
                               "listens there, or choose another port with --port, or --port 0 "
                               "for any free one)\n")
    finally:
        server.terminate()
        server.communicate(timeout=20)


def test_version_and_module_entry_point() -> None:
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("solver ")


def test_dataset_verbs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from solver.drawing import CaptchaDrawer

    drawer = CaptchaDrawer(width=120, height=45, font_sizes=(32,))
    source = tmp_path / "named"
    source.mkdir()
    for label in ("1234", "5678", "9012", "3456", "12x4"):
        (source / f"{label}.png").write_bytes(drawer.png(label))
    site = ["--site", "digits", "--profiles-dir", str(PROFILES), "--data", str(tmp_path / "d")]
    assert main(["dataset", "import", *site, str(source)]) == 1  # one label refused
    assert capsys.readouterr().out.strip() == (
        f"{tmp_path / 'd'}: 4 added, 0 duplicates, 0 conflicts, 1 refused")
    assert main(["dataset", "stats", *site]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{tmp_path / 'd'}: 4 images, 4 labelled (0 verified by the site), "
                      "0 unlabelled")
    assert out[1].startswith("characters: 0:1 1:2 2:2 3:2 4:2")
    assert main(["dataset", "split", *site, "--out", str(tmp_path / "s"), "--test", "0.25"]) == 0
    assert "(3 images); test:" in capsys.readouterr().out
    assert main(["dataset", "export", *site, str(tmp_path / "e"), "--layout", "names"]) == 0
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [
        "1234.png", "3456.png", "5678.png", "9012.png"]


def test_label_argument_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    site = ["--site", "digits", "--profiles-dir", str(PROFILES), "--data", str(tmp_path / "d")]
    assert main(["label", *site, "--model", str(tmp_path / "none")]) == 2  # named: must exist
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none'}: no trained model here")
    assert main(["label", "--site", "digitz", "--profiles-dir", str(PROFILES)]) == 2
    assert "did you mean 'digits'?" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["label", *site, "--models-dir", str(tmp_path), "--port", str(port)]) == 1
    assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["label", "--port", "80"])  # --site is required
    assert usage.value.code == 2


def test_label_serves_the_page_with_the_models_readings(tmp_path: Path) -> None:
    from solver.dataset import DatasetStore
    from solver.drawing import CaptchaDrawer

    store = DatasetStore(tmp_path / "d")
    drawer = CaptchaDrawer(width=120, height=45, font_sizes=(32,))
    files = [store.add(drawer.png(text)).entry.file for text in ("1234", "5678")]
    server = subprocess.Popen([sys.executable, "-m", "solver", "label", "--site", "digits",
                               "--data", str(tmp_path / "d"), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        counts = server.stdout.readline()
        assert counts == (f"{tmp_path / 'd'}: 2 images, 0 labelled, 2 to label "
                          "(2 with a reading of digits (shipped))\n")
        banner = server.stdout.readline()
        assert banner.startswith("Labelling page on http://127.0.0.1:")
        url = banner.split()[3].rstrip("/")
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            assert b'id="label"' in response.read()
        with urllib.request.urlopen(url + "/api/next", timeout=10) as response:
            item = json.loads(response.read())["item"]
        assert item["file"] in files and len(item["suggestion"]) == 4
        assert all(entry.suggestion for entry in DatasetStore(tmp_path / "d").entries())
    finally:
        server.terminate()
        server.communicate(timeout=20)


def test_eval_applies_label_corrections(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Wrong labels in a dataset are fixed by file name before scoring; a bad file is named."""
    from solver.drawing import CaptchaDrawer
    from solver.profiles import load_profile

    digits = load_profile(PROFILES / "digits.yaml")
    drawer = CaptchaDrawer.from_settings(digits.synthetic, seed=11)
    folder = tmp_path / "d"
    folder.mkdir()
    texts = ["4821", "0937", "5562", "1208"]
    rows = ["file,label"]
    for index, text in enumerate(texts):
        (folder / f"{index}.png").write_bytes(drawer.png(text))
        rows.append(f"{index}.png,{'9999' if index < 2 else text}")  # two labels are wrong
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    site = ["eval", "--site", "digits", "--profiles-dir", str(PROFILES), "--data", str(folder)]
    assert main(site) == 0
    wrong = capsys.readouterr().out
    assert "sequence accuracy" in wrong and "50.00%" in wrong  # the model reads them right
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("file,label,given_label\n0.png,4821,9999\n1.png,0937,9999\n")
    assert main([*site, "--corrections", str(fixes)]) == 0
    fixed = capsys.readouterr().out
    assert fixed.startswith(f"corrections: 2 labels fixed from {fixes}") and "100.00%" in fixed
    fixes.write_text("name,text\n0.png,4821\n")
    assert main([*site, "--corrections", str(fixes)]) == 1
    assert "the header must name file and label (found name, text)" in capsys.readouterr().err


def test_train_from_a_bare_name_finds_the_model_like_any_other(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`--from general` is the shipped general model from any folder; a path stays a path."""
    from solver import shipped
    from solver.cli import build_parser
    from solver.cli.train import _start_model

    monkeypatch.chdir(tmp_path)

    def start(*flags: str) -> Path | None:
        return _start_model(build_parser().parse_args(["train", "--site", "example", *flags]))

    assert start("--from", "general") == shipped.models_path() / "general"
    assert start("--from", "models/general") == Path("models/general")
    (tmp_path / "models" / "general").mkdir(parents=True)
    (tmp_path / "models" / "general" / "metadata.json").write_text("{}")
    assert start("--from", "general") == Path("models") / "general"  # the local one shadows it
    assert start() is None
    # eval --curve --from takes a name the same way
    curve = build_parser().parse_args(["eval", "--site", "example", "--data", ".", "--curve",
                                       "50", "--from", "general"])
    assert _start_model(curve) == Path("models") / "general"
