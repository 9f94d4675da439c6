"""The builders (and the RayJob state machine among them) know nothing of kopf or the API clients:
dicts in, dicts out. This walks their imports, directly and through other ray_operator modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ray_operator

PACKAGE = Path(ray_operator.__file__).parent
FORBIDDEN = {"kopf", "kubernetes", "urllib3", "aiohttp", "prometheus_client"}
# What a builder may import from the operator besides other builders: plain constants.
ALLOWED_OUTSIDE_BUILDERS = {"ray_operator.constants", "ray_operator.events"}


def _module_path(module: str) -> Path | None:
    parts = module.split(".")[1:]
    for candidate in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from ray_operator.builders import names` imports the module ray_operator.builders.names
            found |= {f"{node.module}.{alias.name}" for alias in node.names if _module_path(f"{node.module}.{alias.name}")}
    return found


def test_builders_import_neither_kopf_nor_api_clients():
    problems = []
    for path in sorted((PACKAGE / "builders").glob("*.py")):
        start = f"ray_operator.builders.{path.stem}"
        seen, todo = set(), [(start, path)]
        while todo:
            module, module_path = todo.pop()
            for name in _imports(module_path):
                top = name.split(".")[0]
                if top in FORBIDDEN:
                    problems.append(f"{start} imports {name} (through {module})")
                if top != "ray_operator" or name in seen:
                    continue
                seen.add(name)
                if not name.startswith("ray_operator.builders") and name not in ALLOWED_OUTSIDE_BUILDERS \
                        and name != "ray_operator":
                    problems.append(f"{start} imports {name} (through {module}): builders sit below the rest")
                target = _module_path(name)
                if target is not None:
                    todo.append((name, target))
    assert not problems, "\n".join(problems)


def test_importing_every_builder_loads_no_api_client():
    modules = [f"ray_operator.builders.{p.stem}" for p in sorted((PACKAGE / "builders").glob("*.py"))]
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out
