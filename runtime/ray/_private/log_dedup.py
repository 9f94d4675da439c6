"""Ray's log deduplication on the driver (`RAY_DEDUP_LOGS`, on by default).

A line that several processes print within `RAY_DEDUP_LOGS_AGG_WINDOW_S` (5 s) — compared after dropping
the words that hold numbers or hex, which differ between workers — is printed once when first seen; when the
window ends, the last copy is printed again with ` [repeated Nx across cluster]` (the first time with Ray's
hint on how to turn this off). Lines from one process are never folded together, except the raylet's.
`RAY_DEDUP_LOGS_ALLOW_REGEX` lines are never deduplicated; `RAY_DEDUP_LOGS_SKIP_REGEX` lines are dropped.
"""

from __future__ import annotations

import copy
import os
import re
import time
from dataclasses import dataclass, field

NUMBERS = re.compile(r"(\d+|0x[0-9a-fA-F]+)")
DEDUP_HINT = (" (Ray deduplicates logs by default. Set RAY_DEDUP_LOGS=0 to disable log deduplication, or see "
              "https://docs.ray.io/en/master/ray-observability/user-guides/configure-logging.html#log-deduplication "
              "for more options.)")


def dedup_enabled() -> bool:
    return os.environ.get("RAY_DEDUP_LOGS", "1") not in ("0", "false", "False", "")


def canonicalise(line: str) -> str:
    """Ray's `_canonicalise_log_line`: the line without the words that contain numbers or hex."""
    return " ".join(word for word in line.split() if not NUMBERS.search(word))


@dataclass
class _Seen:
    first_seen: float
    count: int
    line: str
    batch: dict
    sources: set = field(default_factory=set)


class LogDeduplicator:
    def __init__(self, agg_window_s: float | None = None, allow_re: str | None = None, skip_re: str | None = None):
        self.agg_window_s = float(os.environ.get("RAY_DEDUP_LOGS_AGG_WINDOW_S", 5)) if agg_window_s is None \
            else agg_window_s
        allow_re = allow_re if allow_re is not None else os.environ.get("RAY_DEDUP_LOGS_ALLOW_REGEX")
        skip_re = skip_re if skip_re is not None else os.environ.get("RAY_DEDUP_LOGS_SKIP_REGEX")
        self.allow = re.compile(allow_re) if allow_re else None
        self.skip = re.compile(skip_re) if skip_re else None
        self.recent: dict[str, _Seen] = {}
        self.hint_shown = False

    def deduplicate(self, batch: dict) -> list[dict]:
        """The part of `batch` to print now (its lines seen for the first time in the window)."""
        now = time.monotonic()
        source = (batch.get("ip"), batch.get("pid"))
        keep: list[str] = []
        for line in batch["lines"]:
            if self.allow is not None and self.allow.search(line):
                keep.append(line)
                continue
            if self.skip is not None and self.skip.search(line):
                continue
            key = canonicalise(line)
            if not key:
                keep.append(line)
                continue
            seen = self.recent.get(key)
            if seen is None:
                self.recent[key] = _Seen(now, 0, line, batch, {source})
                keep.append(line)
            elif source not in seen.sources or len(seen.sources) > 1 or batch.get("pid") == "raylet":
                seen.sources.add(source)
                seen.count += 1
                seen.line, seen.batch = line, batch
            else:
                keep.append(line)  # the same process again: printed, not folded
        if not keep:
            return []
        out = copy.copy(batch)
        out["lines"] = keep
        return [out]

    def flush(self, force: bool = False) -> list[dict]:
        """Batches for the repeats whose window is over (all of them with `force`)."""
        now = time.monotonic()
        out = []
        for key, seen in list(self.recent.items()):
            if not force and now - seen.first_seen < self.agg_window_s:
                continue
            del self.recent[key]
            if seen.count > 1:
                line = f"{seen.line} [repeated {seen.count}x across cluster]"
                if not self.hint_shown:
                    line += DEDUP_HINT
                    self.hint_shown = True
            elif seen.count == 1:
                line = seen.line
            else:
                continue
            batch = copy.copy(seen.batch)
            batch["lines"] = [line]
            out.append(batch)
        return out
