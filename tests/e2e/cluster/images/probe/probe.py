"""Prints what the e2e harness test checks: the image's Python, and that pip-installed requests imports."""

import platform

import requests

print(f"openray-e2e-probe python {platform.python_version()} requests {requests.__version__}", flush=True)
