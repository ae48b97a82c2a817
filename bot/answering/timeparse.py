"""Time expressions in questions ("this week", "yesterday", "in March", "June 28, 2023"),
resolved against an as-of date into a preferred publication-date range."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from dateutil import parser as date_parser

MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for m in names
}

_EXPLICIT = re.compile(
    r"\b(\d{4}-\d{2}-\d{2}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}|"
    r"\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?\s+\d{4})\b",
    re.IGNORECASE,
)
_IN_MONTH = re.compile(
    r"\b(?:in|during|since|of)\s+(january|february|march|april|may|june|july|august|september|"
    r"october|november|december)(?:\s+(\d{4}))?\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TimeRange:
    """A publication-date range the question points at (inclusive)."""

    since: date
    until: date
    phrase: str


def _month_range(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    next_first = date(year + (month == 12), month % 12 + 1, 1)
    return first, next_first - timedelta(days=1)


def resolve_time(question: str, as_of: date) -> TimeRange | None:
    """The range a question's time expression refers to, or None when it has none.

    Articles report events up to a few days later, so ranges reach a week past the
    period they name (never past ``as_of``).
    """
    q = question.lower()
    lag = timedelta(days=7)
    if m := _EXPLICIT.search(question):
        try:
            day = date_parser.parse(m.group(1)).date()
        except (ValueError, OverflowError):
            day = None
        if day:
            return TimeRange(day - timedelta(days=1), min(as_of, day + lag), m.group(1))
    if "yesterday" in q:
        day = as_of - timedelta(days=1)
        return TimeRange(day, as_of, "yesterday")
    if "today" in q or "tonight" in q:
        return TimeRange(as_of - timedelta(days=1), as_of, "today")
    if "this week" in q or "past week" in q:
        return TimeRange(as_of - timedelta(days=7), as_of, "this week")
    if "last week" in q:
        return TimeRange(as_of - timedelta(days=14), as_of - timedelta(days=5), "last week")
    if "this month" in q:
        return TimeRange(as_of.replace(day=1), as_of, "this month")
    if "last month" in q:
        last_of_previous = as_of.replace(day=1) - timedelta(days=1)
        first, last = _month_range(last_of_previous.year, last_of_previous.month)
        return TimeRange(first, min(as_of, last + lag), "last month")
    if "this year" in q:
        return TimeRange(date(as_of.year, 1, 1), as_of, "this year")
    if m := _IN_MONTH.search(question):
        month = MONTHS[m.group(1).lower()]
        year = int(m.group(2)) if m.group(2) else as_of.year - (month > as_of.month)
        first, last = _month_range(year, month)
        return TimeRange(first, min(as_of, last + lag), m.group(0))
    return None
