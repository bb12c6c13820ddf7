"""Rules the package keeps for its next contributor: small modules and functions (configs and
dataclasses carry the rest), and a README layout section that matches the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fusion_perception

PACKAGE = Path(fusion_perception.__file__).resolve().parent
README = PACKAGE.parent / "README.md"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 8  # self/cls and *args/**kwargs not counted


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len(names) - (1 if names[:1] in (["self"], ["cls"]) else 0)


def test_modules_stay_small():
    big = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := p.read_text().count("\n")) > MAX_MODULE_LINES}
    assert big == {}


def test_functions_stay_small():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines, params = node.end_lineno - node.lineno + 1, _parameters(node)
                if lines > MAX_FUNCTION_LINES or params > MAX_PARAMETERS:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} "
                                     f"({lines} lines, {params} parameters)")
    assert offenders == []


def test_readme_layout_section_matches_the_package_tree():
    text = README.read_text()
    block = text[text.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    # the package's top-level entries: what a line indented by two spaces starts with, one name
    # ("data/", "runs.py") or a comma-separated list of them ("errors.py, outputs.py")
    named = {name for lead in re.findall(r"^  (\w+(?:/|\.py)(?:, \w+(?:/|\.py))*)", block, flags=re.M)
             for name in lead.split(", ")}
    tree = {p.name + "/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    tree |= {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert sorted(tree - named) == [], "in the package, missing from the README's layout section"
    assert sorted(named - tree) == [], "in the README's layout section, not in the package"


# --------------------------------------------------------------------------- the import graph

# Each top-level module and package of fusion_perception and its layer: a module imports only from
# its own layer or the ones below (every import counts, also one inside a function), and no two
# modules import each other, directly or round a circle. A new top-level entry needs a layer here.
LAYERS: dict[str, int] = {
    **dict.fromkeys(("__init__", "errors", "registry", "files", "record", "console", "outputs", "provenance",
                     "devices", "config_files", "checkpoints", "filters", "cli_plugins", "runner_progress",
                     "runner_guards"), 0),
    **dict.fromkeys(("data", "synthetic"), 1),  # datasets on disk, and the generated ones
    **dict.fromkeys(("fusion", "metrics"), 2),  # fusing them, scoring the fused images
    "emma": 3,  # a fusion method with its networks and training
    "runs": 4,  # the skeleton of every downstream run
    **dict.fromkeys(("detection", "segmentation"), 5),  # the tasks
    "comparison": 6,  # method against method, over the tasks
    **dict.fromkeys(("commands", "cli", "__main__"), 7),  # the command line
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (any import, at any depth of the code)."""
    modules = {_module_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target in modules and target != name and target.startswith("fusion_perception"):
                    graph[name].add(target)
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_no_module_imports_from_a_layer_above_it():
    graph = _import_graph()
    units = {_unit(m) for m in graph}
    assert sorted(units - set(LAYERS)) == [], "top-level entries without a layer in LAYERS"
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                    if LAYERS[_unit(a)] < LAYERS[_unit(b)])
    assert upward == [], upward


def test_no_import_cycle():
    graph = _import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while component[-1:] != [node]:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == [], cycles
