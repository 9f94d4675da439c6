"""One concurrency model: kopf's event loop only watches and enqueues keys (async handlers in
`controller`, the loop started once in `__main__`); every reconcile runs in the work queue's threads
with synchronous I/O. So no other module may start an event loop, await, or use an async HTTP client."""

from __future__ import annotations

import ast
from pathlib import Path

import ray_operator

PACKAGE = Path(ray_operator.__file__).parent
ASYNC_LIBRARIES = {"asyncio", "aiohttp", "anyio", "httpx"}
# The only module that starts an event loop (kopf's), and the only one with coroutines (kopf's watch handlers).
LOOP_OWNER = "__main__.py"
WATCHERS = "controller.py"


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(PACKAGE)), ast.parse(p.read_text())) for p in sorted(PACKAGE.rglob("*.py"))]


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_main_starts_an_event_loop():
    offenders = [name for name, tree in _modules() if _imported(tree) & ASYNC_LIBRARIES and name != LOOP_OWNER]
    assert not offenders, f"async libraries outside {LOOP_OWNER}: {offenders}"
    main = dict(_modules())[LOOP_OWNER]
    runs = [n for n in ast.walk(main) if isinstance(n, ast.Call) and ast.unparse(n.func) == "asyncio.run"]
    assert len(runs) == 1 and "kopf.operator" in ast.unparse(runs[0]), "asyncio.run is for kopf's loop only"


def test_coroutines_only_enqueue():
    for name, tree in _modules():
        coroutines = [n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)]
        awaits = [n for n in ast.walk(tree) if isinstance(n, ast.Await)]
        if name != WATCHERS:
            assert not coroutines and not awaits, f"{name} has coroutines; reconcile work belongs in the work queue"
            continue
        for fn in coroutines:  # each kopf handler is one call that enqueues: `controller.on_<kind>_event(...)`
            assert len(fn.body) == 1 and "controller.on_" in ast.unparse(fn.body[0]), ast.unparse(fn)
        assert not awaits
