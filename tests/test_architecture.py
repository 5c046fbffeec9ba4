"""The import directions of docs/design.md ("Architecture"), read from the source with ``ast`` (tools/import_graph.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What the lower svconv packages may import of svconv (besides themselves). The rest may import anything
#: of svconv, as long as no two packages import each other (directly or through others).
ALLOWED = {
    "svconv.kinds": set(),
    "svconv.options": set(),
    "svconv.results": {"svconv.options"},  # the trials columns of the methods' options
    "svconv.data": set(),
    "svconv.spectrum": set(),
    "svconv.tt": {"svconv.spectrum", "svconv.kinds"},
    "svconv.layers": {"svconv.spectrum", "svconv.kinds", "svconv.tt"},
    "svconv.models": {"svconv.layers", "svconv.tt", "svconv.kinds", "svconv.spectrum"},
}


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_core_never_imports_the_tooling():
    graph = _import_graph().import_graph(ROOT, depth=1)
    assert graph["svconv"] == set(), graph["svconv"]


def test_svconv_subpackages_import_only_downwards_and_without_cycles():
    tool = _import_graph()
    graph = tool.import_graph(ROOT, depth=2)
    core = {k: {v for v in targets if v.startswith("svconv.")} for k, targets in graph.items() if k.startswith("svconv")}
    for package, allowed in ALLOWED.items():
        assert core.get(package, set()) <= allowed, f"{package} imports {core[package] - allowed}"
    assert tool.cycles(core) == []


def test_the_graph_sees_relative_and_lazy_imports(tmp_path):
    """The check above can fail: a lazy (in-function) relative import that closes a cycle is found."""
    tool = _import_graph()
    pkg = tmp_path / "svconv"
    for sub, text in (("a", "def f():\n    from ..b import thing\n"), ("b", "from svconv.a import f\nthing = 1\n")):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text(text)
    (pkg / "__init__.py").write_text("")
    graph = tool.import_graph(tmp_path, depth=2)
    assert graph["svconv.a"] == {"svconv.b"} and graph["svconv.b"] == {"svconv.a"}
    assert tool.cycles(graph) == [("svconv.a", "svconv.b")]


#: Third-party Lipschitz-layer libraries and the one module that may import them (docs/design.md, "Other
#: libraries' Lipschitz layers"): everything else reaches them through svconv.layers.peers.
PEER_LIBRARIES = {"orthogonium", "deel", "einops"}
PEER_HOME = ROOT / "svconv" / "layers" / "peers.py"


def test_other_libraries_layers_are_imported_only_by_svconv_layers_peers():
    import ast

    offenders = []
    for folder in ("svconv", "svconv_cli", "bench", "sweeps", "analysis", "tools", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n.split(".")[0] in PEER_LIBRARIES for n in names) and path != PEER_HOME:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], offenders
    assert "orthogonium" in PEER_HOME.read_text() and "deel.torchlip" in PEER_HOME.read_text()  # the rule is not vacuous


def test_no_two_modules_of_methods_or_results_import_each_other():
    """Methods register explicitly (no registry <-> base cycle); results' file writes have one home (files.py),
    so store and compact do not import each other. The package ``svconv.methods`` imports its modules to
    register them, so it is left out."""
    tool = _import_graph()
    graph = tool.import_graph(ROOT, depth=3)
    inner = {
        k: {v for v in targets if v.startswith(("svconv.methods.", "svconv.results.")) and v != k}
        for k, targets in graph.items()
        if k.startswith(("svconv.methods.", "svconv.results."))
    }
    assert tool.cycles(inner) == []
