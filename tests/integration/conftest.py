"""Every integration test runs with token authentication on (the default), with a token of its own.

Set here, before any cluster starts: every process a test starts inherits it, so nothing reads or
writes the user's ~/.ray/auth_token. Tests of the other modes and sources set their own environment.
"""

import os
import secrets

os.environ.pop("RAY_AUTH_MODE", None)
os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
os.environ["RAY_AUTH_TOKEN"] = os.environ.get("OPENRAY_TEST_AUTH_TOKEN") or secrets.token_hex(32)
