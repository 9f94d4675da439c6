"""Log files of a node's daemons under `<session_dir>/logs/`, in Ray's line format."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s\t%(levelname)s {name}%(filename)s:%(lineno)d -- %(message)s"


def log_to_session_file(session_dir: str, filename: str, *, logger_names: bool = False) -> None:
    """Send this process's logging to `<session_dir>/logs/<filename>`; `logger_names` adds each line's
    logger name (for a file that several components share)."""
    logs_dir = os.path.join(session_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    logging.basicConfig(
        filename=os.path.join(logs_dir, filename),
        level=logging.INFO,
        format=_FORMAT.format(name="%(name)s " if logger_names else ""),
    )
