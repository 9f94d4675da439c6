"""The autoscaler process (Ray's monitor): config, the bin-packing scheduler, the instance manager and its
loop, node providers, metrics. It knows the rest of the cluster only through the GCS's protocol."""
