"""Operator settings: KubeRay's command-line flags and environment switches."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ray_operator import constants as c
from ray_operator.builders.pod import PodOptions


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class OperatorConfig:
    watch_namespaces: list[str] = field(default_factory=list)  # empty: every namespace
    reconcile_concurrency: int = 1
    raycluster_requeue_s: float = 300.0
    rayjob_requeue_s: float = 3.0
    error_requeue_s: float = 2.0
    metrics_port: int = 8080
    enable_metrics: bool = False
    health_probe_port: int = 8082
    enable_leader_election: bool = True
    leader_election_namespace: str = ""
    leader_election_id: str = "ray-operator-leader"
    use_kubernetes_proxy: bool = False
    dashboard_timeout_s: float = 2.0
    cluster_ip_head_service: bool = False
    delete_rayjob_cr_after_job_finishes: bool = False
    enable_gcs_ft_redis_cleanup: bool = True
    pod_options: PodOptions = field(default_factory=PodOptions)

    @classmethod
    def from_env(cls) -> OperatorConfig:
        """Defaults overridden by KubeRay's operator environment variables."""
        return cls(
            raycluster_requeue_s=float(os.environ.get("RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV", "300")),
            cluster_ip_head_service=_env_bool("ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE", False),
            delete_rayjob_cr_after_job_finishes=_env_bool("DELETE_RAYJOB_CR_AFTER_JOB_FINISHES", False),
            enable_gcs_ft_redis_cleanup=_env_bool("ENABLE_GCS_FT_REDIS_CLEANUP", True),
            pod_options=PodOptions(
                cluster_domain=os.environ.get("CLUSTER_DOMAIN", c.CLUSTER_DOMAIN_DEFAULT),
                enable_init_container_injection=_env_bool("ENABLE_INIT_CONTAINER_INJECTION", True),
                enable_probes_injection=_env_bool("ENABLE_PROBES_INJECTION", True),
                enable_login_shell=_env_bool("ENABLE_LOGIN_SHELL", False),
                deterministic_head_pod_name=_env_bool("ENABLE_DETERMINISTIC_HEAD_POD_NAME", False),
            ),
        )
