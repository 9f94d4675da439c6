"""The import rule of docs/architecture.md, checked on the source: every `import` (module-level, inside
functions, under TYPE_CHECKING) of every module of the runtime and the operator.

Layers of the runtime, bottom up; a module may import its own layer and the ones below, never above:
  protocol  <  common  <  core worker | processes  <  driver  <  public API
Processes (GCS, raylet, node agent, dashboard) know each other only through the protocol: none imports
another, nor the core worker. The runtime never imports the operator, and the operator reaches the runtime
only through its public interfaces (the operator's own rules: tests/unit/operator/test_builders_are_pure.py,
test_concurrency_model.py).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "runtime"
OPERATOR = REPO / "operator"

PROTOCOL, COMMON, CORE_WORKER, PROCESS, DRIVER, PUBLIC = range(6)
LAYER_NAMES = {PROTOCOL: "protocol", COMMON: "common", CORE_WORKER: "core worker", PROCESS: "process",
               DRIVER: "driver", PUBLIC: "public API"}

# The longest matching prefix decides. Anything under `ray` not listed is public API.
LAYER_OF_PACKAGE = {
    "ray.protocol": PROTOCOL,
    "ray._version": COMMON,
    "ray.exceptions": COMMON,  # the errors every process reports to users; imports nothing of ray
    "ray._common": COMMON,
    "ray.core_worker": CORE_WORKER,
    "ray.gcs": PROCESS,
    "ray.raylet": PROCESS,
    "ray.agent": PROCESS,
    "ray.dashboard": PROCESS,
    "ray._private": DRIVER,
    # The autoscaler (Ray's monitor) starts nodes with the node launcher, as `ray start` does, and knows the GCS
    # only through the protocol; the launcher starts it on the head.
    "ray.autoscaler._private": DRIVER,
}
PROCESS_PACKAGES = ("ray.gcs", "ray.raylet", "ray.agent", "ray.dashboard")
# The node agent is the dashboard's per-node half (in Ray it is `ray.dashboard.agent`): it serves the
# dashboard's job module on its node, and `ray.init()`'s head runs both in one process. One way only.
ALLOWED_BETWEEN_PROCESSES = {("ray.agent", "ray.dashboard")}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (or package.name)
    line: int


def _prefix_match(name: str, prefixes) -> str | None:
    best = None
    for prefix in prefixes:
        if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def layer_of(module: str) -> int:
    prefix = _prefix_match(module, LAYER_OF_PACKAGE)
    return LAYER_OF_PACKAGE[prefix] if prefix else PUBLIC


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> list[Import]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from ray import exceptions` imports the submodule ray.exceptions: judge the most specific name
            found += [Import(module, f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return found


def all_imports(root: Path, package: str) -> list[Import]:
    result = []
    for path in sorted((root / package).rglob("*.py")):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        module = module_name(path, root)
        result += imports_of(path.read_text(), module, path.name == "__init__.py")
    return result


def _runtime_target(imp: Import) -> str | None:
    """The `ray` module an import names, `from ray import x` judged as `ray.x` only when x is a submodule."""
    target = imp.target
    if not (target == "ray" or target.startswith("ray.")):
        return None
    parts = target.split(".")
    while len(parts) > 1 and not _exists(".".join(parts)):
        parts.pop()  # `ray._common.ids.TaskID` -> `ray._common.ids`
    return ".".join(parts)


def _exists(module: str) -> bool:
    path = RUNTIME.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def violations(imports: list[Import]) -> list[str]:
    """Every import that breaks the runtime's layering, as a readable line."""
    found = []
    for imp in imports:
        if imp.target.split(".")[0] == "ray_operator":
            found.append(f"{imp.module}:{imp.line} imports {imp.target}: the runtime never imports the operator")
            continue
        target = _runtime_target(imp)
        if target is None:
            continue
        src, dst = layer_of(imp.module), layer_of(target)
        if dst > src or (src == dst == PROCESS and _different_process(imp.module, target)) or (
                {src, dst} == {CORE_WORKER, PROCESS}):
            found.append(f"{imp.module}:{imp.line} ({LAYER_NAMES[src]}) imports {target} ({LAYER_NAMES[dst]})")
    return found


def _different_process(module: str, target: str) -> bool:
    mine = _prefix_match(module, PROCESS_PACKAGES)
    theirs = _prefix_match(target, PROCESS_PACKAGES)
    if mine == theirs:
        return False
    return (mine, theirs) not in ALLOWED_BETWEEN_PROCESSES


def test_the_runtime_imports_only_downward():
    assert violations(all_imports(RUNTIME, "ray")) == []


def test_the_runtime_has_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    for imp in all_imports(RUNTIME, "ray"):
        target = _runtime_target(imp)
        if target is not None and target != imp.module and not imp.module.startswith(target + "."):
            graph.setdefault(imp.module, set()).add(target)
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # A package's __init__ that re-exports its own modules is not a cycle of code.
    cycles = [c for c in cycles if not _package_face_cycle(c)]
    assert cycles == []


def _package_face_cycle(cycle: str) -> bool:
    nodes = cycle.split(" -> ")
    return any(all(n == a or n.startswith(a + ".") for n in nodes) for a in nodes)


def test_the_operator_reaches_the_runtime_only_through_its_public_interfaces():
    # The CLI, SDK and HTTP API are its interfaces; no internals.
    bad = [f"{imp.module}:{imp.line} imports {imp.target}" for imp in all_imports(OPERATOR, "ray_operator")
           if imp.target.split(".")[0] == "ray"]
    assert bad == []


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("ray.gcs.server", "import ray\n", "ray.gcs.server:1 (process) imports ray (public API)"),
    ("ray._common.ids", "from ray._private import worker\n",
     "ray._common.ids:1 (common) imports ray._private.worker (driver)"),
    ("ray.raylet.node_manager", "from ray.core_worker import executor\n",
     "ray.raylet.node_manager:1 (process) imports ray.core_worker.executor (core worker)"),
    ("ray.gcs.actor_manager", "from ray.raylet import worker_pool\n",
     "ray.gcs.actor_manager:1 (process) imports ray.raylet.worker_pool (process)"),
    ("ray.dashboard.dashboard", "from ray.agent import agent\n",
     "ray.dashboard.dashboard:1 (process) imports ray.agent.agent (process)"),
    ("ray.core_worker.core_worker", "def f():\n    from ray import actor\n",
     "ray.core_worker.core_worker:2 (core worker) imports ray.actor (public API)"),
    ("ray._private.node", "from ray_operator import kube\n",
     "ray._private.node:1 imports ray_operator.kube: the runtime never imports the operator"),
])
def test_the_rule_catches_an_upward_import(module, source, expected):
    assert violations(imports_of(source, module, is_package=False)) == [expected]


def test_the_rule_lets_downward_imports_through():
    source = "from ray._common import framing\nfrom ray.protocol import gcs_pb2\nfrom ray import exceptions\n"
    assert violations(imports_of(source, "ray.raylet.node_manager", is_package=False)) == []
    assert violations(imports_of("from ray.core_worker import core_worker\n", "ray._private.worker", False)) == []
