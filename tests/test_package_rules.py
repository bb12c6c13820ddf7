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
