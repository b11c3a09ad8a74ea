"""Imports run one way (docs/architecture.md): ``estimators`` imports nothing of ``sims`` or
``analysis``; ``analysis`` imports at most ``estimators.result`` and never ``sims``."""
from __future__ import annotations

import ast

import pytest

from helpers import ROOT

# package -> (project packages it must not import, modules of those it may import nonetheless)
RULES = {
    "estimators": ({"sims", "analysis"}, ()),
    "analysis": ({"sims", "estimators"}, ("estimators.result",)),
}


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` anywhere in ``source`` names, also inside
    functions; ``from package import name`` counts as ``package.name``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if "." in node.module:
                names.add(node.module)
            else:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(package: str, sources: dict[str, str]) -> list[str]:
    """``"<file> imports <module>"`` for every import in ``sources`` that ``RULES[package]`` forbids."""
    forbidden, allowed = RULES[package]
    return [
        f"{path} imports {name}"
        for path, source in sorted(sources.items())
        for name in sorted(imported_modules(source))
        if name.split(".", 1)[0] in forbidden and not any(name == ok or name.startswith(ok + ".") for ok in allowed)
    ]


def package_sources(package: str) -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for path in (ROOT / package).rglob("*.py")}


@pytest.mark.parametrize("package", sorted(RULES))
def test_imports_run_one_way(package):
    assert len(package_sources(package)) > 5
    assert violations(package, package_sources(package)) == []


@pytest.mark.parametrize("package, source, allowed", [
    ("estimators", "def f():\n    from sims.run.store import RunStore\n", False),
    ("estimators", "import analysis.measures\n", False),
    ("analysis", "from sims import api\n", False),
    ("analysis", "from estimators import result\n", True),
    ("analysis", "from estimators.result import Status\n", True),
    ("analysis", "from estimators.lmm import MixedFit\n", False),
    ("analysis", "import estimators\n", False),
])
def test_the_rule_tells_allowed_from_forbidden_imports(package, source, allowed):
    assert (violations(package, {"module.py": source}) == []) is allowed
