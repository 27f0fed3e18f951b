"""Imports that only a type checker sees must not be used at run time.

Modules import heavy types under ``if TYPE_CHECKING:`` and again inside the functions
that need them at run time (start-up time). A function that uses such a name without
its own import passes mypy and ruff and fails only when it runs (``NameError``): this
reads every module of the package and finds those uses.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "l2custody"


def _type_checking_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in ast.walk(node):
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    names.update(a.asname or a.name.split(".")[0] for a in stmt.names)
    return names


def _runtime_names(tree: ast.Module) -> set[str]:
    """Names bound at module level outside ``if TYPE_CHECKING:``."""
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for stmt in ast.walk(node):
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                bound.update(a.asname or a.name.split(".")[0] for a in stmt.names)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(stmt.name)
            elif isinstance(stmt, ast.Name) and isinstance(stmt.ctx, ast.Store):
                bound.add(stmt.id)
    return bound


def _uses_outside_annotations(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.Name]:
    annotations = set()
    for node in ast.walk(func):
        for child in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if child is not None:
                annotations.update(id(n) for n in ast.walk(child))
    return [
        n
        for n in ast.walk(func)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in annotations
    ]


def _bound_in(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    bound = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    for node in ast.walk(func):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return bound


def test_no_function_uses_a_name_only_a_type_checker_imported() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        hidden = _type_checking_names(tree) - _runtime_names(tree)
        if not hidden:
            continue
        for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            local = _bound_in(func)
            for name in _uses_outside_annotations(func):
                if name.id in hidden and name.id not in local:
                    problems.append(f"{path.relative_to(PACKAGE.parent)}:{name.lineno} {func.name} uses {name.id}")
    assert not problems, "\n".join(problems)
