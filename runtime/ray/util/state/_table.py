"""The text tables of Ray's state CLI: tabulate's "plain" (and "simple") layout, written out here so the CLI
needs no extra package. Numbers align right, text left; a cell may span several lines."""

from __future__ import annotations

from typing import Any


def _cell(value: Any, floatfmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, floatfmt)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def tabulate(rows: list[list[Any]], headers: list[str], showindex: bool = False, floatfmt: str = ".3f",
             numalign: str = "right", underline: bool = False) -> str:
    if showindex:
        headers = ["", *headers]
        rows = [[i, *row] for i, row in enumerate(rows)]
    ncols = len(headers)
    texts = [[_cell(v, floatfmt).splitlines() or [""] for v in row] for row in rows]
    right = [all(_is_number(row[c]) or row[c] is None for row in rows) and any(_is_number(row[c]) for row in rows)
             and numalign == "right" for c in range(ncols)]
    widths = [max([len(headers[c])] + [len(line) for row in texts for line in row[c]]) for c in range(ncols)]

    def line(parts: list[str]) -> str:
        cells = [p.rjust(widths[c]) if right[c] else p.ljust(widths[c]) for c, p in enumerate(parts)]
        return "  ".join(cells).rstrip()

    out = [line(list(headers))]
    if underline:
        out.append("  ".join("-" * w for w in widths))
    for row in texts:
        height = max(len(cell) for cell in row)
        for i in range(height):
            out.append(line([cell[i] if i < len(cell) else "" for cell in row]))
    return "\n".join(out)
