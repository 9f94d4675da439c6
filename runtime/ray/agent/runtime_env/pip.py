"""pip runtime envs: one virtualenv per distinct requirement list, which still sees the runtime's own
packages (ray, grpc, ...) so workers started from it can run OpenRay.

The venv is made from the runtime's interpreter with --system-site-packages, and a .pth file adds the
runtime's site-packages directories after the venv's own, so a pip-installed version wins over the
runtime's. Packages are installed by the runtime's pip targeting the venv (`pip --python`), which
avoids bootstrapping pip into every venv.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import site
import subprocess
import sys
from typing import Any

from ray._common.runtime_env.packaging import directory_size, file_lock
from ray._version import RUNTIME_ROOT

logger = logging.getLogger(__name__)

_COMPLETE_MARKER = ".openray-complete"


class PipInstallError(RuntimeError):
    pass


def pip_env_hash(pip_spec: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"packages": pip_spec.get("packages", []), "pip_check": bool(pip_spec.get("pip_check"))},
        sort_keys=True,
    )
    return hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()[:20]


def venv_python(env_dir: str) -> str:
    return os.path.join(env_dir, "virtualenv", "bin", "python")


def _runtime_site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    user = site.getusersitepackages()
    if isinstance(user, str) and os.path.isdir(user):
        dirs.append(user)
    # The `ray` package itself, in case it is importable from a path no site dir covers (PYTHONPATH).
    ray_parent = RUNTIME_ROOT
    if ray_parent not in dirs:
        dirs.append(ray_parent)
    return [d for d in dirs if os.path.isdir(d)]


def _venv_site_packages(venv_dir: str) -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return os.path.join(venv_dir, "lib", version, "site-packages")


def _run(cmd: list[str], log_file: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    with open(log_file, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-10000:]
        raise PipInstallError(
            f"Failed to install pip requirements:\n{output}\n(command {' '.join(cmd)!r} exited with {result.returncode})"
        )


def create_pip_env(env_dir: str, pip_spec: dict[str, Any], log_file: str) -> None:
    """Creates the venv in `env_dir` once per node (safe against concurrent creators)."""
    with file_lock(env_dir + ".lock"):
        if os.path.exists(os.path.join(env_dir, _COMPLETE_MARKER)):
            return
        shutil.rmtree(env_dir, ignore_errors=True)  # a half-made env from a crash
        venv_dir = os.path.join(env_dir, "virtualenv")
        try:
            _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv_dir], log_file)
            site_packages = _venv_site_packages(venv_dir)
            os.makedirs(site_packages, exist_ok=True)
            with open(os.path.join(site_packages, "_openray_runtime.pth"), "w") as f:
                # addsitedir (not a bare path) so the runtime's own .pth files (editable installs) apply.
                f.write("".join(f"import site; site.addsitedir({d!r})\n" for d in _runtime_site_dirs()))
            packages = list(pip_spec.get("packages", []))
            if packages:
                _run(
                    [sys.executable, "-m", "pip", "--python", venv_python(env_dir), "install",
                     "--disable-pip-version-check", "--no-input", *packages],
                    log_file,
                )
            if pip_spec.get("pip_check"):
                _run([sys.executable, "-m", "pip", "--python", venv_python(env_dir), "check"], log_file)
        except BaseException:
            shutil.rmtree(env_dir, ignore_errors=True)
            raise
        with open(os.path.join(env_dir, _COMPLETE_MARKER), "w") as f:
            json.dump(pip_spec, f)


def delete_pip_env(env_dir: str) -> int:
    with file_lock(env_dir + ".lock"):
        size = directory_size(env_dir)
        shutil.rmtree(env_dir, ignore_errors=True)
    return size


def pip_env_context(env_dir: str) -> tuple[str, dict[str, str]]:
    """(python executable, env vars) for a process inside the env; `python` on PATH is the venv's."""
    bin_dir = os.path.dirname(venv_python(env_dir))
    # Then the runtime's own bin dir, so `ray` (not installed in the venv) still resolves.
    path = os.pathsep.join([bin_dir, os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")])
    return venv_python(env_dir), {"VIRTUAL_ENV": os.path.dirname(bin_dir), "PATH": path}
