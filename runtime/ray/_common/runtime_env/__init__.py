"""Runtime-env pieces shared by drivers, raylets, agents and the dashboard: validation, packages, contexts,
the agent client and registry."""
