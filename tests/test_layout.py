"""The layout's import rules (README, Development): every module of ``vitr_qdrant`` (the linked
``encoders`` and ``connectors`` included) is parsed with ``ast``, imports inside functions
included, into a graph of modules. No cycle; each part imports only the parts its package
docstring allows; the encoders never import Qdrant and the connectors never import torch."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The library's top-level modules, in three groups: the base (the error family and helpers),
# the values the parts pass around, and the collection with its search.
BASE = {"errors", "_json", "_lazy", "_version"}
VALUES = {"settings", "params", "results", "grounding"}
CORE = {"collection", "search", "aio", "store_info", "upgrade"}
SUB_PACKAGES = {"encoders", "connectors", "sources", "ingest", "serve", "integrations", "demo", "datasets", "cli"}

# What each part may import (besides itself), bottom to top; nothing may import cli but
# ``python -m vitr_qdrant``.
FOUNDATION = {"base", "encoders", "connectors"}
ALLOWED = {
    "base": {"base"},
    "encoders": {"base"},
    "connectors": {"base"},
    "sources": FOUNDATION,
    "values": FOUNDATION | {"sources"},
    "ingest": FOUNDATION | {"sources", "values"},
    "core": FOUNDATION | {"sources", "values", "ingest"},
    "serve": FOUNDATION | {"sources", "values", "core"},
    "integrations": FOUNDATION | {"sources", "values", "core"},
    "demo": FOUNDATION | {"sources", "values", "core"},
    "datasets": {"encoders"},
    "package": FOUNDATION | {"values", "core"},   # vitr_qdrant/__init__.py: the public names
    "main": {"cli"},                              # vitr_qdrant/__main__.py
    "cli": FOUNDATION | {"sources", "values", "ingest", "core", "serve", "integrations", "demo", "datasets", "package"},
}
# Third-party packages a part must never import (top-level import names).
FORBIDDEN_OUTSIDE = {"encoders": {"qdrant_client", "qdrant_edge"}, "connectors": {"torch", "torchvision", "open_clip"}}


@dataclass(frozen=True)
class Import:
    source: str      # the importing module
    target: str      # a module of the package, or an outside import name
    where: str       # file:line
    type_only: bool  # under ``if TYPE_CHECKING:`` (no runtime edge)


def find_modules(package_dir: Path) -> dict[str, Path]:
    """Module name -> file, for a package directory (links followed, like the installed package)."""
    found: dict[str, Path] = {}

    def walk(directory: Path, name: str) -> None:
        for path in sorted(directory.iterdir()):
            if path.is_dir() and (path / "__init__.py").is_file():
                walk(path, f"{name}.{path.name}")
            elif path.suffix == ".py":
                found[name if path.stem == "__init__" else f"{name}.{path.stem}"] = path

    walk(package_dir, package_dir.name)
    return found


def lazy_names(path: Path) -> dict[str, str]:
    """A package's ``_LAZY`` map (name -> relative module), the names its ``__getattr__`` imports."""
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            # the project's own literal (a comprehension inside is allowed): evaluated with no builtins
            return eval(compile(ast.Expression(node.value), str(path), "eval"), {"__builtins__": {}})
    return {}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def find_imports(package_dir: Path) -> tuple[dict[str, Path], list[Import]]:
    """Every import statement of every module (function-level ones too), resolved to a module of
    the package where it is one (``from P import name``: the submodule ``P.name``, or the module
    P's lazy map names for it), else to the outside import name."""
    modules = find_modules(package_dir)
    lazy = {name: lazy_names(path) for name, path in modules.items() if path.name == "__init__.py"}

    def resolve(package: str, name: str) -> str:
        if f"{package}.{name}" in modules:
            return f"{package}.{name}"
        if name in lazy.get(package, {}):
            return f"{package}{lazy[package][name]}" if lazy[package][name].startswith(".") else lazy[package][name]
        return package

    imports: list[Import] = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typed = _type_checking_nodes(tree)
        here = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(tree):
            where, type_only = f"{path.relative_to(package_dir.parent)}:{getattr(node, 'lineno', 0)}", id(node) in typed
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                targets = [resolve(base, a.name) for a in node.names] if base in modules else [base]
            else:
                continue
            for target in targets:
                if target not in modules:   # `import a.b.c`: the deepest module of the package named
                    inside = [m for m in modules if target.startswith(m + ".")]
                    target = max(inside, key=len) if inside else target.split(".")[0]
                imports.append(Import(source, target, where, type_only))
        for name, module in lazy.get(source, {}).items():   # a package's lazy names: imports on first use
            if module.startswith("."):
                where = f"{path.relative_to(package_dir.parent)} (_LAZY {name})"
                imports.append(Import(source, f"{source}{module}", where, False))
    return modules, imports


