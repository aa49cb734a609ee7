"""A non-editable install in a fresh venv works from any directory (console scripts, data)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed from a built wheel (not editable)."""
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                  str(REPO)], cwd=root)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("mlops_stack-*.whl")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    assert made.returncode == 0, made.stderr
    pip = _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], cwd=root)
    assert pip.returncode == 0, pip.stderr
    return venv


def test_console_scripts_run_from_anywhere(installed: Path, tmp_path: Path) -> None:
    for script in ("deployer", "mlops-tui"):
        proc = _run([str(installed / "bin" / script), "--help"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "usage:" in proc.stdout


def test_data_is_inside_the_installed_package(installed: Path, tmp_path: Path) -> None:
    code = (
        "from deployer.resources import templates_dir, services_dir\n"
        "import deployer, pathlib\n"
        "pkg = pathlib.Path(deployer.__file__).parent\n"
        "t, s = templates_dir(), services_dir()\n"
        "assert t.is_relative_to(pkg) and s.is_relative_to(pkg), (t, s)\n"
        "print(sorted(p.name for p in t.iterdir()))\n"
        "print(sorted(p.name for p in s.iterdir()))\n"
    )
    proc = _run([str(installed / "bin" / "python"), "-c", code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    templates, services = proc.stdout.splitlines()
    assert "values.yaml" in templates
    assert "README.md" in services


def test_tensorflow_is_not_a_dependency(installed: Path, tmp_path: Path) -> None:
    proc = _run([str(installed / "bin" / "python"), "-c",
                 "import importlib.util as u; print(u.find_spec('tensorflow') is None)"],
                cwd=tmp_path)
    assert proc.stdout.strip() == "True"


def test_render_from_an_installed_copy(installed: Path, tmp_path: Path) -> None:
    proc = _run([str(installed / "bin" / "deployer"), "render", "--target", "all", "-o",
                 str(tmp_path / "out")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".env.example", "docker-compose.yml", "swarm-stack.yml"]
