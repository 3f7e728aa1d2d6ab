"""The docs hold what the code does: every test the fault table names exists."""

import ast
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_test_the_fault_table_names_exists():
    table = (REPO / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    assert len(named) >= 10
    for path, name in named:
        tree = ast.parse((REPO / path).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"docs/reliability.md names {path}::{name}, which does not exist"
