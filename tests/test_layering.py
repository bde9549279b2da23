"""Which part of `inas` may import which (docs/design.md §3), checked on the source with `ast`.

Every import of an `inas` module counts, also one inside a function (a lazy import is still a dependency); imports
under `if TYPE_CHECKING:` count for the layers but not for cycles (they never run). A "unit" is a subpackage
(`inas.search`, its `searchers` included) or a top-level module (`inas.errors`). A unit may import units of LOWER
layers only, never its own layer's other units or a higher layer, and `search` / `deploy` never import `train`.

The imports that break these rules today are listed below, each with why; the tests fail on any new one, and on a
listed one that is gone (delete its line: the list only shrinks). `python tests/test_layering.py` prints the unit
graph block of docs/design.md §3.1; `--write` puts it there.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "inas"
DESIGN = ROOT / "docs" / "design.md"

# layer of every unit, lowest first (docs/design.md §3)
LAYERS: dict[str, float] = {
    "errors": 0, "io": 0, "ray_watchdog": 0,          # leaves: import nothing of ours
    "space": 1, "ray_address": 1, "paths": 1,          # the space as data; Ray address check; checked path queries
    "folder_lock": 1,                                  # one writer per output folder
    "validation_problems": 1,                          # a pydantic error as our one-line bad-input text
    "images": 1,                                       # the one checked image opener (decompression bombs)
    "json_files": 1,                                   # the one checked JSON document reader
    "progress": 1,                                     # Ray metrics of lut and search
    "config": 2, "ray_session": 2,                     # typed config (validates a narrowed space); start/join Ray
    "nn": 3, "data": 3, "metrics": 3,                  # networks, data sets, metrics
    "runtimes": 3.5,                                   # calibration, INT8, OpenVINO: shared by latency and deploy
    "evaluation": 3.5,                                 # precise BN + scoring: shared by train, search and deploy
    "train": 4, "latency": 4,                          # supernet training; latency tables and predictor
    "search": 5, "deploy": 5,                          # search (uses latency); stand-alone models, ONNX
    "cli": 6, "config_reference": 6,                   # one module per verb; README generator
    "run": 7,                                          # the entry point: parses argv, runs one verb of cli
    "__main__": 8, "": 8,                              # `python -m inas`; "" = the `inas` package itself
}
# same-or-lower-layer pairs that are forbidden anyway: what search and deploy share with training (BN recalibration,
# scoring) belongs below all three (issue 17 item 4)
FORBIDDEN = {("search", "train"), ("deploy", "train")}

# (importer, imported) -> why it is there; each one to remove
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    ("inas.deploy.finetune", "inas.train.recipe"):
        "fine-tuning is the training recipe on one network: stays unless the recipe moves below or finetune into train",
    ("inas.cli.demo", "inas.run"): "the demo runs each step as a verb through the entry point, as a user types it",
}
# import cycles between modules (runtime imports) -> why
KNOWN_CYCLES: dict[frozenset[str], str] = {
    frozenset({"inas.deploy.onnx_export", "inas.deploy.runtime"}):
        "runtime takes `deployable` from onnx_export; onnx_export's check builds an ort session (lazy import)",
}


@dataclass(frozen=True)
class Edge:
    """One `inas` import: `source` module imports `target` module at `path:line`."""

    source: str
    target: str
    path: str
    line: int
    type_only: bool


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """`inas.search.searchers.base` -> `search`; `inas.errors` -> `errors`; `inas` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, type_only: bool = False):
    """(node, type_only) for every import statement, however deeply nested."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for part in child.body:
                yield from _imports(ast.Module(body=[part], type_ignores=[]), True)
            for part in child.orelse:
                yield from _imports(ast.Module(body=[part], type_ignores=[]), type_only)
        else:
            yield from _imports(child, type_only)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """The modules an import statement names; `from pkg import sub` names `pkg.sub` when that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]


def import_edges(package: Path = PACKAGE) -> list[Edge]:
    root = package.parent
    paths = sorted(package.rglob("*.py"))
    modules = {module_name(p, root) for p in paths}
    edges = []
    for path in paths:
        module = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, type_only in _imports(tree):
            for target in _targets(node, module, path.name == "__init__.py", modules):
                if target.split(".")[0] == "inas" and target != module:
                    edges.append(Edge(module, target, str(path.relative_to(root)), node.lineno, type_only))
    return edges


