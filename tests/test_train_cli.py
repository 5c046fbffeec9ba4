"""`svconv train`: options generated from TrialConfig, --help, refusal of unknown names, exit codes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from svconv.config import TrialConfig
from svconv.results import read_table
from svconv.train_cli import FIELD_HELP
from svconv_cli.main import build_parser, main

TINY = ["--dataset", "synthetic", "--n-train", "64", "--n-test", "32", "--batch-size", "32", "--emp-lip-n", "4", "--device", "cpu"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_help_lists_every_trial_option_with_its_default():
    env = {**os.environ, "COLUMNS": "400"}  # no wrapping inside "small-cnn"
    cmd = [sys.executable, "-m", "svconv_cli.main", "train", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    help_text = " ".join(out.stdout.split())  # undo line wrapping
    for f in dataclasses.fields(TrialConfig):
        assert _flag(f.name) in help_text
        assert f.name in FIELD_HELP, f"add a help text for TrialConfig.{f.name} to svconv.train_cli.FIELD_HELP"
    assert "(default: small-cnn)" in help_text and "(default: cosine)" in help_text and "--results DIR" in help_text


def test_parsed_defaults_are_the_config_defaults():
    args = build_parser().parse_args(["train", "--results", "r"])
    assert TrialConfig.from_dict({n: getattr(args, n) for n in TrialConfig.field_names()}) == TrialConfig()
    args = build_parser().parse_args(["train", "--results", "r", "--no-amp", "--rank", "16", "--lam", "1e4", "--n-train", "none"])
    assert args.amp is False and args.rank == 16 and args.lam == 1e4 and args.n_train is None


@pytest.mark.parametrize(
    "option,value,known",
    [("--arch", "resnet9000", "lipconvnet-N"), ("--method", "magic", "fastclip"), ("--dataset", "imagenet", "mnist5k")],
)
def test_unknown_names_exit_2_with_the_known_list(tmp_path, capsys, option, value, known):
    assert main(["train", "--results", str(tmp_path), option, value]) == 2
    err = capsys.readouterr().err
    assert value in err and known in err
    assert not (tmp_path / "trials").exists()


def test_an_option_the_method_does_not_use_exits_2_with_what_it_takes(tmp_path, capsys):
    assert main(["train", "--results", str(tmp_path), "--method", "division", "--clip-tol", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "clip_tol: not used by method 'division'" in err and "takes clip_to, clip_every, clip_to_linear" in err, err
    assert not (tmp_path / "trials").exists()


def test_bad_value_types_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--results", "r", "--epochs", "two"])
    assert exc.value.code == 2 and "--epochs" in capsys.readouterr().err


def test_a_trial_from_the_command_line(tmp_path, capsys):
    code = main(["train", *TINY, "--method", "clip", "--clip-to", "1", "--results", str(tmp_path), "--sweep", "cli"])
    out = capsys.readouterr().out
    assert code == 0 and "ok" in out and "clean accuracy" in out
    t = read_table(tmp_path, "trials")
    assert len(t) == 1 and t.status[0] == "ok" and t.method[0] == "clip" and t.sweep[0] == "cli"
    assert t.trial_id[0] in out


def test_a_failed_trial_exits_1_and_says_why(tmp_path, capsys):
    code = main(["train", *TINY, "--fail-at-epoch", "1", "--json", "--results", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1 and "failed" in captured.err and "fail_at_epoch=1" in captured.err
    assert json.loads(captured.out)["status"] == "failed"
    assert read_table(tmp_path, "trials").status.tolist() == ["failed"]
