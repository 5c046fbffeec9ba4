"""Hostile specs and names are refused with FILE:LINE before anything runs (issue 21, items 2, 5, 6, 12)."""

from __future__ import annotations

import textwrap

import pytest

from sweeps.spec import MAX_SPEC_BYTES, MAX_TRIALS, SpecError, load_spec, parse_spec, sweep_name
from svconv_cli.main import main

BASE = "name: hostile\nfixed: {dataset: synthetic, epochs: 1}\ngrid: {method: [none, clip]}\n"


@pytest.mark.parametrize("key, value", [("cpus", ".nan"), ("cpus", ".inf"), ("gpus", ".nan"), ("gpus", ".inf"),
                                        ("gpus", "-.inf"), ("cpus", "0")])
def test_non_finite_resources_are_refused_with_file_and_line(key, value):
    with pytest.raises(SpecError, match=rf"^h.yaml:4: resources {key} must be a finite number"):
        parse_spec(BASE + f"resources: {{{key}: {value}}}\n", "h.yaml")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, capsys):
    # 9 levels of 9 aliases: 9**10 leaves if expanded. The walk stops at the first node it meets twice,
    # so this ends after a few dozen nodes whatever the machine.
    lines = ["name: bomb", "grid: {method: [none]}", "description: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 700
    with pytest.raises(SpecError, match=r"bomb.yaml:3: .*aliases are not allowed in a spec"):
        load_spec(bomb)
    assert main(["sweep", "run", str(bomb), "--dry-run"]) == 2
    assert "aliases are not allowed in a spec" in capsys.readouterr().err


def test_a_single_alias_is_refused_too():
    with pytest.raises(SpecError, match=r"^a.yaml:2: .*alias"):
        parse_spec("name: a\nfixed: &f {dataset: synthetic}\ngrid: {method: [none]}\nonly: [*f]\n", "a.yaml")


def test_a_spec_larger_than_the_cap_is_refused_unread(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(BASE + "#" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(SpecError, match=rf"big.yaml:1: the spec is \d+ bytes; a spec may be at most {MAX_SPEC_BYTES}"):
        load_spec(big)
    with pytest.raises(SpecError, match=rf"at most {MAX_SPEC_BYTES} bytes"):
        parse_spec(big.read_text(), "big.yaml")


def _grid(a: int, b: int) -> str:
    lrs = ", ".join(str(0.001 * (i + 1)) for i in range(a))
    clips = ", ".join(str(0.5 + i) for i in range(b))
    return f"name: g\nfixed: {{dataset: synthetic, epochs: 1, method: clip}}\ngrid:\n  lr: [{lrs}]\n  clip_to: [{clips}]\n"


def test_a_huge_grid_is_counted_not_expanded(tmp_path, capsys):
    # 1000 x 1000 = 10^6 combinations: refused from the count, before one combination is built.
    spec = tmp_path / "g.yaml"
    spec.write_text(_grid(1000, 1000))
    with pytest.raises(SpecError, match=rf"g.yaml:3: the grid has 1000000 combinations \(1000 x 1000\); the limit is {MAX_TRIALS}"):
        load_spec(spec)
    assert main(["sweep", "run", str(spec), "--dry-run"]) == 2
    assert "--max-trials" in capsys.readouterr().err


def test_the_trial_limit_can_be_raised_or_lowered(tmp_path, capsys):
    spec = tmp_path / "g.yaml"
    spec.write_text(_grid(3, 3))
    with pytest.raises(SpecError, match=r"the grid has 9 combinations \(3 x 3\); the limit is 8"):
        parse_spec(_grid(3, 3), max_trials=8)
    assert len(parse_spec(_grid(3, 3), max_trials=9).trials) == 9
    assert main(["sweep", "run", str(spec), "--dry-run", "--max-trials", "8"]) == 2
    assert "the limit is 8" in capsys.readouterr().err
    assert main(["sweep", "run", str(spec), "--dry-run", "--max-trials", "9"]) == 0


@pytest.mark.parametrize("name", ["nl\\n", "a\\nb", "ok\\n\\n"])
def test_a_name_with_a_newline_is_refused(name):
    with pytest.raises(SpecError, match=r"^n.yaml:1: name must be letters"):
        parse_spec(f'name: "{name}"\ngrid: {{method: [none]}}\n', "n.yaml")


@pytest.mark.parametrize("name", ["nl\n", "a/b", "<script>alert(1)</script>", ""])
def test_sweep_names_on_the_command_line_are_checked_whole(name):
    with pytest.raises(SpecError, match="sweep NAME must be letters"):
        sweep_name(name)


def test_train_refuses_a_bad_sweep_name_before_training(tmp_path, capsys):
    results = tmp_path / "r"
    code = main(["train", "--results", str(results), "--sweep", "<script>alert(1)</script>"])
    assert code == 2
    assert "--sweep must be letters" in capsys.readouterr().err
    assert not results.exists()  # refused before the results folder is made
    assert main(["train", "--results", str(results), "--sweep", "nl\n"]) == 2


def test_storage_that_is_a_file_or_under_a_file_exits_2_naming_it(tmp_path, capsys):
    # Read-only mounts cannot be made here (root ignores chmod; no bind mounts in the sandbox): a regular
    # file in the way gives the same OSError path (NotADirectoryError) through check_writable.
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for storage in (a_file, a_file / "below"):
        assert main(["sweep", "run", str(spec), "--storage", str(storage), "--results", str(tmp_path / "res")]) == 2
        err = capsys.readouterr().err
        assert f"sweep state folder (--storage) '{storage}/hostile' is not writable: Not a directory" in err, err
        assert "Traceback" not in err
    assert a_file.read_text() == "not a folder" and not (tmp_path / "res").exists()


def test_report_into_a_folder_that_is_a_file_exits_2_naming_it(tmp_path, capsys):
    a_file = tmp_path / "existing_file"
    a_file.write_text("keep me")
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(a_file / "x.html")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the report '{a_file / 'x.html'}': '{a_file}': File exists" in err, err
    assert a_file.read_text() == "keep me"
