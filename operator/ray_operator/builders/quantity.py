"""Kubernetes resource quantities: parse ("500m", "2Gi") and print them the way Go's `Quantity.String()` does."""

from __future__ import annotations

import math
import re
from decimal import Decimal

# apimachinery's grammar (resource/quantity.go): a signed decimal number, then a binary-SI suffix, a
# decimal-SI suffix or a decimal exponent. Parsed here so that builders need no kubernetes package.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FACTORS: dict[str, Decimal] = {
    **{suffix: Decimal(1024) ** power for power, suffix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
    **{suffix: Decimal(10) ** exponent for suffix, exponent in
       (("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18))},
}

_BINARY_SUFFIXES = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_DECIMAL_SUFFIXES = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def parse(value: str | int | float) -> Decimal:
    """The quantity's exact value; raises ValueError naming the bad text."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return Decimal(value)
    text = str(value).strip()
    for suffix in (text[-2:], text[-1:], ""):
        if (suffix in _FACTORS or suffix == "") and _NUMBER.fullmatch(text[: len(text) - len(suffix)]):
            return Decimal(text[: len(text) - len(suffix)]) * _FACTORS.get(suffix, Decimal(1))
    raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2', '4Gi')")


def is_binary(value: str | int | float) -> bool:
    """True when the text uses a power-of-two suffix (Ki, Mi, Gi, ...), as Go's BinarySI format."""
    return isinstance(value, str) and value.strip().endswith("i")


def ceil_int(value: str | int | float) -> int:
    """Go's `Quantity.Value()`: the value rounded up to an integer (so "500m" CPU is 1)."""
    return math.ceil(parse(value))


def format_quantity(value: Decimal, binary: bool = False) -> str:
    """Canonical text of a quantity: "0", "400m", "3", "3Gi", "1500M" (the largest exact suffix)."""
    if value == 0:
        return "0"
    if value != value.to_integral_value():
        millis = (value * 1000).to_integral_value(rounding="ROUND_CEILING")
        return f"{millis}m"
    integer = int(value)
    suffixes = _BINARY_SUFFIXES if binary else _DECIMAL_SUFFIXES
    for suffix, size in suffixes:
        if integer % size == 0:
            return f"{integer // size}{suffix}"
    return str(integer)
