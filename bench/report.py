"""Turning figures into the side-by-side table: ratio OpenRay/Ray, target check, text/Markdown/JSON."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any

from rows import Row


@dataclass
class Cell:
    """One runtime's figure for one row, or why there is none."""

    value: float | None = None
    error: str | None = None
    details: dict[str, Any] | None = None
    source: str = "measured"  # or "baseline <file>" for stored Ray figures

    @property
    def ok(self) -> bool:
        return self.value is not None and self.error is None and math.isfinite(self.value)


@dataclass
class Comparison:
    row: Row
    openray: Cell
    ray: Cell

    @property
    def ratio(self) -> float | None:
        """OpenRay's figure divided by Ray's, as the issue states it."""
        if not (self.openray.ok and self.ray.ok) or self.ray.value == 0:
            return None
        return self.openray.value / self.ray.value

    @property
    def meets_target(self) -> bool | None:
        """None when there is nothing to compare yet."""
        if not self.row.ray_comparable:
            if not self.openray.ok or self.row.absolute_max is None:
                return None
            return self.openray.value <= self.row.absolute_max
        ratio = self.ratio
        if ratio is None:
            return None
        meets = ratio_meets(self.row, ratio)
        if self.row.absolute_max is not None:
            meets = meets and self.openray.value <= self.row.absolute_max
        return meets


def merge_runs(runs: list[Cell]) -> Cell:
    """One cell from repeated runs: the median of the figures (the details of the run nearest to
    it, plus every run's figure); an error only when no run produced a figure."""
    good = [c for c in runs if c.ok]
    if not good:
        return runs[0] if runs else Cell()
    if len(runs) == 1:
        return good[0]
    median = statistics.median(c.value for c in good)
    nearest = min(good, key=lambda c: abs(c.value - median))
    details = dict(nearest.details or {})
    details["runs"] = [c.value if c.ok else f"ERR {c.error}" for c in runs]
    return Cell(value=median, details=details)


def ratio_meets(row: Row, ratio: float) -> bool:
    """Whether OpenRay/Ray = `ratio` reaches the row's target speedup."""
    if row.higher_is_better:
        return ratio >= row.target_speedup
    return ratio <= 1.0 / row.target_speedup


def target_text(row: Row) -> str:
    if not row.ray_comparable:
        return f"< {row.absolute_max:g} {row.unit}" if row.absolute_max is not None else "-"
    if row.higher_is_better:
        text = f">= {row.target_speedup:g}x"
    else:
        text = f"<= {1.0 / row.target_speedup:.3g}x"
    if row.absolute_max is not None:
        text += f", < {row.absolute_max:g} {row.unit}"
    return text


