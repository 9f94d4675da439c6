"""The node agent's runtime-env manager: creates, caches and deletes environments (pip, packages)."""
