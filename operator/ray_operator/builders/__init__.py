"""Pure builders: custom resources (plain dicts) in, Kubernetes objects (plain dicts) out.

Nothing here talks to an API server or imports kopf, so every function is unit-tested on plain dicts.
"""
