"""The CLI's diagnostics go through logging to stderr: -q/-qq/-v anywhere on the line, results on stdout."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svconv import cli_logging
from svconv_cli.main import main, split_verbosity

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_verbosity_flags_are_taken_from_anywhere_before_a_double_dash():
    assert split_verbosity(["sweep", "run", "x.yaml", "-q", "--dry-run"]) == (["sweep", "run", "x.yaml", "--dry-run"], -1)
    assert split_verbosity(["-v", "report", "r", "-v"]) == (["report", "r"], 2)
    assert split_verbosity(["-qq", "train"]) == (["train"], -2)
    assert split_verbosity(["train", "--", "-q"]) == (["train", "--", "-q"], 0)


@pytest.mark.parametrize("flags,shown", [((), True), (("-q",), True), (("-qq",), False)])
def test_warnings_of_a_command_follow_the_verbosity(tmp_path, capsys, flags, shown):
    out = tmp_path / "r.html"
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(out), *flags]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("report: ")  # the result stays on stdout whatever the verbosity
    assert ("warning: " in captured.err and "part(s) without data" in captured.err) is shown


def test_debug_records_show_with_v_only(tmp_path, capsys):
    log = logging.getLogger("svconv.test_cli_logging")
    (tmp_path / "e").mkdir()
    main(["report", str(tmp_path / "e"), "-o", str(tmp_path / "a.html"), "-q"])
    log.debug("a debug line")
    log.info("an info line")
    err = capsys.readouterr().err
    assert "a debug line" not in err and "an info line" not in err
    main(["-v", "report", str(tmp_path / "e"), "-o", str(tmp_path / "b.html")])
    log.debug("a debug line")
    assert "a debug line" in capsys.readouterr().err
    main(["report", str(tmp_path / "e"), "-o", str(tmp_path / "c.html")])  # back to the default for later tests


@pytest.mark.parametrize("quiet", [[], ["-q"], ["-qq"]])
def test_errors_reach_stderr_with_exit_2_however_quiet(capsys, quiet):
    assert main([*quiet, "sweep", "run", "no-such-spec", "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("svconv sweep: error: spec file 'no-such-spec' not found") and "demo" in err
    assert cli_logging.quiet() is bool(quiet)  # and -q turns the progress bars off
    main(["sweep", "run", "demo", "--dry-run"])  # back to the default for later tests


def test_library_records_go_nowhere_until_a_command_line_sets_logging_up(tmp_path):
    """A program importing svconv decides where its records go: unconfigured, an info record prints nothing
    (and nothing ever goes to stdout); the CLI's set-up sends info bare and warnings with their level to stderr."""
    code = (
        "import logging\n"
        "from svconv.cli_logging import configure_logging\n"
        "log = logging.getLogger('sweeps.driver')\n"
        "log.info('one')\n"
        "configure_logging()\n"
        "log.info('two'); log.warning('three'); log.debug('hidden')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == "two\nwarning: three\n"


def test_python_m_svconv_and_its_help_import_no_subcommand(tmp_path):
    """``python -m svconv`` is the CLI from any folder; its top-level help lists the subcommands and -v/-q
    without importing any subcommand's module (nor torch, ray or pandas): ``svconv --help`` is instant."""
    done = subprocess.run([sys.executable, "-m", "svconv", "--help"], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(word in done.stdout for word in ("train", "bench", "sweep", "report", "--verbose", "--quiet"))
    code = (
        "import sys\n"
        "from svconv_cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('torch', 'ray', 'pandas', 'svconv.train_cli', 'bench.cli', 'sweeps.cli', 'analysis.cli')"
        " if m in sys.modules], file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "[]", done.stderr
    for argv, message in ((["sweep", "nope"], "invalid choice: 'nope'"), (["trian"], "invalid choice: 'trian'")):
        done = subprocess.run([sys.executable, "-m", "svconv", *argv], cwd=tmp_path, env=ENV, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_bench_script_takes_v_and_q_too(tmp_path):
    """``python -m bench.X`` scripts set logging up as the CLI does (here the GPU check's option errors)."""
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path), "--phases", "nope", "-q"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "--phases must name phases among env" in done.stderr, done.stderr
