"""The corpus' value types: frozen dataclasses shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class ArticleDraft:
    """An article as a reader produced it, before it is stored.

    ``text`` is the text exactly as it will be displayed and quoted; every chunk and
    quote is an offset range into it.
    """

    title: str
    text: str
    published_at: date | None
    source: str = ""
    url: str | None = None
    authors: tuple[str, ...] = ()
    language: str = "en"
    origin: str = ""  # where it came from (file path, feed URL, channel), for messages


@dataclass(frozen=True)
class Article:
    """A stored article."""

    id: int
    url: str | None
    title: str
    source: str
    authors: tuple[str, ...]
    published_at: date | None
    language: str
    text: str
    content_hash: str
    ingested_at: datetime


@dataclass(frozen=True)
class ChunkSpan:
    """A chunk's place in its article, before it is stored."""

    ordinal: int
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A stored chunk: ``article.text[start:end] == text`` always holds."""

    id: int
    article_id: int
    ordinal: int
    start: int
    end: int
    text: str
    content_hash: str


@dataclass(frozen=True)
class Sentence:
    """A sentence's offsets into its article's text."""

    article_id: int
    start: int
    end: int


@dataclass
class IngestReport:
    """What one ingest run did, for the CLI summary and the bot's reply."""

    added: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason)

    @property
    def changed_ids(self) -> list[int]:
        """Ids of the articles whose chunks are new or changed."""
        return self.added + self.updated

    def merge(self, other: IngestReport) -> None:
        """Add another report's counts to this one."""
        self.added += other.added
        self.updated += other.updated
        self.duplicates += other.duplicates
        self.failed += other.failed
