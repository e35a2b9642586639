"""Numbers as the report shows them, rounded to the digits their confidence interval supports; and
text from records made inert in Markdown."""

import math
import re
from typing import Any

from bench.text import printable


def decimals(
    value: float | None, half_width: float | None, min_sig: int = 2, max_sig: int = 4, default_sig: int = 3
) -> int:
    """Decimal places (negative: tens, hundreds...) to show `value` with, given the half-width of
    its confidence interval: the last digit kept is the finest whose unit is at least half the
    half-width (finer digits are noise), e.g. 1.2345 +- 0.037 (3%) -> 1 place, '1.2'; keeping
    min_sig to max_sig significant figures; default_sig when the spread is unknown (None, nan, inf)."""
    if value is None or not math.isfinite(value) or value == 0:
        return 0
    lead = math.floor(math.log10(abs(value)))
    if half_width is not None and math.isfinite(half_width) and half_width > 0:
        sig = max(lead - math.ceil(math.log10(half_width / 2)) + 1, min_sig)
    elif half_width == 0:
        sig = max_sig
    else:
        sig = default_sig
    return min(sig, max_sig) - 1 - lead


def fixed(value: float | None, places: int) -> str:
    """`value` rounded to `places` decimal places (negative: to tens, hundreds...); '–' when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    if places >= 0:
        return f"{value:.{places}f}"
    return f"{round(value, places):.0f}"


def round_to_spread(value: float | None, half_width: float | None, **kw: int) -> str:
    """`value` as text with the digits its spread supports, e.g. (1.2345, 0.037) -> '1.2'."""
    return fixed(value, decimals(value, half_width, **kw))


def interval(
    value: float, lo: float, hi: float, prefix: str = "", max_places: int = 6, min_places: int | None = None
) -> str:
    """'value [lo, hi]' at the digits the interval supports, and more where those would not keep the
    point strictly inside its printed interval (1.02 [0.945, 1.046] is '1.02 [0.94, 1.05]', not
    '1.0 [0.9, 1.0]'); the ends are rounded outwards, so the printed interval holds the computed one,
    at a unit of at most a fifth of its width. Without an interval, the value alone. min_places: at
    least these decimal places (a table that must tell two values apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        places = decimals(value, None)
        return prefix + fixed(value, places if min_places is None else max(places, min_places))
    places = decimals(value, (hi - lo) / 2)
    if hi > lo:  # ends fine enough that rounding them outwards widens the interval by a fifth at most
        places = max(places, -math.floor(math.log10((hi - lo) / 5)))
    if min_places is not None:
        places = max(places, min_places)
    while True:
        unit = 10.0**-places
        v, low, high = round(value, places), math.floor(lo / unit + 1e-9) * unit, math.ceil(hi / unit - 1e-9) * unit
        inside = (low < v or lo == value) and (v < high or hi == value)
        if inside or places >= max_places:
            return f"{prefix}{fixed(v, places)} [{fixed(low, places)}, {fixed(high, places)}]"
        places += 1


def point(value: float, lo: float, hi: float) -> str:
    """`value` alone, at the digits interval(value, lo, hi) prints it with: a plot's label says
    what the table beside it says."""
    return interval(value, lo, hi).split(" [")[0]


def sig(value: float | None, figures: int = 2) -> str:
    """`value` to `figures` significant figures, without an exponent for everyday magnitudes."""
    return round_to_spread(value, None, default_sig=figures)


def median_half_width(row: Any) -> float | None:
    """Half-width of a row's median CI in ms; half the IQR when the CI needs more samples."""
    if math.isfinite(row.ci_lo_ms) and math.isfinite(row.ci_hi_ms):
        return (row.ci_hi_ms - row.ci_lo_ms) / 2
    return row.iqr_ms / 2 if math.isfinite(row.iqr_ms) else None


def pct(value: float) -> str:
    """A percentage with no false precision: '12%', '0.5%', '–' when unknown."""
    if not math.isfinite(value):
        return "–"
    return f"{value:.0f}%" if value >= 1 else f"{value:.1f}%"


# Characters that can start Markdown markup inline (newlines, which could start a heading or a
# list, are gone before this): escaped with a backslash, which report.html reads back.
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&!#$])")


def md(text: object) -> str:
    """Text from a record (an error message, a note, a name) as inert Markdown: one line, no
    control characters, every character that could start markup escaped."""
    return MD_SPECIAL.sub(r"\\\1", printable(" ".join(str(text).split())))
