"""`ray.util.state.list_logs` / `get_log`: log files of any node, through the dashboard's `/api/v0/logs*`.

    list_logs(node_id=..., node_ip=..., glob_filter="*")  -> {category: [file names]}
    get_log(node_id=..., filename=...)   or actor_id= / task_id= (+ attempt_number) / pid= (+ node) /
                                         submission_id=
        -> a generator of text chunks; follow=True keeps yielding new lines; tail=N is the number of last
        lines first printed (-1: the whole file)

Without a node, the head node is used (as `ray logs` does). The dashboard is found as the job SDK finds it
(`address`, RAY_ADDRESS, the connected driver's cluster, the cluster `ray start` recorded) and called with
the cluster's token.
"""

from __future__ import annotations

import codecs
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

from ray._common import auth
from ray.util.state.exception import RayStateApiException

DEFAULT_RPC_TIMEOUT = 30
DEFAULT_LOG_LIMIT = 1000


def _dashboard_url(address: str | None) -> str:
    from ray.dashboard.modules.job.sdk import dashboard_url_from_gcs, resolve_address

    if address is None:
        from ray._private.worker import global_worker

        if global_worker.connected and global_worker.gcs_address:
            url = dashboard_url_from_gcs(global_worker.gcs_address)
            if url:
                return url
    return resolve_address(address)


def _get(url: str, timeout: float | None) -> urllib.request.addinfourl:
    request = urllib.request.Request(url, headers=auth.http_headers())
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        try:
            body = json.loads(body).get("msg", body)
        except ValueError:
            pass
        raise RayStateApiException(f"Failed to get the log ({e.code}): {body}") from None
    except urllib.error.URLError as e:
        raise ConnectionError(f"Could not reach the dashboard at {url.split('/api/')[0]}: {e.reason}") from None


def _head_node_id(base: str, timeout: float | None) -> str:
    with _get(f"{base}/nodes?view=summary", timeout) as reply:
        summary = json.loads(reply.read())["data"]["summary"]
    heads = [n["raylet"]["nodeId"] for n in summary if n["raylet"].get("isHeadNode") and
             n["raylet"].get("state") == "ALIVE"]
    if not heads:
        raise RayStateApiException("The cluster has no alive head node.")
    return heads[0]


def list_logs(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
              glob_filter: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> dict[str, list[str]]:
    """The log files of a node (the head's when no node is given), by category."""
    base = _dashboard_url(address)
    if not node_id and not node_ip:
        node_id = _head_node_id(base, timeout)
    params = {k: v for k, v in {"node_id": node_id, "node_ip": node_ip, "glob": glob_filter or "*",
                                "timeout": timeout}.items() if v}
    with _get(f"{base}/api/v0/logs?{urllib.parse.urlencode(params)}", timeout) as reply:
        body = json.loads(reply.read())
    if not body.get("result"):
        raise RayStateApiException(body.get("msg", "listing logs failed"))
    return body["data"]["result"]


def get_log(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
            filename: str | None = None, actor_id: str | None = None, task_id: str | None = None,
            pid: int | None = None, follow: bool = False, tail: int = DEFAULT_LOG_LIMIT,
            timeout: int = DEFAULT_RPC_TIMEOUT, suffix: str = "out", encoding: str | None = "utf-8",
            errors: str | None = "strict", submission_id: str | None = None, attempt_number: int = 0,
            _interval: float | None = None) -> Iterator[str]:
    """Chunks of the log's text (bytes when encoding is None)."""
    base = _dashboard_url(address)
    if not node_id and not node_ip and (filename or pid is not None):
        node_id = _head_node_id(base, timeout)
    params = {"node_id": node_id, "node_ip": node_ip, "filename": filename, "actor_id": actor_id,
              "task_id": task_id, "pid": pid, "submission_id": submission_id, "lines": tail, "suffix": suffix,
              "timeout": timeout, "interval": _interval, "attempt_number": attempt_number or None,
              # Plain text: HTTP does not keep the dashboard's chunks whole, so a leading byte per chunk
              # (Ray's leading_1) could not be told apart from the text.
              "format": "text"}
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None and v != ""})
    endpoint = "stream" if follow else "file"
    decoder = codecs.getincrementaldecoder(encoding)(errors or "strict") if encoding else None
    with _get(f"{base}/api/v0/logs/{endpoint}?{query}", None if follow else timeout) as reply:
        while True:
            data = reply.read1(64 * 1024)
            if not data:
                if decoder is not None and (rest := decoder.decode(b"", final=True)):
                    yield rest
                return
            if decoder is None:
                yield data
            elif text := decoder.decode(data):
                yield text
