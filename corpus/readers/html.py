"""HTML pages through trafilatura: main text and metadata (title, author, date, site)."""

from __future__ import annotations

import json
import logging
from datetime import date

from corpus.models import ArticleDraft
from corpus.readers.base import (
    ReadFailure,
    ReadResult,
    as_authors,
    clean_body,
    parse_date,
    validate,
)

log = logging.getLogger(__name__)
# trafilatura logs every page it cannot parse at WARNING; our own failure reason says it.
logging.getLogger("trafilatura").setLevel(logging.ERROR)


def parse_html(
    html: str | bytes,
    origin: str,
    url: str | None = None,
    default_date: date | None = None,
) -> ReadResult:
    """Extract one article from an HTML page.

    ``default_date`` stands in when the page carries no date (a URL fetched now).
    """
    import trafilatura  # deferred: its import costs ~0.3 s and only HTML needs it

    try:
        extracted = trafilatura.extract(
            html,
            url=url,
            output_format="json",
            with_metadata=True,
            include_comments=False,
            include_tables=False,
            favor_precision=True,
            # The wide date search takes a footer's "Copyright 2023" for a date.
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
    except Exception as exc:  # trafilatura raises many types on broken markup
        log.debug("trafilatura failed on %s: %r", origin, exc)
        return ReadFailure(origin, "could not parse the HTML")
    if not extracted:
        return ReadFailure(origin, "no article text found in the HTML")
    meta = json.loads(extracted)
    # trafilatura separates paragraphs with single newlines; we use blank lines.
    text = clean_body((meta.get("text") or "").replace("\n", "\n\n"))
    title = " ".join((meta.get("title") or "").split())
    first, _, rest = text.partition("\n\n")
    if title and first.strip() == title and rest:
        text = rest  # the page's <h1> repeats the title
    draft = ArticleDraft(
        title=title,
        text=text,
        published_at=parse_date(meta.get("date")) or default_date,
        source=(
            meta.get("sitename") or meta.get("source-hostname") or meta.get("hostname") or ""
        ).strip(),
        url=url or meta.get("url") or meta.get("source") or None,
        authors=as_authors(meta.get("author")),
        language=meta.get("language") or "en",
        origin=origin,
    )
    return validate(draft)
