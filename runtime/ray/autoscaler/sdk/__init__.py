"""`ray.autoscaler.sdk.request_resources`, as in Ray."""

from __future__ import annotations

__all__ = ["request_resources"]


def request_resources(num_cpus: int | None = None, bundles: list[dict] | None = None,
                      bundle_label_selectors: list[dict] | None = None) -> None:
    """Command the autoscaler to scale to accommodate the specified requests.

    The cluster will immediately attempt to scale to accommodate the requested resources, bypassing normal
    upscaling speed constraints. This takes into account existing resource usage: `request_resources(num_cpus=100)`
    with 45 one-CPU tasks running adds nodes so that up to 100 tasks can run at once, not 145.

    The request is a standing constraint: it stays until the next call replaces it; a call with no arguments
    clears it. It is only a hint (bin packing and max worker counts decide the result).

    Args:
        num_cpus: Scale the cluster to ensure this number of CPUs are available.
        bundles: Scale the cluster to ensure this set of resource shapes can fit.
        bundle_label_selectors: Accepted and checked as Ray does; OpenRay's autoscaler does not place
            constraint bundles by labels.
    """
    if num_cpus is not None and not isinstance(num_cpus, int):
        raise TypeError("num_cpus should be of type int.")
    if bundles is not None:
        if not isinstance(bundles, list):
            raise TypeError("bundles should be of type List")
        for bundle in bundles:
            if not isinstance(bundle, dict):
                raise TypeError("each bundle should be a Dict.")
            for key, value in bundle.items():
                if not isinstance(key, str):
                    raise TypeError("each bundle key should be str.")
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise TypeError("each bundle value should be a number (int or float).")
    if bundle_label_selectors is not None:
        if bundles is None:
            raise ValueError("`bundles` must be provided when `bundle_label_selectors` is specified.")
        if len(bundle_label_selectors) != len(bundles):
            raise ValueError("`bundle_label_selector` must be a list with length equal to the number of bundles.")
        for selector in bundle_label_selectors:
            if not isinstance(selector, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
                raise ValueError("Bundle label selector must be a list of string dictionary label selectors. For "
                                 'example: `[{ray.io/market_type": "spot"}, {"ray.io/accelerator-type": "A100"}]`.')
    from ray._private import worker

    if not worker.global_worker.connected:
        raise RuntimeError("Ray is not initialized yet")
    to_request = [{"CPU": 1.0}] * (num_cpus or 0)
    to_request += [{k: float(v) for k, v in b.items()} for b in bundles or []]
    worker._gcs().request_cluster_resource_constraint(to_request)
