"""Job submission: REST handlers, job manager and supervisor, SDK and `ray job` CLI."""
