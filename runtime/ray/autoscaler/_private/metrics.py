"""The autoscaler's Prometheus metrics (Ray's names: namespace `autoscaler`, label `SessionName`), served on
`AUTOSCALER_METRIC_PORT` (44217) at `/metrics`; the address is kept in the GCS KV under Ray's key
`AutoscalerMetricsAddress`."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

METRICS_ADDRESS_KEY = b"AutoscalerMetricsAddress"


class AutoscalerMetrics:
    def __init__(self, session_name: str) -> None:
        self.session = session_name
        self.registry = CollectorRegistry()
        ns, s = "autoscaler", ("SessionName",)
        typed = ("NodeType", "SessionName")
        self.update_time = Histogram("update_time", "Autoscaler update time. This is the time for an autoscaler "
                                     "update iteration to complete.", s, namespace=ns, registry=self.registry,
                                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.pending_nodes = Gauge("pending_nodes", "Number of nodes pending to be started.", typed, namespace=ns,
                                   registry=self.registry)
        self.active_nodes = Gauge("active_nodes", "Number of nodes in the cluster.", typed, namespace=ns,
                                  registry=self.registry)
        self.recently_failed_nodes = Gauge("recently_failed_nodes", "The number of recently failed nodes.", typed,
                                           namespace=ns, registry=self.registry)
        self.running_workers = Gauge("running_workers", "Number of worker nodes running.", s, namespace=ns,
                                     registry=self.registry)
        self.started_nodes = Counter("started_nodes", "Number of nodes started.", s, namespace=ns,
                                     registry=self.registry)
        self.stopped_nodes = Counter("stopped_nodes", "Number of nodes stopped.", s, namespace=ns,
                                     registry=self.registry)
        self.failed_create_nodes = Counter("failed_create_nodes", "Number of nodes that failed to be created due to "
                                           "an exception in the node provider.", s, namespace=ns,
                                           registry=self.registry)
        self.update_loop_exceptions = Counter("update_loop_exceptions", "Number of exceptions raised in the update "
                                              "loop of the autoscaler.", s, namespace=ns, registry=self.registry)
        self.node_launch_exceptions = Counter("node_launch_exceptions", "Number of exceptions raised while "
                                              "launching nodes.", s, namespace=ns, registry=self.registry)
        self.cluster_resources = Gauge("cluster_resources", "Total logical resources in the cluster.",
                                       ("resource", "SessionName"), namespace=ns, registry=self.registry)
        self.pending_resources = Gauge("pending_resources", "Pending logical resources in the cluster.",
                                       ("resource", "SessionName"), namespace=ns, registry=self.registry)
        self._server: ThreadingHTTPServer | None = None

    def set_by_type(self, gauge: Gauge, counts: dict[str, int], known: set[str]) -> None:
        for node_type in known | set(counts):
            gauge.labels(NodeType=node_type, SessionName=self.session).set(counts.get(node_type, 0))

    def set_resources(self, gauge: Gauge, amounts: dict[str, float], known: set[str]) -> None:
        for name in known | set(amounts):
            gauge.labels(resource=name, SessionName=self.session).set(amounts.get(name, 0.0))

    def serve(self, host: str, port: int) -> int | None:
        """Serves /metrics in a thread; the bound port, or None when it could not bind (logged)."""
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            logger.warning("The autoscaler's metrics are not served: cannot listen on %s:%d (%s).", host, port, e)
            return None
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="autoscaler-metrics", daemon=True).start()
        return self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
