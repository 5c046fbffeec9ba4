"""A non-editable install works outside the checkout: the CLI, the shipped specs by name, the bench suites and
the report's data files travel as package data (pip install into a folder, run from another folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a pip build and install: about 12 s

ROOT = Path(__file__).resolve().parents[1]
SKIP = (".venv", ".git", "*.egg-info", "build", "demo_results", "results", "__pycache__", ".pytest_cache", "tests")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """svconv installed (no dependencies: they are this venv's) into a folder, from a copy of the sources, so
    the build leaves nothing in the checkout. Returns (target, environment whose path has only the install)."""
    tmp = tmp_path_factory.mktemp("install")
    src = shutil.copytree(ROOT, tmp / "src", ignore=shutil.ignore_patterns(*SKIP))
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, cwd=tmp)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    return target, env


def _svconv(installed, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    target, env = installed
    return subprocess.run([sys.executable, "-m", "svconv", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_installed_packages_are_the_ones_imported(installed, tmp_path):
    target, env = installed
    out = subprocess.run([sys.executable, "-c", "import svconv, sweeps, bench, analysis, svconv_cli; "
                          "print(*(m.__file__ for m in (svconv, sweeps, bench, analysis, svconv_cli)))"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert all(Path(f).is_relative_to(target) for f in out.stdout.split()), out.stdout
    script = subprocess.run([str(target / "bin" / "svconv"), "-q", "sweep", "run", "demo", "--dry-run"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)  # the console script  # fmt: skip
    assert script.returncode == 0 and script.stdout.startswith("sweep demo: "), script.stderr


def test_shipped_specs_run_by_name_from_any_folder(installed, tmp_path):
    res = _svconv(installed, "sweep", "run", "demo", "--dry-run", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("sweep demo: 7 trials")
    bad = _svconv(installed, "sweep", "run", "no-such-spec", "--dry-run", cwd=tmp_path)
    assert bad.returncode == 2 and "the shipped specs: aol, demo," in bad.stderr and "Traceback" not in bad.stderr


def test_bench_suites_and_report_data_are_installed(installed, tmp_path):
    res = _svconv(installed, "bench", "--list", cwd=tmp_path)
    assert res.returncode == 0 and "quick" in res.stdout and "clip-to-target" in res.stdout, res.stderr
    target, env = installed
    code = "from analysis.paper import load_paper_results; print(len(load_paper_results()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) > 50


def test_python_dash_m_svconv_is_the_cli(installed, tmp_path):
    res = _svconv(installed, "--help", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("usage: svconv") and "-q" in res.stdout