def format_value(value: float | None) -> str:
    """Three significant figures, no scientific notation for the sizes these rows have."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, 2 - magnitude)
    return f"{value:,.{decimals}f}"


def cell_text(cell: Cell, width: int | None = None) -> str:
    if cell.ok:
        text = format_value(cell.value)
        return text + (" (b)" if cell.source != "measured" else "")
    if cell.error:
        text = "ERR " + cell.error
        return text if width is None or len(text) <= width else text[: width - 1] + "~"
    return "-"


def verdict_text(comparison: Comparison) -> str:
    meets = comparison.meets_target
    return {True: "yes", False: "NO", None: "-"}[meets]


_HEADERS = ("row", "unit", "OpenRay", "Ray 2.60", "OpenRay/Ray", "target", "meets")
# --auth-cost: OpenRay with token authentication (the default) next to OpenRay with RAY_AUTH_MODE=disabled.
AUTH_COST_HEADERS = ("row", "unit", "auth on", "auth off", "on/off", "target", "meets")
AUTH_COST_TOLERANCE = 0.05  # every row within 5% of auth off


# --redis-cost: OpenRay with its GCS tables in Redis next to the in-memory GCS.
REDIS_COST_HEADERS = ("row", "unit", "Redis GCS", "in-memory", "Redis/mem", "target", "meets")
REDIS_COST_TOLERANCE = 0.10  # tasks, actor creation and put rows within 10% of the in-memory GCS


# --events-cost: OpenRay with task events (the default) next to RAY_enable_task_events=0 (issue 10).
EVENTS_COST_HEADERS = ("row", "unit", "events on", "events off", "on/off", "target", "meets")
EVENTS_COST_TOLERANCE = 0.05  # every row within 5% of events off


def cost_row(row: Row, tolerance: float) -> Row:
    """The row with a cost target: at most `tolerance` worse than the reference, whatever its Ray target."""
    speedup = 1 - tolerance if row.higher_is_better else 1 / (1 + tolerance)
    return replace(row, target_speedup=speedup, absolute_max=None)


def auth_cost_row(row: Row) -> Row:
    """The row with the auth-cost target: at most 5% worse than auth off, whatever its Ray target."""
    return cost_row(row, AUTH_COST_TOLERANCE)


def _table_cells(comparisons: list[Comparison], width: int | None) -> list[tuple[str, ...]]:
    cells = []
    for c in comparisons:
        ratio = c.ratio
        cells.append((c.row.title, c.row.unit, cell_text(c.openray, width), cell_text(c.ray, width),
                      "-" if ratio is None else f"{ratio:.2f}x", target_text(c.row), verdict_text(c)))
    return cells


def text_table(comparisons: list[Comparison], error_width: int = 34, headers: tuple[str, ...] = _HEADERS) -> str:
    """A fixed-width table for the terminal; long errors are cut (the Markdown keeps them whole)."""
    rows = [headers, *_table_cells(comparisons, error_width)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    numeric = {2, 3, 4}
    lines = []
    for n, r in enumerate(rows):
        parts = [r[i].rjust(widths[i]) if i in numeric else r[i].ljust(widths[i]) for i in range(len(r))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(comparisons: list[Comparison], headers: tuple[str, ...] = _HEADERS) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for cells in _table_cells(comparisons, None):
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    return "\n".join(lines)


def summary_line(comparisons: list[Comparison]) -> str:
    verdicts = [c.meets_target for c in comparisons]
    return (f"{verdicts.count(True)} rows meet their target, {verdicts.count(False)} miss, "
            f"{verdicts.count(None)} not comparable (error or not run)")


def to_json(comparisons: list[Comparison], meta: dict[str, Any]) -> str:
    out = {"meta": meta, "rows": []}
    for c in comparisons:
        out["rows"].append({
            "key": c.row.key, "title": c.row.title, "unit": c.row.unit,
            "higher_is_better": c.row.higher_is_better, "target": target_text(c.row),
            "openray": asdict(c.openray), "ray": asdict(c.ray),
            "ratio": c.ratio, "meets_target": c.meets_target,
        })
    return json.dumps(out, indent=2)


def baseline_cells(path: str) -> dict[str, Cell]:
    """Ray's figures from an earlier results JSON (e.g. the committed baseline), keyed by row."""
    with open(path) as fh:
        data = json.load(fh)
    cells = {}
    for row in data["rows"]:
        ray = row.get("ray") or {}
        if ray.get("value") is not None and not ray.get("error"):
            when = ray.get("measured_at") or data.get("meta", {}).get("date", path)
            cells[row["key"]] = Cell(value=ray["value"], details=ray.get("details"), source=f"baseline {when}")
    return cells


def update_baseline(path: str, comparisons: list[Comparison], meta: dict[str, Any]) -> int:
    """Merges the measured Ray figures into the baseline file (rows not measured now keep their
    stored figure and date); returns how many rows were updated."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        data = {"meta": {}, "rows": []}
    by_key = {row["key"]: row for row in data["rows"]}
    updated = 0
    for c in comparisons:
        if c.ray.ok and c.ray.source == "measured":
            by_key[c.row.key] = {"key": c.row.key, "title": c.row.title, "unit": c.row.unit,
                                 "ray": {**asdict(c.ray), "measured_at": meta.get("date")}}
            updated += 1
    data["rows"] = list(by_key.values())
    data["meta"] = {**data.get("meta", {}), "updated": meta.get("date"), "machine": meta.get("machine")}
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)
    return updated
