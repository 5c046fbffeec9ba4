"""Move the tooling packages under ``svconv``: bench -> svconv.bench, sweeps -> svconv.sweeps,
analysis -> svconv.analysis, svconv_cli -> svconv.cli (issue 22: no generic top-level names on a user's path).

Mechanical, for a clean work tree at the repository root::

    python tools/namespace_packages.py            # git mv + rewrite; then review `git diff` and run the tests
    python tools/namespace_packages.py --dry-run  # what it would change, touching nothing

What it does:

1. ``git mv`` the four packages.
2. In every tracked text file, rewrites
   - dotted module names (``from bench.run import``, ``python -m bench.gpu_check``, ``"sweeps.cli"``,
     ``svconv_cli.main:main``): only where ``pkg.name`` is a module of that package, so a variable such as
     the Tune ``analysis`` in ``analysis.trials`` stays;
   - ``import pkg.mod`` / ``from pkg import x`` / ``import pkg`` statements;
   - paths ``bench/``, ``sweeps/demo.yaml``, ``svconv_cli/`` (not inside another path: ``RESULTS/bench/``,
     ``/mnt/svconv/sweeps`` stay) and ``ROOT / "sweeps"``-style joins from the repository root.
3. Applies the FIXES below (package data, the lists of top-level packages, ``__file__`` depths, the
   architecture test's rule), each of which must match exactly once: when one does not, the code moved
   on since this script was written; the script stops before step 1 and names it.
4. Lists the lines that still name a package as a bare word (prose in README and docs, the design tree)
   for a hand edit.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: old top-level package -> new dotted name
MOVES = {"bench": "svconv.bench", "sweeps": "svconv.sweeps", "analysis": "svconv.analysis", "svconv_cli": "svconv.cli"}
TEXT = {".py", ".md", ".toml", ".yaml", ".yml", ".sbatch", ".cfg", ".txt", ".sh", ".ini", ".json"}
TEXT_NAMES = {"Makefile", "Dockerfile", "Dockerfile.dockerignore", ".gitignore", ".dockerignore"}
NAMES = "|".join(MOVES)

#: (file after the move, old text, new text): the references no pattern can tell from other words.
FIXES: list[tuple[str, str, str]] = [
    ("pyproject.toml", 'include = ["svconv*", "bench*", "sweeps*", "analysis*"]', 'include = ["svconv*"]'),
    ("pyproject.toml", 'sweeps = ["*.yaml"]\nbench = ["suites/*.yaml"]\nanalysis = ["data/*.csv"]',
     '"svconv.sweeps" = ["*.yaml"]\n"svconv.bench" = ["suites/*.yaml"]\n"svconv.analysis" = ["data/*.csv"]'),
    ("svconv/cli_logging.py", 'LOGGERS = ("svconv", "sweeps", "bench", "analysis", "svconv_cli")', 'LOGGERS = ("svconv",)'),
    ("tools/import_graph.py", 'ROOTS = ("svconv", "bench", "sweeps", "analysis", "svconv_cli")', 'ROOTS = ("svconv",)'),
    ("tools/import_graph.py", "Depth 1 groups modules by top-level package (svconv, bench, sweeps, analysis, svconv_cli);\n"
     "depth 2 by subpackage (svconv.layers, svconv.tt, ...).",
     "Depth 2 groups modules by subpackage (svconv.layers, svconv.tt, ..., the tooling svconv.bench, svconv.sweeps,\n"
     "svconv.analysis, svconv.cli)."),
    # one level deeper: the repository root is one parent further up
    ("svconv/bench/gpu_check/runner.py", "ROOT = Path(__file__).resolve().parents[2]", "ROOT = Path(__file__).resolve().parents[3]"),
    ("svconv/bench/tt_speedup.py", "pathlib.Path(__file__).resolve().parents[1]", "pathlib.Path(__file__).resolve().parents[2]"),
    ("svconv/analysis/paper.py", 'Path(__file__).resolve().parents[2] / "shared"', 'Path(__file__).resolve().parents[3] / "shared"'),
    ("svconv/sweeps/submit.py", "root = Path(__file__).resolve().parent.parent", "root = Path(__file__).resolve().parents[2]"),
    ("clusters/kuberay/Dockerfile", 'import ray, torch, svconv, sweeps"', 'import ray, torch, svconv, svconv.sweeps"'),
    ("tests/test_install.py", '"import svconv, sweeps, bench, analysis, svconv_cli; "\n'
     '                          "print(*(m.__file__ for m in (svconv, sweeps, bench, analysis, svconv_cli)))"',
     '"import svconv, svconv.sweeps, svconv.bench, svconv.analysis, svconv.cli; "\n'
     '                          "print(*(m.__file__ for m in (svconv, svconv.sweeps, svconv.bench, svconv.analysis, svconv.cli)))"'),
    ("tests/test_architecture.py", 'for folder in ("svconv", "svconv_cli", "bench", "sweeps", "analysis", "tools", "tests"):',
     'for folder in ("svconv", "tools", "tests"):'),
    # the core rule, which the depth-1 graph can no longer see: no svconv subpackage imports the tooling
    ("tests/test_architecture.py", '''def test_the_core_never_imports_the_tooling():
    graph = _import_graph().import_graph(ROOT, depth=1)
    assert graph["svconv"] == set(), graph["svconv"]''', '''#: The tooling inside svconv: the core (every other subpackage) never imports it.
TOOLING = {"svconv.bench", "svconv.sweeps", "svconv.analysis", "svconv.cli"}


def test_the_core_never_imports_the_tooling():
    graph = _import_graph().import_graph(ROOT, depth=2)
    core = {k: v & TOOLING for k, v in graph.items() if k not in TOOLING and k.startswith("svconv")}
    assert all(not v for v in core.values()), {k: v for k, v in core.items() if v}
    assert TOOLING <= set(graph)  # the rule is not vacuous: the tooling is where it names it'''),
]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def modules_of(package: str) -> set[str]:
    """Dotted names of the package's modules and subpackages (``bench``, ``bench.cli``, ``bench.gpu_check.runner``)."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


