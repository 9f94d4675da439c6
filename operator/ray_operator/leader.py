"""Leader election on a coordination.k8s.io Lease, as controller-runtime does it.

Only the holder reconciles. The holder renews every `retry_period_s`; when it cannot renew within
`renew_deadline_s` it exits (the Deployment restarts it as a follower), so two operators never act at once.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        lease_duration_s: int = 15,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        identity: str | None = None,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()

    def _try_acquire_or_renew(self) -> bool:
        now = _now()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_duration_s,
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": spec["renewTime"], "leaseTransitions": 0},
            }
            try:
                self.api.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as create_err:
                if create_err.status == 409:
                    return False
                raise
        holder = lease.spec.holder_identity
        renewed = lease.spec.renew_time
        duration = lease.spec.lease_duration_seconds or self.lease_duration_s
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder != self.identity and not expired:
            return False
        body = {
            "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": lease.metadata.resource_version},
            "spec": {
                **spec,
                "acquireTime": spec["renewTime"] if holder != self.identity else lease.spec.acquire_time,
                "leaseTransitions": (lease.spec.lease_transitions or 0) + (1 if holder != self.identity else 0),
            },
        }
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, body)
            return True
        except ApiException as err:
            if err.status == 409:  # someone else wrote it first
                return False
            raise

    def acquire(self) -> None:
        """Block until this process holds the lease."""
        log.info("waiting for leadership on lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not self._stop.is_set():
            try:
                if self._try_acquire_or_renew():
                    log.info("became leader (lease %s/%s)", self.namespace, self.name)
                    return
            except ApiException as err:
                log.warning("leader election: %s", err.reason)
            self._stop.wait(self.retry_period_s)

    def keep_renewing(self, on_lost: Callable[[], None] | None = None) -> threading.Thread:
        """Renew in the background; call `on_lost` (default: exit the process) if renewal fails too long."""

        def loop() -> None:
            last_renew = time.monotonic()
            while not self._stop.wait(self.retry_period_s):
                try:
                    if self._try_acquire_or_renew():
                        last_renew = time.monotonic()
                        continue
                except Exception as err:  # a network blip is retried until the deadline
                    log.warning("leader election renew failed: %s", err)
                if time.monotonic() - last_renew > self.renew_deadline_s:
                    log.error("lost leadership of lease %s/%s; exiting", self.namespace, self.name)
                    (on_lost or (lambda: os._exit(1)))()
                    return

        thread = threading.Thread(target=loop, name="leader-renew", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Stop renewing and let the lease expire early so a successor takes over fast."""
        self._stop.set()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as err:
            log.info("could not release lease: %s", err.reason)
