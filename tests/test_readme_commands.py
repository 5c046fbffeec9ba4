"""Every `svconv train` command printed in README.md runs as printed (with its results folder moved to a
temporary one) and trains a model that learned (trials column ``learned``): a new user's first commands
must not end at chance. Each takes seconds on a CPU: narrow nets (lipconvnet-5-4) and mnist5k."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from svconv.results import read_table
from svconv_cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_train_commands() -> list[str]:
    """The `svconv train ...` lines of README.md's code blocks, without trailing comments."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    lines = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("svconv train ")]


def test_the_readme_prints_train_commands():
    assert len(readme_train_commands()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_train_commands())
def test_each_readme_train_command_learns(command, tmp_path):
    argv = shlex.split(command)[1:]
    assert "--results" in argv, f"a README train command without --results: {command}"
    argv[argv.index("--results") + 1] = str(tmp_path)
    assert main(argv) == 0
    (row,) = read_table(tmp_path, "trials").to_dict("records")
    assert row["status"] == "ok" and row["learned"] is True, (command, row["clean_acc"], row["final_train_loss"])


def readme_python_examples() -> list[str]:
    """The README's ```python blocks that need nothing but svconv: not the whole-resnet18 one (a minute and
    more on a loaded CPU; its functions are tested in test_clip_model.py) and not the one reading a results
    folder the demo writes."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    return [b for b in blocks if "resnet18" not in b and "load_results(" not in b]


@pytest.mark.parametrize("code", readme_python_examples(), ids=lambda c: c.splitlines()[1][:40])
def test_each_readme_python_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})


def test_the_library_example_prints_what_its_comments_say(capsys):
    (first,) = [c for c in readme_python_examples() if "clip_to_target(w" in c]
    exec(compile(first, "README.md", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.splitlines()
    sigma, passes = lines[0].split()
    said = re.search(r"the passes used \((\d+)\)", first).group(1)
    assert abs(float(sigma) - 1.0) <= 0.01 and passes == said
