"""The raylet's scheduler: leases (lease_manager), this node's resources (local_resources), the view of the others' (cluster_view) and the pure policies (policy)."""