def rewrite(text: str, modules: set[str]) -> str:
    """``text`` with the four packages' module names, import statements and paths moved under svconv."""
    new = {old: dotted for old, dotted in MOVES.items()}

    def dotted(m: re.Match) -> str:  # pkg.first...: only when pkg.first is a module of pkg
        pkg, first = m.group(1), m.group(2)
        return f"{new[pkg]}.{first}" if f"{pkg}.{first}" in modules else m.group(0)

    # import statements: `from pkg import x`, `import pkg.mod [as y]`, `import pkg`
    text = re.sub(rf"^(\s*)from ({NAMES}) import ", lambda m: f"{m.group(1)}from {new[m.group(2)]} import ", text, flags=re.M)
    text = re.sub(rf"^(\s*)import ({NAMES})(\s*(?:#.*)?)$",
                  lambda m: f"{m.group(1)}from svconv import {new[m.group(2)].split('.')[1]}"
                  + (f" as {m.group(2)}" if m.group(2) == "svconv_cli" else "") + m.group(3), text, flags=re.M)
    text = re.sub(rf"(?<![\w.])({NAMES})\.(\w+)", dotted, text)
    # paths from the repository root
    text = re.sub(rf"(?<![\w./-])({NAMES})/", lambda m: new[m.group(1)].replace(".", "/") + "/", text)
    text = re.sub(rf"((?:ROOT|parents\[1\]|parent\.parent)\s*/\s*)\"({NAMES})\"",
                  lambda m: m.group(1) + " / ".join(f'"{p}"' for p in new[m.group(2)].split(".")), text)
    return text


def text_files() -> list[Path]:
    this = Path(__file__).resolve()
    return [ROOT / f for f in _git("ls-files").splitlines()
            if (Path(f).suffix in TEXT or Path(f).name in TEXT_NAMES) and (ROOT / f).is_file() and ROOT / f != this]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="print what would change; touch nothing")
    args = p.parse_args(argv)
    if not args.dry_run and _git("status", "--porcelain", "--untracked-files=no").strip():
        p.error("the work tree has uncommitted changes; commit or stash them first")
    missing = [old for old in MOVES if not (ROOT / old / "__init__.py").is_file()]
    if missing:
        p.error(f"no package {', '.join(missing)} at the repository root (moved already?)")

    modules = set().union(*(modules_of(old) for old in MOVES))
    files = {f: f.read_text() for f in text_files()}
    new_texts = {f: rewrite(t, modules) for f, t in files.items()}

    def moved(path: Path) -> Path:
        rel = path.relative_to(ROOT)
        return ROOT / MOVES[rel.parts[0]].replace(".", "/") / Path(*rel.parts[1:]) if rel.parts[0] in MOVES else path

    by_target = {moved(f): (f, t) for f, t in new_texts.items()}
    problems = []
    for rel, old, new in FIXES:
        target = ROOT / rel
        if target not in by_target:
            problems.append(f"{rel}: no such file after the move")
            continue
        src, text = by_target[target]
        if text.count(old) != 1:
            problems.append(f"{rel}: expected once, found {text.count(old)} times: {old.splitlines()[0]!r}")
            continue
        by_target[target] = (src, text.replace(old, new))
    if problems:
        print("the code moved on since this script was written; update FIXES:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1

    changed = {t: text for t, (src, text) in by_target.items() if text != files[src]}
    for target in sorted(changed):
        src = by_target[target][0]
        n = sum(a != b for a, b in zip(files[src].splitlines(), changed[target].splitlines()))
        print(f"{target.relative_to(ROOT)}: {n} line(s) rewritten")
    if args.dry_run:
        return 0
    for old, dotted in MOVES.items():
        _git("mv", old, dotted.replace(".", "/"))
    for target, text in changed.items():
        target.write_text(text)

    # code-formatted bare names in prose (`bench`, `svconv_cli`); "svconv bench" and the "bench" table are no package
    bare = re.compile(rf"`({NAMES})\b[^/.]|\bsvconv_cli\b")
    print("\nstill naming a package as a bare word (review by hand; prose may be right as it is):")
    for f in text_files():
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if bare.search(line):
                print(f"  {f.relative_to(ROOT)}:{i}: {line.strip()[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