def units(package: Path = PACKAGE) -> set[str]:
    return {unit_of(module_name(p, package.parent)) for p in package.rglob("*.py")}


def is_violation(edge: Edge) -> bool:
    a, b = unit_of(edge.source), unit_of(edge.target)
    return a != b and (LAYERS[b] >= LAYERS[a] or (a, b) in FORBIDDEN)


def unit_graph(edges: list[Edge]) -> dict[tuple[str, str], int]:
    """(importing unit, imported unit) -> number of distinct (importing module, imported module) pairs."""
    counts: dict[tuple[str, str], int] = {}
    for source, target in sorted({(e.source, e.target) for e in edges}):
        a, b = unit_of(source), unit_of(target)
        if a != b:
            counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts


def graph_markdown(edges: list[Edge]) -> str:
    """The docs/design.md §3 block: per unit, its layer and the units it imports (module pairs in parentheses)."""
    counts = unit_graph(edges)
    lines = ["| layer | unit | imports (in parentheses: how many distinct module pairs) |", "| ---: | --- | --- |"]
    for unit in sorted(units() & set(LAYERS), key=lambda u: (LAYERS[u], u)):
        targets = sorted((b for (a, b) in counts if a == unit), key=lambda u: (-LAYERS[u], u))
        cell = ", ".join(f"`{b or 'inas'}` ({counts[(unit, b)]})" for b in targets) or "nothing of ours"
        lines.append(f"| {LAYERS[unit]} | `{unit or 'inas'}` | {cell} |")
    return "\n".join(lines)


def test_every_unit_has_a_layer():
    missing = sorted(units() - set(LAYERS))
    assert not missing, f"place these in LAYERS (tests/test_layering.py) and docs/design.md §3: {missing}"


def test_imports_point_down():
    new = [f"{e.path}:{e.line}: {e.source} imports {e.target} (layer {LAYERS[unit_of(e.source)]} -> "
           f"{LAYERS[unit_of(e.target)]})" for e in import_edges()
           if is_violation(e) and (e.source, e.target) not in KNOWN_VIOLATIONS]
    assert not new, "imports against the layers of docs/design.md §3:\n" + "\n".join(new)


def test_known_violations_still_exist():
    present = {(e.source, e.target) for e in import_edges() if is_violation(e)}
    gone = sorted(set(KNOWN_VIOLATIONS) - present)
    assert not gone, f"fixed, so delete them from KNOWN_VIOLATIONS: {gone}"


def test_no_new_import_cycles():
    graph = nx.DiGraph((e.source, e.target) for e in import_edges() if not e.type_only)
    cycles = {frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) > 1}
    assert not cycles - set(KNOWN_CYCLES), f"new import cycles: {[sorted(c) for c in cycles - set(KNOWN_CYCLES)]}"
    assert not set(KNOWN_CYCLES) - cycles, f"gone, delete from KNOWN_CYCLES: {list(set(KNOWN_CYCLES) - cycles)}"


def test_the_space_imports_nothing_of_ours_but_errors():
    targets = {unit_of(e.target) for e in import_edges() if unit_of(e.source) == "space"} - {"space"}
    assert targets <= {"errors"}, targets


def test_design_doc_shows_the_current_graph():
    assert graph_markdown(import_edges()) in DESIGN.read_text(encoding="utf-8"), (
        "docs/design.md §3.1 is out of date: run `python tests/test_layering.py --write`")


def test_a_new_upward_import_is_caught(tmp_path):
    package = tmp_path / "inas"
    (package / "space").mkdir(parents=True)
    (package / "search").mkdir()
    (package / "space" / "__init__.py").write_text("def f():\n    from inas.search import x\n")
    (package / "search" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..space import y\n")
    edges = import_edges(package)
    assert [(e.source, e.target, e.type_only, is_violation(e)) for e in edges] == [
        ("inas.search", "inas.space", True, False), ("inas.space", "inas.search", False, True)]


def write_graph_into_design() -> None:
    """Replace the block between the import-graph markers of docs/design.md with the current graph."""
    text = DESIGN.read_text(encoding="utf-8")
    begin, end = "<!-- import-graph:begin -->\n", "<!-- import-graph:end -->"
    head, rest = text.split(begin, 1)
    DESIGN.write_text(head + begin + graph_markdown(import_edges()) + "\n" + end + rest.split(end, 1)[1],
                      encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_graph_into_design()
    else:
        sys.stdout.write(graph_markdown(import_edges()) + "\n")
