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


@dataclass(frozen=True)
class Answer:
    """A short answer with the quotes that support it, or an explicit abstention.

    ``quotes`` holds up to three quotes to show first; ``more_quotes`` further ones
    ("more sources").
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

    def as_json(self) -> dict[str, Any]:
        """The answer as the CLI's JSON object."""
        return {
            "question": self.question,
            "answer": "" if self.abstained else self.text,
            "abstained": self.abstained,
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
