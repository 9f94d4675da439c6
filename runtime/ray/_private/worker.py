"""The driver-side public API: init/shutdown, get/put/wait, cluster info. `global_worker` holds this
process's connection (a driver after `ray.init`, or the worker a raylet started)."""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import uuid
from typing import Any

from ray._common import long_lived, process_registry
from ray._common.ids import JobID
from ray.core_worker.object_ref import ObjectRef

logger = logging.getLogger("ray")

RAY_JOB_CONFIG_JSON_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"


class RayContext(dict):
    """What `ray.init` returns: dict-like address info plus `.dashboard_url`."""

    def __init__(self, address_info: dict):
        super().__init__(address_info)
        self.address_info = address_info
        self.dashboard_url = address_info.get("webui_url", "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()


class Worker:
    def __init__(self) -> None:
        self.core_worker = None
        self.mode: str | None = None
        self.node = None  # the local cluster this driver started, if any
        self.gcs_address = ""
        self.context: RayContext | None = None
        self.log_printer = None
        self.client_mode = False  # connected through Ray Client (ray://)
        self.lock = threading.RLock()

    def attach(self, core_worker, mode: str) -> None:
        self.core_worker = core_worker
        self.mode = mode
        self.gcs_address = core_worker.gcs_address

    @property
    def connected(self) -> bool:
        return self.core_worker is not None

    def ensure_connected(self):
        if self.core_worker is None:
            init()
        return self.core_worker


global_worker = Worker()
# Called with the core worker at a driver's `ray.shutdown()`, before it disconnects (metrics' last push).
before_shutdown: list = []


def is_initialized() -> bool:
    return global_worker.connected


def _gcs_client(address: str, timeout_s: float | None = None):
    from ray._common.gcs_client import GcsClient  # gRPC is loaded only where a GCS client is needed

    return GcsClient(address, timeout_s=timeout_s)


def _find_existing_cluster(temp_dir: str) -> str | None:
    path = process_registry.current_cluster_file(temp_dir)
    if not path.exists():
        return None
    address = path.read_text().strip()
    client = _gcs_client(address, timeout_s=2)
    try:
        client.check_alive(timeout_s=2)
        return address
    except ConnectionError:
        return None
    finally:
        client.close()


def _job_config_from_env() -> dict:
    raw = os.environ.get(RAY_JOB_CONFIG_JSON_ENV_VAR)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("Ignoring %s: not valid JSON.", RAY_JOB_CONFIG_JSON_ENV_VAR)
        return {}


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict | None = None, labels: dict | None = None, object_store_memory: int | None = None,
         local_mode: bool = False, ignore_reinit_error: bool = False, include_dashboard: bool | None = None,
         dashboard_host: str = "127.0.0.1", dashboard_port: int | None = None, job_config: Any = None,
         configure_logging: bool = True, logging_level: int = logging.INFO, logging_format: str | None = None,
         logging_config: Any = None, log_to_driver: bool = True, namespace: str | None = None,
         runtime_env: dict | None = None, **kwargs) -> RayContext:
    """Connect this process to a Ray cluster, starting a local one when there is none (Ray's rules)."""
    with global_worker.lock:
        if global_worker.connected:
            if ignore_reinit_error:
                logger.info("Calling ray.init() again after it has already been called.")
                return global_worker.context
            raise RuntimeError(
                "Maybe you called ray.init twice by accident? This error can be suppressed by passing in "
                "'ignore_reinit_error=True' or by calling 'ray.shutdown()' prior to 'ray.init()'."
            )
        unknown = set(kwargs) - {"_temp_dir", "_system_config", "_node_ip_address", "_plasma_directory",
                                 "_metrics_export_port", "_enable_object_reconstruction", "_redis_password",
                                 "_node_name"}
        if unknown:
            raise RuntimeError(f"Unknown keyword argument(s): {', '.join(sorted(unknown))}")
        if configure_logging and not logging.getLogger("ray").handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(logging_format or
                                                   "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"))
            logging.getLogger("ray").addHandler(handler)
            logging.getLogger("ray").setLevel(logging_level)
        temp_dir = kwargs.get("_temp_dir") or process_registry.default_temp_dir()
        if address is None:
            address = os.environ.get("RAY_ADDRESS") or None
        gcs_address = None
        if address in (None, "auto"):
            gcs_address = _find_existing_cluster(temp_dir)
            if gcs_address is None and address == "auto":
                raise ConnectionError(
                    "Could not find any running Ray instance. Please specify the one to connect to by setting "
                    "`--address` flag or `RAY_ADDRESS` environment variable."
                )
        elif address != "local":
            if address.startswith("ray://"):
                return _connect_client(address, namespace, runtime_env, job_config, locals())
            gcs_address = address
        if gcs_address is not None:
            if num_cpus is not None or num_gpus is not None:
                raise ValueError("When connecting to an existing cluster, num_cpus and num_gpus must not be provided.")
            if resources is not None:
                raise ValueError("When connecting to an existing cluster, resources must not be provided.")
            if object_store_memory is not None:
                raise ValueError("When connecting to an existing cluster, object_store_memory must not be provided.")
            if labels is not None:
                raise ValueError("When connecting to an existing cluster, labels must not be provided.")
        node = None
        if gcs_address is None:
            from ray._private.node import Node, NodeParams

            node = Node(NodeParams(
                head=True, port=0, node_ip_address=kwargs.get("_node_ip_address") or "127.0.0.1",
                num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=object_store_memory,
                resources=resources or {}, labels=labels or {}, temp_dir=temp_dir,
                include_dashboard=include_dashboard, dashboard_host=dashboard_host, dashboard_port=dashboard_port,
                system_config=kwargs.get("_system_config") or {}, owned_by_driver=True,
                metrics_export_port=kwargs.get("_metrics_export_port") or None,
            ))
            node.start()
            gcs_address = node.gcs_address
        try:
            context = _connect(gcs_address, node, namespace, runtime_env, job_config, log_to_driver)
        except BaseException:
            if node is not None:
                node.kill_all()
            raise
        global_worker.node = node
        global_worker.context = context
        long_lived.freeze_driver_startup()
        if node is not None:
            url = node.dashboard_url
            logger.info("Started a local Ray instance." + (f" View the dashboard at {url} " if url else ""))
        else:
            logger.info("Connecting to existing Ray cluster at address: %s...", gcs_address)
        atexit.register(shutdown)
        _watch_uncaught_exceptions()
        return context


