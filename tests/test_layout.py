"""The packages depend on each other in one direction only, read from the import statements
of every module (those inside functions too): the layout stays as the README describes it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Which of the project's packages each package may import; the tests and benchmarks may
# import any of them.
MAY_IMPORT = {
    "service": set(),
    "reports": set(),
    "locust_cachebench": {"reports"},
    "loadtests": {"locust_cachebench"},
    "cachebench": {"service", "reports", "locust_cachebench"},
}
# Importing Locust (gevent) monkey-patches the standard library: only Locust processes may.
NO_LOCUST = ("service", "reports", "cachebench")


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in MAY_IMPORT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path) -> set[str]:
    """The dotted names `path` imports (the project writes absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: a relative import, which these rules would not see"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


GRAPH = {name: imports(path) for name, path in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_a_module_imports_only_the_packages_its_package_may(module):
    package = module.split(".")[0]
    allowed = MAY_IMPORT[package] | {package}
    project = {i.split(".")[0] for i in GRAPH[module]} & set(MAY_IMPORT)
    assert project <= allowed, f"{module} imports {sorted(project - allowed)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.split(".")[0] in NO_LOCUST))
def test_the_tool_and_the_analysis_never_import_locust(module):
    assert not {i.split(".")[0] for i in GRAPH[module]} & {"locust", "gevent"}


def test_no_module_imports_itself_through_others():
    edges = {m: {i for i in GRAPH[m] if i in GRAPH and i != m} for m in GRAPH}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(edges[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_the_rules_see_a_forbidden_import(tmp_path):
    """The reader of imports is not blind: it finds the imports a rule must catch."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from cachebench.matrix import run_matrix\nimport locust\n")
    assert {"cachebench.matrix", "cachebench.matrix.run_matrix", "locust"} <= imports(source)
