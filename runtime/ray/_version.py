"""What this OpenRay is: the Ray version it implements and where it is installed. Every process reads
these here, so that none has to import the public `ray` package (and with it the driver)."""

from __future__ import annotations

import os

version = "2.60.0"

# The folder that holds the `ray` package: new processes get it on their path to import this same runtime.
RUNTIME_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
