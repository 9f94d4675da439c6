"""`ray.util.state`: Ray's state API SDK — `list_*`, `get_*`, `summarize_*` over the dashboard's `/api/v0/*`.

The address is found as the jobs SDK finds it: RAY_API_SERVER_ADDRESS / RAY_ADDRESS / the argument, an http URL
used as is, a cluster ("auto", "host:port" of the GCS or nothing) looked up in its GCS; the cluster's token goes
with every request.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

from ray._common import auth
from ray._common import state_schema as ss
from ray.dashboard.modules.job.sdk import resolve_address
from ray.exceptions import AuthenticationError
from ray.util.state.exception import RayStateApiException, ServerUnavailable

_ID_COLUMN = {"nodes": "node_id", "actors": "actor_id", "placement_groups": "placement_group_id",
              "workers": "worker_id", "tasks": "task_id", "objects": "object_id", "jobs": "submission_id"}

Filters = list[tuple[str, str, Any]] | None


def _check_filters(filters: Filters) -> list[tuple[str, str, Any]]:
    out = []
    for f in filters or []:
        if not isinstance(f, (tuple, list)) or len(f) != 3:
            raise ValueError(f"Invalid filter {f!r}: give (key, predicate, value) tuples, e.g. ('state', '=', 'ALIVE').")
        out.append((str(f[0]), str(f[1]), f[2]))
    return out


class StateApiClient:
    """Talks to the dashboard's state API (Ray's StateApiClient)."""

    def __init__(self, address: str | None = None, cookies: dict | None = None, headers: dict | None = None):
        try:
            self._address = resolve_address(address)
        except ValueError as e:
            raise RayStateApiException(str(e)) from e
        self._headers = dict(headers or {})
        if not any(k.lower() == auth.AUTHORIZATION_HEADER for k in self._headers):
            self._headers.update(auth.http_headers())
        self._sent_token = any(k.lower() in (auth.AUTHORIZATION_HEADER, auth.RAY_AUTHORIZATION_HEADER)
                               for k in self._headers)
        if cookies:
            self._headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())

    @property
    def address(self) -> str:
        return self._address

    def _request(self, endpoint: str, params: dict[str, Any], timeout: float) -> dict:
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"{self._address}{endpoint}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout + 5) as response:
                body, status = response.read(), response.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
            message = auth.auth_error_body(status, body.decode("utf-8", "replace"), self._sent_token)
            if message is not None:
                raise AuthenticationError(message) from None
        except (urllib.error.URLError, OSError) as e:
            raise ServerUnavailable(
                f"Failed to make request to {self._address}{endpoint}. Failed to connect to API server. Please "
                "check the API server log for details. Make sure dependencies are installed with `pip install "
                "ray[default]`. Please also check dashboard is available, and included when starting ray cluster, "
                f"i.e. `ray start --include-dashboard=True --head`. ({getattr(e, 'reason', e)})") from e
        try:
            payload = json.loads(body)
        except ValueError:
            raise RayStateApiException(
                f"Failed to parse Response(url={url}, status={status}, text='{body[:500]!r}')") from None
        if payload.get("result") is False:
            raise RayStateApiException("API server internal error. See dashboard.log file for more details. "
                                       f"Error: {payload.get('msg')}")
        return payload["data"]["result"]

    @staticmethod
    def _params(limit: int | None, timeout: float, detail: bool, filters: Filters,
                exclude_driver: bool = True) -> dict[str, Any]:
        filters = _check_filters(filters)
        params: dict[str, Any] = {"timeout": int(timeout), "detail": str(detail).lower(),
                                  "exclude_driver": str(exclude_driver).lower(),
                                  "filter_keys": [f[0] for f in filters],
                                  "filter_predicates": [f[1] for f in filters],
                                  "filter_values": [str(f[2]) for f in filters]}
        if limit is not None:
            params["limit"] = limit
        return params

    def list(self, resource: str, *, filters: Filters = None, limit: int = ss.DEFAULT_LIMIT,
             timeout: float = ss.DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
             exclude_driver: bool = True) -> list:
        resource = resource.replace("-", "_")
        if resource not in ss.SCHEMA_OF:
            raise ValueError(f"Unknown resource {resource!r}; one of {sorted(ss.SCHEMA_OF)}.")
        response = self._request(f"/api/v0/{resource}", self._params(limit, timeout, detail, filters, exclude_driver),
                                 timeout)
        self._warn(resource, response)
        if raise_on_missing_output:
            self._raise_on_missing_output(resource, response)
        schema = ss.SCHEMA_OF[resource]
        return [_to_state(schema, row) for row in response["result"]]

    def get(self, resource: str, id: str, timeout: float = ss.DEFAULT_RPC_TIMEOUT) -> Any:
        if resource not in _ID_COLUMN:
            raise ValueError(f"Can't get {resource} by id.")
        rows = self.list(resource, filters=[(_ID_COLUMN[resource], "=", id)], limit=ss.RAY_MAX_LIMIT_FROM_API_SERVER,
                         timeout=timeout, detail=True, raise_on_missing_output=False, exclude_driver=False)
        if not rows:
            return [] if resource == "objects" else None
        if resource in ("objects",) or (resource == "tasks" and len(rows) > 1):
            return rows
        return rows[0]

    def summary(self, resource: str, *, filters: Filters = None, timeout: float = ss.DEFAULT_RPC_TIMEOUT,
                summary_by: str | None = None, raise_on_missing_output: bool = True) -> dict:
        params = self._params(None, timeout, False, filters)
        if summary_by:
            params["summary_by"] = summary_by
        response = self._request(f"/api/v0/{resource}/summarize", params, timeout)
        self._warn(resource, response, limit=False)
        if raise_on_missing_output:
            self._raise_on_missing_output(resource, response)
        return response["result"]["node_id_to_summary"]

    @staticmethod
    def _warn(resource: str, response: dict, limit: bool = True) -> None:
        if response.get("partial_failure_warning"):
            warnings.warn(response["partial_failure_warning"], stacklevel=3)
        total, after = response["total"], response["num_after_truncation"]
        if total > after:
            warnings.warn(f"The returned data may contain incomplete result. {after} ({total} total from the "
                          f"cluster) {resource} are retrieved from the data source. {total - after} entries have "
                          f"been truncated. Max of {after} entries are retrieved from data source to prevent "
                          "over-sized payloads.", stacklevel=3)
        if limit and response["num_filtered"] > len(response["result"]):
            warnings.warn(f"Limit last {len(response['result'])} entries (Total {response['num_filtered']}). Use "
                          "`--filter` to reduce the amount of data to return or setting a higher limit with "
                          "`--limit` to see all data. ", stacklevel=3)
        for message in response.get("warnings") or []:
            warnings.warn(message, stacklevel=3)

    @staticmethod
    def _raise_on_missing_output(resource: str, response: dict) -> None:
        if response.get("partial_failure_warning"):
            raise RayStateApiException(
                f"Failed to retrieve all {resource} from the cluster because they are not reachable due to query "
                "failures to the data sources. To avoid raising an exception and allow having missing output, set "
                "`raise_on_missing_output=False`. ")
        total, after = response["total"], response["num_after_truncation"]
        if total != after:
            raise RayStateApiException(
                f"Failed to retrieve all {total} {resource} from the cluster because they are not reachable due to "
                f"data truncation. It happens when the returned data is too large (> {after}) To avoid raising an "
                "exception and allow having missing output, set `raise_on_missing_output=False`. ")


def _to_state(schema: type, row: dict) -> Any:
    known = schema.columns()
    try:
        return schema(**{k: v for k, v in row.items() if k in known})
    except TypeError as e:
        raise RayStateApiException(f"Failed to convert {row} to StateSchema: {e}") from e


def _lister(resource: str):
    def list_resource(address: str | None = None, filters: Filters = None, limit: int = ss.DEFAULT_LIMIT,
                      timeout: int = ss.DEFAULT_RPC_TIMEOUT, detail: bool = False,
                      raise_on_missing_output: bool = True, _explain: bool = False) -> list:
        return StateApiClient(address=address).list(resource, filters=filters, limit=limit, timeout=timeout,
                                                     detail=detail, raise_on_missing_output=raise_on_missing_output)

    list_resource.__name__ = f"list_{resource}"
    list_resource.__doc__ = f"List {resource.replace('_', ' ')} in the cluster (Ray's `ray.util.state.list_{resource}`)."
    return list_resource


list_actors = _lister("actors")
list_placement_groups = _lister("placement_groups")
list_nodes = _lister("nodes")
list_jobs = _lister("jobs")
list_workers = _lister("workers")
list_objects = _lister("objects")
list_runtime_envs = _lister("runtime_envs")
list_cluster_events = _lister("cluster_events")


def list_tasks(address: str | None = None, filters: Filters = None, limit: int = ss.DEFAULT_LIMIT,
               timeout: int = ss.DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list:
    """List the cluster's task attempts (from the GCS's task events)."""
    return StateApiClient(address=address).list("tasks", filters=filters, limit=limit, timeout=timeout, detail=detail,
                                                 raise_on_missing_output=raise_on_missing_output)


def _getter(resource: str):
    def get_resource(id: str, address: str | None = None, timeout: int = ss.DEFAULT_RPC_TIMEOUT,
                     _explain: bool = False) -> Any:
        return StateApiClient(address=address).get(resource, id, timeout=timeout)

    return get_resource


get_actor = _getter("actors")
get_placement_group = _getter("placement_groups")
get_node = _getter("nodes")
get_worker = _getter("workers")
get_task = _getter("tasks")
get_objects = _getter("objects")


def get_job(id: str, address: str | None = None, timeout: int = ss.DEFAULT_RPC_TIMEOUT,
            _explain: bool = False) -> Any:
    """A job by submission id, or by job id for drivers run directly."""
    client = StateApiClient(address=address)
    job = client.get("jobs", id, timeout=timeout)
    if job is None:
        rows = client.list("jobs", filters=[("job_id", "=", id)], limit=ss.RAY_MAX_LIMIT_FROM_API_SERVER,
                           timeout=timeout, detail=True, raise_on_missing_output=False)
        job = rows[0] if rows else None
    return job


def summarize_tasks(address: str | None = None, timeout: int = ss.DEFAULT_RPC_TIMEOUT,
                    raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    return StateApiClient(address=address).summary("tasks", timeout=timeout,
                                                   raise_on_missing_output=raise_on_missing_output)


def summarize_actors(address: str | None = None, timeout: int = ss.DEFAULT_RPC_TIMEOUT,
                     raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    return StateApiClient(address=address).summary("actors", timeout=timeout,
                                                   raise_on_missing_output=raise_on_missing_output)


def summarize_objects(address: str | None = None, timeout: int = ss.DEFAULT_RPC_TIMEOUT,
                      raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    return StateApiClient(address=address).summary("objects", timeout=timeout,
                                                   raise_on_missing_output=raise_on_missing_output)