_uncaught: list[str] = []  # the driver's uncaught exception, if it ends with one


def _watch_uncaught_exceptions() -> None:
    """Remember an uncaught exception (Python calls the hook before `atexit`'s shutdown) so the driver's job is
    listed FAILED, not SUCCEEDED."""
    previous = sys.excepthook
    if getattr(previous, "__ray_driver_hook__", False):
        return

    def hook(exc_type, exc, tb) -> None:
        _uncaught.append(f"The driver exited with an uncaught exception: {exc_type.__name__}: {exc}")
        previous(exc_type, exc, tb)

    hook.__ray_driver_hook__ = True
    sys.excepthook = hook


def _report_driver_exit(cw) -> None:
    """Tell the GCS how the driver ends before its connection closes (its raylet would report a crash)."""
    from ray.protocol import gcs_pb2 as pb

    detail = _uncaught[-1] if _uncaught else ""
    try:
        cw.gcs.call(cw.gcs.stubs.job.MarkJobFinished, pb.MarkJobFinishedRequest(
            job_id=cw.job_id.binary(), driver_failed=bool(detail), driver_exit_detail=detail), timeout_s=5)
    except Exception:  # noqa: BLE001 - the cluster may be gone; the raylet reports the exit then
        pass
def _connect_client(address: str, namespace: str | None, runtime_env: dict | None, job_config,
                    given: dict) -> RayContext:
    """Ray Client mode (`ray://host:port`): this process runs no node; a client core worker forwards every
    call to a proxy driver on the head (`ray._private.client_mode`)."""
    from ray._private.client_mode import ClientCoreWorker

    for name in ("num_cpus", "num_gpus", "resources", "object_store_memory", "labels"):
        if given.get(name) is not None:
            raise ValueError(f"When connecting to an existing cluster, {name} must not be provided.")
    if job_config is not None and getattr(job_config, "runtime_env", None) and runtime_env is None:
        runtime_env = job_config.runtime_env
    namespace = namespace or os.environ.get("RAY_NAMESPACE") or None
    cw = ClientCoreWorker(address)
    info = cw.connect(namespace, runtime_env)
    global_worker.attach(cw, mode="driver")
    global_worker.client_mode = True
    context = RayContext({
        "node_ip_address": info["node_ip_address"], "gcs_address": info["gcs_address"],
        "address": info["gcs_address"], "node_id": info["node_id"], "session_dir": info.get("session_dir", ""),
        "webui_url": info.get("dashboard_url", ""), "ray_version": info.get("ray_version", ""),
        "python_version": info.get("python_version", ""), "protocol_version": info.get("protocol_version"),
        "namespace": info["namespace"], "job_id": info["job_id"],
    })
    global_worker.context = context
    logger.info("Connected to the Ray cluster through Ray Client at %s (namespace %s).", address, info["namespace"])
    atexit.register(shutdown)
    return context


