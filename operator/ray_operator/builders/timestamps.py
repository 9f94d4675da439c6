"""Timestamps as Kubernetes writes them in status fields: RFC 3339, UTC, whole seconds, a `Z` suffix."""

from __future__ import annotations

import datetime

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(_FORMAT)


def parse_time(text: str | None) -> datetime.datetime | None:
    """The time in a status field, or None when the field is empty."""
    if not text:
        return None
    return datetime.datetime.strptime(text, _FORMAT).replace(tzinfo=datetime.UTC)
