"""The CLI's diagnostics go through logging to stderr: -q/-qq/-v anywhere on the line, results on stdout."""

from __future__ import annotations

import logging

import pytest

from svconv_cli.main import main, split_verbosity


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