def _connect(gcs_address: str, node, namespace: str | None, runtime_env: dict | None, job_config,
             log_to_driver: bool = True) -> RayContext:
    from ray._common.net import node_ip_address, split_address
    from ray.core_worker.core_worker import DRIVER, CoreWorker
    from ray.protocol import gcs_pb2 as pb

    split_address(gcs_address)
    gcs = _gcs_client(gcs_address)
    try:
        gcs.check_alive()
    except ConnectionError as e:
        gcs.close()
        raise ConnectionError(f"Could not connect to the Ray cluster at {gcs_address}: {e}") from e
    job_cfg = _job_config_from_env()
    if job_config is not None and getattr(job_config, "runtime_env", None):
        job_cfg.setdefault("runtime_env", job_config.runtime_env)
    if runtime_env is not None:
        job_cfg["runtime_env"] = dict(runtime_env)
    job_runtime_env = job_cfg.get("runtime_env") or {}
    if job_runtime_env:
        job_runtime_env = _upload_packages(job_runtime_env, gcs)
    nodes = [n for n in gcs.get_all_node_info_proto() if n.state == pb.GcsNodeInfo.ALIVE]
    if node is not None:
        local = [n for n in nodes if n.node_id.hex() == node.node_id]
        my_ip = node.node_ip_address
    else:
        my_ip = node_ip_address(gcs_address.split(":")[0])
        # Through a loopback address (RAY_ADDRESS=127.0.0.1:6379 in a KubeRay head pod) the route says nothing
        # of the address this machine's raylet registered with: its outward address is tried too.
        my_ips = {my_ip, node_ip_address()} if my_ip.startswith("127.") else {my_ip}
        local = [n for n in nodes if n.node_manager_address in my_ips] or [
            n for n in nodes if n.node_manager_address == gcs_address.split(":")[0]]
        local.sort(key=lambda n: not n.is_head_node)
    if not local:
        gcs.close()
        raise ConnectionError(f"No raylet of the cluster at {gcs_address} runs on this machine ({my_ip}).")
    raylet = local[0]
    namespace = namespace or os.environ.get("RAY_NAMESPACE") or str(uuid.uuid4())
    job_id = JobID.from_int(gcs.get_next_job_id())
    cpus = int(raylet.resources_total.get("CPU", 0))
    cw = CoreWorker(DRIVER, gcs_address, raylet.raylet_socket_name, raylet.node_id.hex(),
                    raylet.node_manager_address, raylet.session_dir or (node.session_dir if node else ""),
                    job_id, namespace=namespace, runtime_env=job_runtime_env, num_prestart=_num_prestart_workers(cpus))
    cw.start()
    gcs.add_job(pb.JobTableData(
        job_id=job_id.binary(), driver_ip_address=raylet.node_manager_address, driver_pid=os.getpid(),
        namespace=namespace, entrypoint=" ".join(sys.argv), config_json=json.dumps(job_cfg),
        driver_address=json.dumps(cw.address),
    ))
    gcs.close()
    if log_to_driver:
        from ray._private.log_printer import LogPrinter

        global_worker.log_printer = LogPrinter(cw.gcs, job_id.hex(), raylet.node_manager_address)
    global_worker.attach(cw, mode="driver")
    session_dir = raylet.session_dir
    return RayContext({
        "node_ip_address": raylet.node_manager_address, "raylet_ip_address": raylet.node_manager_address,
        "redis_address": None, "gcs_address": gcs_address, "address": gcs_address,
        "session_dir": session_dir, "metrics_export_port": raylet.metrics_export_port,
        "webui_url": node.dashboard_url if node is not None else "", "node_id": raylet.node_id.hex(),
        "raylet_socket_name": raylet.raylet_socket_name, "object_store_address": raylet.object_store_socket_name,
    })


def _num_prestart_workers(cpus: int) -> int:
    """Workers the raylet starts for this driver before its first task: `num_prestart_workers` (default 0,
    see ray._common.config; Ray prestarts one per CPU), at most one per CPU."""
    from ray._common.config import config

    return max(0, min(cpus, config().num_prestart_workers))


