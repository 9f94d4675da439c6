"""Public utilities (scheduling strategies, ...)."""
