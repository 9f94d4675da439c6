"""`python -m ray_operator`: the operator process, with KubeRay's command-line flags."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kopf

from ray_operator import metrics
from ray_operator.config import OperatorConfig
from ray_operator.controller import Controller, register
from ray_operator.kube import Kube, load_config
from ray_operator.leader import LeaderElector

log = logging.getLogger("ray_operator")
_SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# KubeRay flags that are accepted so its Helm values and habits work, but change nothing here.
_IGNORED_FLAGS = ("--feature-gates", "--qps", "--burst", "--log-file-path", "--log-file-encoder",
                  "--log-stdout-encoder", "--batch-scheduler", "--config")


def _go_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "t", "true", "yes"):
        return True
    if lowered in ("0", "f", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _port(address: str) -> int:
    """`:8080` or `0.0.0.0:8080` → 8080."""
    try:
        return int(address.rsplit(":", 1)[-1])
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected [host]:port, got {address!r}") from err


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ray_operator", description="OpenRay's KubeRay-compatible operator")
    parser.add_argument("--metrics-addr", type=_port, default=8080, help="where /metrics is served (default :8080)")
    parser.add_argument("--health-probe-bind-address", type=_port, default=8082, help="/healthz and /readyz (:8082)")
    parser.add_argument("--enable-leader-election", type=_go_bool, nargs="?", const=True, default=True)
    parser.add_argument("--leader-election-namespace", default="")
    parser.add_argument("--leader-election-id", default="ray-operator-leader")
    parser.add_argument("--reconcile-concurrency", type=int, default=1)
    parser.add_argument("--watch-namespace", default="", help="comma-separated namespaces (default: all)")
    parser.add_argument("--enable-metrics", type=_go_bool, nargs="?", const=True, default=False)
    parser.add_argument("--use-kubernetes-proxy", type=_go_bool, nargs="?", const=True, default=False,
                        help="reach dashboards through the API server's service proxy")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    for flag in _IGNORED_FLAGS:
        parser.add_argument(flag, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> OperatorConfig:
    cfg = OperatorConfig.from_env()
    cfg.metrics_port = args.metrics_addr
    cfg.health_probe_port = args.health_probe_bind_address
    cfg.enable_leader_election = args.enable_leader_election
    cfg.leader_election_id = args.leader_election_id
    cfg.leader_election_namespace = args.leader_election_namespace or _own_namespace()
    cfg.reconcile_concurrency = max(1, args.reconcile_concurrency)
    cfg.watch_namespaces = [n.strip() for n in args.watch_namespace.split(",") if n.strip()]
    cfg.enable_metrics = args.enable_metrics
    cfg.use_kubernetes_proxy = args.use_kubernetes_proxy
    if cfg.use_kubernetes_proxy:
        cfg.dashboard_timeout_s = 10.0
    return cfg


def _own_namespace() -> str:
    try:
        with open(_SA_NAMESPACE_FILE) as handle:
            return handle.read().strip()
    except OSError:
        return os.environ.get("POD_NAMESPACE", "default")


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 — http.server's naming
        ok = self.path in ("/healthz", "/readyz")
        body = b"ok" if ok else b"not found"
        try:
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the prober hung up first (e.g. its timeout); nothing to report

    def log_message(self, *_: object) -> None:
        return


def _serve_health(port: int) -> None:
    server = ThreadingHTTPServer(("0.0.0.0", port), _Health)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handled watch event at INFO; ours only enqueue work, so that is noise.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    for flag in _IGNORED_FLAGS:
        if getattr(args, flag.lstrip("-").replace("-", "_")) is not None:
            log.warning("%s is accepted for KubeRay compatibility and has no effect", flag)
    cfg = build_config(args)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's own login reads it too
    api_client = load_config(args.kubeconfig)
    kube = Kube(api_client)

    metrics.ENABLED = cfg.enable_metrics
    metrics.serve(cfg.metrics_port)
    _serve_health(cfg.health_probe_port)

    elector = None
    if cfg.enable_leader_election:
        elector = LeaderElector(api_client, cfg.leader_election_namespace, cfg.leader_election_id)
        elector.acquire()
        elector.keep_renewing()

    registry = kopf.OperatorRegistry()
    controller = Controller(kube, cfg)
    register(registry, controller)
    log.info("watching %s", ", ".join(cfg.watch_namespaces) or "all namespaces")
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                clusterwide=not cfg.watch_namespaces,
                namespaces=cfg.watch_namespaces,
                standalone=True,
                # kopf would otherwise ask getpass for a user name, which fails for a uid without a
                # passwd entry (e.g. OpenShift's random uids).
                identity=elector.identity if elector else f"{socket.gethostname()}-{os.getpid()}",
            )
        )
    finally:
        controller.stop()
        if elector:
            elector.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