def _upload_packages(runtime_env: dict, gcs) -> dict:
    if not (runtime_env.get("working_dir") or runtime_env.get("py_modules")):
        return runtime_env
    from ray._common.runtime_env.packaging import upload_working_dir_and_py_modules

    return upload_working_dir_and_py_modules(runtime_env, gcs)


def shutdown(_exiting_interpreter: bool = False) -> None:
    """Disconnect; a cluster this driver started is stopped with everything in it."""
    with global_worker.lock:
        cw = global_worker.core_worker
        if cw is None or global_worker.mode != "driver":
            return
        for hook in before_shutdown:
            try:
                hook()
            except Exception as e:  # a hook must not keep the driver from shutting down
                logging.getLogger(__name__).debug("shutdown hook failed: %s", e)
        global_worker.core_worker = None
        global_worker.mode = None
        global_worker.client_mode = False
        if global_worker.log_printer is not None:
            global_worker.log_printer.stop()
            global_worker.log_printer = None
        try:
            report_events = getattr(cw, "report_task_events_now", None)  # a Ray Client driver has none
            if report_events is not None:
                report_events()  # before the job ends: the GCS then fails the tasks it saw no end of
            _report_driver_exit(cw)
            cw.shutdown()
        finally:
            node = global_worker.node
            global_worker.node = None
            global_worker.context = None
            if node is not None:
                node.kill_all()
            long_lived.thaw_driver_startup()
        atexit.unregister(shutdown)


# ---------------------------------------------------------------------- objects
def get(object_refs, *, timeout: float | None = None):
    cw = global_worker.ensure_connected()
    if isinstance(object_refs, ObjectRef):
        return cw.get([object_refs], timeout)[0]
    if isinstance(object_refs, list):
        for r in object_refs:
            if not isinstance(r, ObjectRef):
                raise ValueError(f"'object_refs' must either be an ObjectRef or a list of ObjectRefs, "
                                 f"got a list containing {type(r)}.")
        return cw.get(object_refs, timeout)
    raise ValueError(f"Invalid type of object refs, {type(object_refs)}, is given. 'object_refs' must either be "
                     "an ObjectRef or a list of ObjectRefs.")


def put(value: Any, *, _owner=None) -> ObjectRef:
    return global_worker.ensure_connected().put(value)


def wait(object_refs: list[ObjectRef], *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    cw = global_worker.ensure_connected()
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, list):
        raise TypeError(f"wait() expected a list of ray.ObjectRef, got {type(object_refs)}")
    for r in object_refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"wait() expected a list of ray.ObjectRef, got list containing {type(r)}")
    if len({r._id for r in object_refs}) != len(object_refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns}.")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided to ray.wait.")
    if timeout is not None and timeout < 0:
        raise ValueError(f"The 'timeout' argument must be nonnegative. Received {timeout}")
    # fetch_local=False is accepted; values are always fetched, which only makes "ready" arrive later.
    return cw.wait(object_refs, num_returns, timeout)


def cancel(ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    cw = global_worker.ensure_connected()
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"ray.cancel() only supported for object refs. For actors, try ray.kill(). Got: {type(ref)}.")
    cw.cancel(ref, force, recursive)


# ---------------------------------------------------------------------- cluster info
def _gcs():
    cw = global_worker.ensure_connected()
    return cw.gcs


def nodes() -> list[dict]:
    return _gcs().get_all_node_info()


def cluster_resources() -> dict[str, float]:
    """Every alive node's resources, summed; as in Ray, placement group bundles' renamed resources
    (`CPU_group_...`) count too (they come with the nodes' resource reports)."""
    total: dict[str, float] = {}
    for n in _gcs().get_all_resource_usage():
        for k, v in n.resources_total.items():
            total[k] = total.get(k, 0) + v
    return total


def available_resources() -> dict[str, float]:
    avail: dict[str, float] = {}
    for n in _gcs().get_all_resource_usage():
        for k, v in n.resources_available.items():
            if v > 0:
                avail[k] = avail.get(k, 0) + v
    return avail


def get_gpu_ids() -> list:
    cw = global_worker.core_worker
    if cw is None or global_worker.mode == "driver":
        return []
    ids = cw.task_context("gpu_ids", []) or []
    return [int(i) if str(i).isdigit() else i for i in ids]