def part_of(module: str) -> str:
    """The part a module of ``vitr_qdrant`` belongs to (see ``ALLOWED``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in SUB_PACKAGES:
        return parts[1]
    for group, names in (("base", BASE), ("values", VALUES), ("core", CORE)):
        if parts[1] in names:
            return group
    return "main" if parts[1] == "__main__" else f"unplaced ({parts[1]})"


def cycles(modules: dict[str, Path], imports: list[Import]) -> list[list[Import]]:
    """Runtime import cycles (Tarjan's strongly connected components), each as its shortest loop of imports."""
    edges: dict[str, dict[str, Import]] = {m: {} for m in modules}
    for imp in imports:
        if not imp.type_only and imp.target in modules and imp.target != imp.source:
            edges[imp.source].setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[Import]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_loop(min(component), component, edges))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def _loop(start: str, component: set[str], edges: dict[str, dict[str, Import]]) -> list[Import]:
    """The shortest chain of imports from ``start`` back to itself inside a cycle's modules."""
    came: dict[str, Import] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt, imp in edges[node].items():
            if nxt == start:
                chain = [imp]
                while chain[0].source != start:
                    chain.insert(0, came[chain[0].source])
                return chain
            if nxt in component and nxt not in came:
                came[nxt] = imp
                queue.append(nxt)
    raise AssertionError(f"{start} is in no cycle")


def broken_rules(modules: dict[str, Path], imports: list[Import]) -> list[str]:
    """Each import that a part's rules forbid, said with the file and line."""
    broken = []
    for imp in imports:
        part = part_of(imp.source)
        if imp.target in modules:
            target = part_of(imp.target)
            if target != part and target not in ALLOWED.get(part, set()):
                broken.append(f"{imp.where}: {imp.source} ({part}) imports {imp.target} ({target}); "
                              f"{part} may import only {sorted(ALLOWED.get(part, set()))}")
        elif imp.target in FORBIDDEN_OUTSIDE.get(part, set()):
            broken.append(f"{imp.where}: {imp.source} ({part}) imports {imp.target}, which {part} never imports")
    return broken


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Import]]:
    return find_imports(ROOT / "vitr_qdrant")


def test_no_import_cycle(graph):
    found = cycles(*graph)
    assert not found, "import cycles:\n" + "\n".join(
        " ; ".join(f"{imp.where} {imp.source} -> {imp.target}" for imp in cycle) for cycle in found)


def test_each_part_imports_only_what_it_may(graph):
    broken = broken_rules(*graph)
    assert not broken, "imports that break the layout's rules:\n" + "\n".join(broken)


def test_every_module_has_a_part_and_every_package_ships(graph):
    modules, _ = graph
    unplaced = sorted(m for m in modules if part_of(m).startswith("unplaced"))
    assert not unplaced, f"top-level modules in no group of tests/test_layout.py (BASE, VALUES, CORE): {unplaced}"
    packages = {m for m, path in modules.items() if path.name == "__init__.py"}
    listed = set(re.findall(r'"(vitr_qdrant[\w.]*)"', (ROOT / "pyproject.toml").read_text().split("packages = [")[1]
                            .split("]")[0]))
    assert packages == listed, f"packages not listed in pyproject.toml: {sorted(packages - listed)}; " \
                               f"listed but missing: {sorted(listed - packages)}"
    for name in SUB_PACKAGES:
        doc = ast.get_docstring(ast.parse((modules[f"vitr_qdrant.{name}"]).read_text()))
        assert doc and "import" in doc, f"vitr_qdrant.{name} has no docstring saying what it may import"


def test_the_checks_fail_on_a_cycle_and_a_forbidden_import(tmp_path):
    package = tmp_path / "vitr_qdrant"
    for folder in (package, package / "encoders", package / "ingest"):
        folder.mkdir()
        (folder / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "collection.py").write_text("from .ingest import pipeline\n")
    (package / "ingest" / "pipeline.py").write_text("from .. import errors\n\ndef late():\n"
                                                    "    from ..collection import VitrCollection\n")
    (package / "encoders" / "model.py").write_text("from qdrant_client import QdrantClient\n"
                                                   "from .. import collection\n")
    modules, imports = find_imports(package)
    found = cycles(modules, imports)
    assert [sorted(imp.source for imp in cycle) for cycle in found] == [
        ["vitr_qdrant.collection", "vitr_qdrant.ingest.pipeline"]]
    broken = broken_rules(modules, imports)
    assert len(broken) == 3, broken
    assert any(b.startswith("vitr_qdrant/ingest/pipeline.py:4: vitr_qdrant.ingest.pipeline (ingest) imports "
                            "vitr_qdrant.collection (core)") for b in broken), broken
    assert any("vitr_qdrant/encoders/model.py:1" in b and "qdrant_client" in b for b in broken), broken
    assert any("vitr_qdrant/encoders/model.py:2" in b and "vitr_qdrant.collection (core)" in b for b in broken), broken
