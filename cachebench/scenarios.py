"""The Locust scenarios: every `loadtests/*.py` file, found without importing it.

The tool never imports a locustfile (importing Locust monkey-patches the standard library);
it reads each file's docstring and its optional `IN_DEFAULT_MATRIX = False` with `ast`.
"""

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# Found, not imported: its __init__ is all that find_spec reads.
LOADTESTS = Path(importlib.util.find_spec("loadtests").origin).parent  # type: ignore[union-attr, arg-type]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    summary: str  # the first line of the file's docstring
    in_default_matrix: bool


def _read(path: Path) -> Scenario:
    module = ast.parse(path.read_text(encoding="utf-8"), str(path))
    in_default = True
    for node in module.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["IN_DEFAULT_MATRIX"]
            and isinstance(node.value, ast.Constant)
        ):
            in_default = bool(node.value.value)
    summary = (ast.get_docstring(module) or "").strip().splitlines()
    return Scenario(path.stem, path, summary[0] if summary else "", in_default)


@cache
def scenarios() -> dict[str, Scenario]:
    """Every scenario by name, in the order of their names (Locust's directory mode skips
    files whose names start with `_`, and so does this)."""
    paths = sorted(p for p in LOADTESTS.glob("*.py") if not p.name.startswith("_"))
    return {p.stem: _read(p) for p in paths}


def default_scenarios() -> tuple[str, ...]:
    return tuple(name for name, s in scenarios().items() if s.in_default_matrix)
