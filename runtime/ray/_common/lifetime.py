"""Child processes that must die with their parent (a driver's local cluster, a raylet's workers).

The parent sets `RAY_DIE_WITH_PARENT=<parent pid>:<signal>` in the child's environment and the child calls
`die_with_parent()` first thing. Doing it in the child (rather than a `preexec_fn`) lets `subprocess` spawn
without running Python between fork and exec, which gRPC's fork handlers do not survive.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

ENV = "RAY_DIE_WITH_PARENT"


def env_for_child(sig: int = signal.SIGTERM) -> dict[str, str]:
    return {ENV: f"{os.getpid()}:{int(sig)}"}


def die_with_parent() -> None:
    value = os.environ.pop(ENV, "")
    if not value:
        return
    parent, sig = (int(x) for x in value.split(":"))
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before we set it up
        os.kill(os.getpid(), sig)


def exec_module(argv: list[str]) -> None:
    """`python -m ray._common.lifetime <module> args...`: arm die-with-parent, then become the module.

    Used for components that do not call `die_with_parent()` themselves (agent, dashboard): the parent-death
    signal survives `execv`.
    """
    import sys

    die_with_parent()
    os.execv(sys.executable, [sys.executable, "-m", *argv])


if __name__ == "__main__":
    import sys

    exec_module(sys.argv[1:])
