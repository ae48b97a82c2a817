"""The answer engine's value types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class Quote:
    """An exact span of a stored article: ``article.text[start:end] == text``."""

    article_id: int
    start: int
    end: int
    text: str
    title: str
    source: str
    published_at: date | None
    url: str | None

    def as_json(self) -> dict[str, Any]:
        """The quote as the CLI's JSON shape."""
        return {
            "text": self.text,
            "article_id": self.article_id,
            "start": self.start,
            "end": self.end,
            "title": self.title,
            "source": self.source,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "url": self.url,
        }


QUOTES_ONLY_TEXT = "Here is what the articles say:"


@dataclass(frozen=True)
class Answer:
    """A short answer with the quotes that support it, the quotes alone, or an abstention.

    Its ``kind``: ``answer`` (a short answer likely right, with its quotes), ``quotes``
    (strong evidence but no answer sure enough to state: ``text`` is empty) or
    ``not_found``. ``quotes`` holds up to three quotes to show first; ``more_quotes``
    further ones ("more sources"). ``confidence`` is the reader's probability that the
    short answer is right (for quotes and not_found, of the answer it did not show).
    """

    question: str
    text: str
    abstained: bool
    quotes: tuple[Quote, ...] = ()
    more_quotes: tuple[Quote, ...] = ()
    corpus_first: date | None = None
    corpus_last: date | None = None
    as_of: date | None = None
    confidence: float = 0.0
    method: str = "extractive"
    notes: tuple[str, ...] = field(default=())

    @property
    def kind(self) -> str:
        """``answer``, ``quotes`` or ``not_found``."""
        if self.abstained:
            return "not_found"
        return "answer" if self.text else "quotes"

    @property
    def headline(self) -> str:
        """What goes above the quotes: the short answer, or the quotes-only lead-in."""
        return self.text or QUOTES_ONLY_TEXT

    def as_json(self) -> dict[str, Any]:
        """The answer as the CLI's JSON object."""
        return {
            "question": self.question,
            "answer": "" if self.abstained else self.text,
            "abstained": self.abstained,
            "kind": self.kind,
            "confidence": round(self.confidence, 4),
            "quotes": [q.as_json() for q in self.quotes],
        }

    @property
    def not_found_text(self) -> str:
        """What an abstention says, with the corpus' date range."""
        if self.corpus_first and self.corpus_last:
            return (
                "The news I hold does not say. "
                f"My articles cover {self.corpus_first:%d %B %Y} to {self.corpus_last:%d %B %Y}."
            )
        return "The news I hold does not say: there are no articles yet."
