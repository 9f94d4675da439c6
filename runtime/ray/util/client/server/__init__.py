"""The head's Ray Client server (`python -m ray.util.client.server`) and its per-session proxy drivers."""
