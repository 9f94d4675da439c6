"""kubectl and helm as a user runs them, against one kubeconfig (used by the e2e tests)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


class KubeError(RuntimeError):
    """A kubectl or helm command failed; the message has the command and its output."""


@dataclass(frozen=True)
class Kube:
    """A cluster as a user reaches it: kubectl and helm with one kubeconfig."""

    kubeconfig: str
    kubectl_path: str
    helm_path: str | None

    def _run(self, argv: list[str], check: bool, timeout: float, stdin: str | None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise KubeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
        """Runs kubectl; returns its stdout (raises KubeError on failure when check)."""
        return self._run([self.kubectl_path, *args], check, timeout, stdin).stdout

    def kubectl_json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout))

    def apply(self, manifest: str | dict[str, Any], namespace: str | None = None) -> None:
        """kubectl apply of a YAML/JSON document or of an object given as a dict."""
        ns = ["-n", namespace] if namespace else []
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl("apply", *ns, "-f", "-", stdin=text)

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        if self.helm_path is None:
            pytest.skip("helm is not installed: run `make tools` or put helm on PATH")
        return self._run([self.helm_path, *args], check, timeout, None).stdout

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 180, interval: float = 1) -> None:
        """Polls predicate until true; fails with `what` after timeout seconds (never asserts speed)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)
