"""The autoscaler process (Ray's monitor): `ray start --head --autoscaling-config=<file>` starts it beside the
GCS (`python -m ray.autoscaler._private.monitor`), `ray kuberay-autoscaler` runs it in the KubeRay sidecar.

Every `AUTOSCALER_UPDATE_INTERVAL_S` it runs one `Autoscaler.update()`. It logs to `<session>/logs/monitor.log`
(rotated as Ray's logs are; its stdout/stderr go to monitor.out/.err), serves its metrics on
`AUTOSCALER_METRIC_PORT` and says where in the GCS KV (`AutoscalerMetricsAddress`). When the GCS cannot be
reached for `AUTOSCALER_MAX_NUM_FAILURES` rounds in a row it exits (the cluster is gone; a sidecar is restarted).
An error inside a round is logged and counted (`autoscaler_update_loop_exceptions`) and the next round runs.
SIGTERM stops it after the current round.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from ray.autoscaler._private import constants

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"
ROTATE_BYTES = int(os.environ.get("RAY_ROTATION_MAX_BYTES", 512 * 1024 * 1024))
ROTATE_BACKUPS = int(os.environ.get("RAY_ROTATION_BACKUP_COUNT", 5))


def setup_logging(log_dir: str, to_stdout: bool = False) -> str:
    """monitor.log in `log_dir` (and stdout/stderr for a sidecar, whose output `kubectl logs` shows)."""
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, constants.MONITOR_LOG_FILE_NAME)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_BACKUPS)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    if to_stdout:
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(stream)
    return path


class Monitor:
    def __init__(self, gcs_address: str, config_reader: Callable[[], dict], provider_factory,
                 monitor_ip: str = "127.0.0.1", retry_on_failure: bool = True) -> None:
        from ray._common.gcs_client import GcsClient
        from ray.autoscaler._private.autoscaler import Autoscaler
        from ray.autoscaler._private.metrics import AutoscalerMetrics

        self.gcs = GcsClient(gcs_address, timeout_s=10)
        self.monitor_ip = monitor_ip
        self.retry_on_failure = retry_on_failure
        self._stop = threading.Event()
        session = ""
        try:
            session = self.gcs.get_cluster_resource_state(timeout_s=30).cluster_session_name
        except ConnectionError as e:
            logger.warning("Could not read the session name from the GCS: %s", e)
        self.metrics = AutoscalerMetrics(session)
        self.autoscaler = Autoscaler(self.gcs, config_reader, provider_factory, self.metrics)

    def stop(self) -> None:
        self._stop.set()

    def _publish_metrics_address(self) -> None:
        from ray.autoscaler._private.metrics import METRICS_ADDRESS_KEY

        port = self.metrics.serve("0.0.0.0" if self.monitor_ip not in ("127.0.0.1", "localhost") else self.monitor_ip,
                                  constants.AUTOSCALER_METRIC_PORT)
        if port is None:
            return
        try:
            self.gcs.internal_kv_put(METRICS_ADDRESS_KEY, f"{self.monitor_ip}:{port}".encode(), True)
        except (ConnectionError, ValueError) as e:
            logger.warning("Could not record the autoscaler's metrics address in the GCS: %s", e)
        logger.info("Autoscaler metrics are served at http://%s:%d/metrics.", self.monitor_ip, port)

    def run(self) -> int:
        self._publish_metrics_address()
        logger.info("Monitor: started (every %g s).", constants.AUTOSCALER_UPDATE_INTERVAL_S)
        failures = 0
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    summary = self.autoscaler.update()
                    failures = 0
                    if summary.launched or summary.terminated:
                        logger.info("Round: launched %s, terminated %s.", summary.launched or "nothing",
                                    summary.terminated or "nothing")
                except ConnectionError as e:
                    failures += 1
                    logger.warning("The GCS could not be reached (%d/%d): %s", failures,
                                   constants.AUTOSCALER_MAX_NUM_FAILURES, e)
                    if failures >= constants.AUTOSCALER_MAX_NUM_FAILURES:
                        logger.error("Monitor: the GCS is gone; exiting.")
                        return 1
                except Exception:  # noqa: BLE001 - one bad round must not end the autoscaler
                    failures += 1
                    logger.exception("Monitor: the autoscaler's round failed.")
                    self.metrics.update_loop_exceptions.labels(SessionName=self.metrics.session).inc()
                    if not self.retry_on_failure and failures >= constants.AUTOSCALER_MAX_NUM_FAILURES:
                        return 1
                self._stop.wait(max(0.0, constants.AUTOSCALER_UPDATE_INTERVAL_S - (time.monotonic() - started)))
        finally:
            self.autoscaler.close()
            self.metrics.close()
            self.gcs.close()
        logger.info("Monitor: stopped.")
        return 0


def _install_signal_handlers(monitor: Monitor) -> None:
    def on_signal(signum, frame):
        monitor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def file_config_reader(path: str) -> Callable[[], dict]:
    from ray.autoscaler._private.config import load_file

    return lambda: load_file(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenRay autoscaler (monitor)")
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--autoscaling-config", required=True)
    parser.add_argument("--logs-dir", required=True)
    parser.add_argument("--monitor-ip", default="127.0.0.1")
    parser.add_argument("--temp-dir", default=None)
    args = parser.parse_args(argv)
    setup_logging(args.logs_dir)
    from ray.autoscaler._private.providers import make_provider

    monitor = Monitor(args.gcs_address, file_config_reader(args.autoscaling_config),
                      lambda config: make_provider(config, args.gcs_address, args.temp_dir),
                      monitor_ip=args.monitor_ip)
    _install_signal_handlers(monitor)
    sys.exit(monitor.run())


def run_kuberay_autoscaler(cluster_name: str, cluster_namespace: str, gcs_address: str | None = None) -> int:
    """`ray kuberay-autoscaler`: wait for the head's GCS, then run the monitor with the kuberay provider and
    the config the RayCluster describes (read again every round). Logs to the head's
    /tmp/ray/session_latest/logs/monitor.log (a volume the two containers share) and to stdout."""
    from ray._common import process_registry
    from ray._common.auth import AuthenticationError
    from ray._common.gcs_client import GcsClient
    from ray._common.net import node_ip_address
    from ray.autoscaler._private.providers.kuberay import KubeRayNodeProvider

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    ip = node_ip_address()
    address = gcs_address or f"{ip}:{os.environ.get('RAY_PORT', '6379')}"
    while True:
        client = GcsClient(address, timeout_s=5)
        try:
            client.check_alive()
            break
        except (ConnectionError, AuthenticationError) as e:
            logger.warning("The Ray head is not ready (%s). Will check again in 5 seconds.", e)
            time.sleep(5)
        finally:
            client.close()
    logger.info("The Ray head is ready. Starting the autoscaler.")
    log_dir = os.path.join(process_registry.default_temp_dir(), "session_latest", "logs")
    logging.getLogger().handlers.clear()
    setup_logging(log_dir, to_stdout=True)
    provider = KubeRayNodeProvider(cluster_namespace, cluster_name)
    monitor = Monitor(address, provider.autoscaling_config, lambda config: provider, monitor_ip=ip,
                      retry_on_failure=False)
    _install_signal_handlers(monitor)
    return monitor.run()


if __name__ == "__main__":
    main()
