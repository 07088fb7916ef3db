"""The wheel as users get it: built with `python -m build`, installed into a fresh environment,
and run from an empty folder, far from the repository's models/ and site_profiles/.

The steps are `.ci/wheel-install`, which the Dockerfile runs too. To stay fast and work offline
the fresh environment has no pip of its own and borrows this environment's dependencies through
a .pth file (a plain path entry: the editable checkout's own .pth hook there does not run), so
the wheel goes in with ``--no-deps``; the test checks that ``solver`` is then imported from the
wheel, not from the checkout.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MAX_WHEEL_BYTES = 15 * 1024 * 1024
SHIPPED = ["solver/shipped/models/example/model.tflite", "solver/shipped/models/digits/model.tflite",
           "solver/shipped/models/general/model.keras", "solver/shipped/profiles/example.yaml"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheel")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "solver-test-dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    started = time.perf_counter()
    done = subprocess.run([str(ROOT / ".ci" / "wheel-install"), str(work / "dist"), "--no-deps",
                           "--no-index", "--quiet"],
                          env={**os.environ, "BUILD_PYTHON": sys.executable, "TARGET_PYTHON": str(python)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"\nbuilt and installed in {time.perf_counter() - started:.1f} s")
    empty = work / "empty"
    empty.mkdir()
    return {"venv": venv, "python": python, "dist": work / "dist", "empty": empty}


def run(installed: dict[str, Path], *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command from the fresh environment's bin/, in the empty folder, as a user types it."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SOLVER_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{installed['venv'] / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    print(f"$ {' '.join(command)}")
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                          cwd=installed["empty"], env=env)
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    return done


def test_the_wheel_is_small_and_carries_the_models_and_profiles(installed: dict[str, Path]) -> None:
    wheel, = installed["dist"].glob("solver-*.whl")
    sdist, = installed["dist"].glob("solver-*.tar.gz")
    size = wheel.stat().st_size
    print(f"\n{wheel.name}: {size / 1e6:.2f} MB; {sdist.name}: {sdist.stat().st_size / 1e6:.2f} MB")
    assert size < MAX_WHEEL_BYTES
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names
    assert not any("/checkpoint/" in name or name.startswith("training/") for name in names)
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert set(SHIPPED) <= members


def test_solver_comes_from_the_wheel(installed: dict[str, Path]) -> None:
    done = run(installed, "python", "-c", "import solver, solver.shipped as s; print(solver.__file__); "
                                          "print(s.root())")
    module, shipped = done.stdout.split()
    assert Path(module).is_relative_to(installed["venv"]) and Path(shipped).is_relative_to(installed["venv"])
    assert not list(installed["empty"].iterdir())  # nothing written into the user's folder


def test_profiles_list_shows_the_shipped_ones(installed: dict[str, Path]) -> None:
    done = run(installed, "solver", "profiles", "list")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:-1]}
    assert rows["example"][-2:] == ["shipped", "shipped"]
    assert rows["digits"][-2:] == ["shipped", "shipped"]


def test_demo_solves_from_an_empty_folder(installed: dict[str, Path]) -> None:
    done = run(installed, "solver", "demo", "--solves", "5", timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Model: example (shipped) found" in lines
    solved = next(line for line in lines if line.startswith("Solved: "))
    assert int(solved.split()[1]) >= 4 and " of 5 " in solved
    assert "XNNPACK" not in done.stdout + done.stderr


def test_predict_reads_a_generated_captcha_quickly_without_tensorflow(installed: dict[str, Path]) -> None:
    image = installed["empty"] / "captcha.png"
    made = run(installed, "python", "-c", "from solver.drawing import CaptchaDrawer; "
               f"open({str(image)!r}, 'wb').write(CaptchaDrawer(width=160, height=60, seed=5).png('K7QP9'))")
    assert made.returncode == 0, made.stderr
    run(installed, "solver", "predict", "--site", "example", "captcha.png")  # the disk cache warm
    started = time.perf_counter()
    done = run(installed, "solver", "predict", "--site", "example", "captcha.png")
    cold_start = time.perf_counter() - started
    print(f"solver predict: {cold_start:.2f} s, process start to exit")
    assert done.returncode == 0, done.stderr
    name, text, confidence = done.stdout.strip().split("\t")
    assert (name, text) == ("captcha.png", "K7QP9") and float(confidence) > 0.5
    assert done.stderr == ""
    assert cold_start < 5  # about 0.7 s on 2 shared cores; the goal is 1.5 s
    probe = run(installed, "python", "-c",
                "import sys; from solver.cli import main; main(['predict', '--site', 'example', "
                "'captcha.png']); print(sorted(m for m in sys.modules if m.split('.')[0] in "
                "('tensorflow', 'keras') or m.startswith('solver.training')))")
    assert probe.stdout.splitlines()[-1] == "[]"
    image.unlink()


def test_solver_for_site_works_from_any_folder(installed: dict[str, Path]) -> None:
    done = run(installed, "python", "-c",
               "import json; from solver import Solver; s = Solver.for_site('example'); "
               "print(json.dumps([s.profile.name, str(s.recognizer.model_dir)]))")
    assert done.returncode == 0, done.stderr
    name, model = json.loads(done.stdout)
    assert name == "example" and Path(model).is_relative_to(installed["venv"])
    assert done.stderr == ""


def test_the_container_installs_the_wheel_the_same_way() -> None:
    """The Dockerfile builds and installs with the script this test runs, and serves the API."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "/src/.ci/wheel-install " in dockerfile
    assert 'ENTRYPOINT ["solver", "serve", "--host", "0.0.0.0", "--port", "8080"]' in dockerfile
    assert ".ci/container" in (ROOT / ".ci" / "run").read_text()
