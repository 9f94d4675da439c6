"""The node agent's reporter: physical stats of the node and its workers, Prometheus metrics (Ray's names),
and the user metrics (`ray.util.metrics`) workers of this node push here."""
