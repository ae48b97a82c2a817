"""The SQLite store, the source of truth for everything derived (indexes, answers).

Two aiosqlite connections per process: one writer, whose writes go through one lock and
explicit transactions (a failed article leaves no rows behind), and one reader for every
query outside a transaction. The reader sees only committed rows (WAL), never a writer's
transaction half done.

A new article is saved together with its row in ``route_queue`` ("to route to its
followers") and whatever links the caller adds (the feed entry it came from, its
channel), in one transaction: a crash can delay a push, never lose it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from corpus.chunking import chunk_spans
from corpus.migrations import MIGRATIONS
from corpus.models import Article, ArticleDraft, Chunk
from corpus.text import content_hash

_ARTICLE_COLUMNS = (
    "id, url, title, source, authors, published_at, language, text, content_hash, ingested_at"
)
_CHUNK_COLUMNS = 'id, article_id, ordinal, start, "end", text, content_hash'
_INDEX_ROW_COLUMNS = "c.id, c.article_id, c.content_hash, a.title, a.published_at, a.source"
_ID_BATCH = 900  # ids per query (SQLite's host-parameter limit)


@dataclass(frozen=True)
class CorpusStats:
    """Counts and the date range of the corpus."""

    articles: int
    chunks: int
    sources: tuple[tuple[str, int], ...]
    first_date: date | None
    last_date: date | None
    corpus_version: int


@dataclass(frozen=True)
class ChunkIndexRow:
    """A chunk as the indexes see it."""

    chunk_id: int
    article_id: int
    content_hash: str
    text: str
    title: str
    published_at: date | None
    source: str


@dataclass(frozen=True, slots=True)
class IndexRow:
    """A chunk as the indexes see it, without its text (read only when needed)."""

    chunk_id: int
    article_id: int
    content_hash: str
    title: str
    published_at: date | None
    source: str

    @property
    def keyword_key(self) -> str:
        """What identifies its keyword-index text: the content hash covers the chunk's
        text and its article's title, the title is here too for older hashes."""
        return f"{self.content_hash}\x00{self.title}"


def _parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _article(row: Sequence[Any]) -> Article:
    return Article(
        id=row[0],
        url=row[1],
        title=row[2],
        source=row[3],
        authors=tuple(json.loads(row[4])),
        published_at=_parse_date(row[5]),
        language=row[6],
        text=row[7],
        content_hash=row[8],
        ingested_at=datetime.fromisoformat(row[9]),
    )


def _index_row(r: Sequence[Any]) -> IndexRow:
    return IndexRow(r[0], r[1], r[2], r[3], _parse_date(r[4]), r[5])


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(*row)


# Called inside the article's transaction with the connection and the article id.
ArticleLinker = Callable[[aiosqlite.Connection, int], Awaitable[None]]


def chunk_hash(title: str, text: str) -> str:
    """A chunk's content hash: its text and its article's title (both are embedded)."""
    return content_hash(title, text)


class Store:
    """Async access to the corpus database. Open with ``await Store.open(path)``."""

    def __init__(
        self, db: aiosqlite.Connection, path: Path, reader: aiosqlite.Connection | None = None
    ) -> None:
        self._db = db
        self._read = reader or db
        self.path = path
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) the database at ``path`` and apply migrations."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=10000")
        await db.execute("PRAGMA synchronous=NORMAL")
        store = cls(db, path)
        try:
            await store._migrate()
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA query_only=ON")  # reads only, by construction
            await reader.execute("PRAGMA busy_timeout=10000")
        except BaseException:
            await db.close()
            raise
        store._read = reader
        return store

    async def close(self) -> None:
        """Close both connections."""
        if self._read is not self._db:
            await self._read.close()
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump is part of the same script.
            await self._db.executescript(
                f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            else:
                await self._db.execute("COMMIT")

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Rows of a read query (for the repositories built on this store)."""
        # One hop to the database thread instead of three (execute, fetch, close): a
        # search spends 0.4 ms less beyond encoding its query (benchmarks/search_speed.py).
        return list(await self._read.execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first row of a read query, or None."""
        async with self._read.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    # -- articles -------------------------------------------------------------------

    async def article_by_url(self, url: str) -> Article | None:
        """The article stored for ``url``, if any."""
        row = await self.fetchone(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE url = ?", [url])
        return _article(row) if row else None

    async def article_by_hash(self, digest: str) -> Article | None:
        """The article whose normalized text has this hash, if any."""
        row = await self.fetchone(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE content_hash = ?", [digest]
        )
        return _article(row) if row else None

    async def get_article(self, article_id: int) -> Article | None:
        """One article by id."""
        row = await self.fetchone(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id = ?", [article_id]
        )
        return _article(row) if row else None

    async def get_articles(self, ids: Iterable[int]) -> dict[int, Article]:
        """Articles by id (missing ids are left out)."""
        ids = list(set(ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self.fetchall(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id IN ({marks})", ids
        )
        return {row[0]: _article(row) for row in rows}

    async def list_articles(self, limit: int = 50, offset: int = 0) -> list[Article]:
        """Articles, newest publication first."""
        rows = await self.fetchall(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles "
            "ORDER BY published_at DESC, id DESC LIMIT ? OFFSET ?",
            [limit, offset],
        )
        return [_article(r) for r in rows]

    async def all_articles(self) -> list[Article]:
        """Every article (for index builds and benchmarks)."""
        rows = await self.fetchall(f"SELECT {_ARTICLE_COLUMNS} FROM articles ORDER BY id")
        return [_article(r) for r in rows]

    async def origin_of(self, article_id: int) -> str:
        """Where an article came from (a file path, ``feed:URL``, ``channel:ID``...)."""
        row = await self.fetchone("SELECT origin FROM articles WHERE id = ?", [article_id])
        return row[0] if row else ""

    async def save_article(
        self,
        draft: ArticleDraft,
        replace_id: int | None = None,
        digest: str | None = None,
        *,
        route: bool = True,
        link: ArticleLinker | None = None,
    ) -> int:
        """Store ``draft`` and its chunks in one transaction; returns the article id.

        With ``replace_id`` the existing article keeps its id and gets the new text
        and fresh chunks. ``digest`` is the text's content hash when the caller has it.
        A new article is queued for routing to its followers (unless ``route`` is False)
        and ``link`` writes the caller's rows about it, both in the same transaction.
        """
        digest = digest or content_hash(draft.text)
        spans = chunk_spans(draft.text)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        values = [
            draft.url,
            draft.title,
            draft.source,
            json.dumps(list(draft.authors), ensure_ascii=False),
            draft.published_at.isoformat() if draft.published_at else None,
            draft.language,
            draft.text,
            digest,
            now,
            draft.origin,
        ]
        async with self.transaction() as db:
            if replace_id is None:
                cur = await db.execute(
                    "INSERT INTO articles (url, title, source, authors, published_at, language,"
                    " text, content_hash, ingested_at, origin) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    values,
                )
                article_id = int(cur.lastrowid or 0)
            else:
                article_id = replace_id
                await db.execute("DELETE FROM chunks WHERE article_id = ?", [article_id])
                await db.execute(
                    "UPDATE articles SET url=?, title=?, source=?, authors=?, published_at=?,"
                    " language=?, text=?, content_hash=?, ingested_at=?, origin=? WHERE id=?",
                    [*values, article_id],
                )
            await db.executemany(
                'INSERT INTO chunks (article_id, ordinal, start, "end", text, content_hash)'
                " VALUES (?,?,?,?,?,?)",
                [
                    (
                        article_id,
                        s.ordinal,
                        s.start,
                        s.end,
                        draft.text[s.start : s.end],
                        chunk_hash(draft.title, draft.text[s.start : s.end]),
                    )
                    for s in spans
                ],
            )
            if replace_id is None and route:
                await db.execute(
                    "INSERT OR IGNORE INTO route_queue (article_id, created_at) VALUES (?, ?)",
                    [article_id, now],
                )
            if link is not None:
                await link(db, article_id)
            await self._bump_version(db)
        return article_id

    async def delete_article(self, article_id: int) -> bool:
        """Delete an article and its chunks; False when there was none."""
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM articles WHERE id = ?", [article_id])
            deleted = cur.rowcount > 0
            if deleted:
                await self._bump_version(db)
        return deleted

    async def _bump_version(self, db: aiosqlite.Connection) -> None:
        await db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'corpus_version'"
        )

    async def corpus_version(self) -> int:
        """A counter that grows with every change to articles or chunks."""
        row = await self.fetchone("SELECT value FROM meta WHERE key = 'corpus_version'")
        return int(row[0])

    async def date_range(self) -> tuple[date | None, date | None]:
        """The first and last publication dates (cheap: uses the index)."""
        first, last = await self.fetchone(
            "SELECT MIN(published_at), MAX(published_at) FROM articles"
        )
        return _parse_date(first), _parse_date(last)

    async def stats(self) -> CorpusStats:
        """Article and chunk counts, articles per source, and the publication date range."""
        (articles, first, last) = await self.fetchone(
            "SELECT COUNT(*), MIN(published_at), MAX(published_at) FROM articles"
        )
        (chunks,) = await self.fetchone("SELECT COUNT(*) FROM chunks")
        sources = await self.fetchall(
            "SELECT source, COUNT(*) FROM articles GROUP BY source ORDER BY COUNT(*) DESC, source"
        )
        return CorpusStats(
            articles=articles,
            chunks=chunks,
            sources=tuple((s, n) for s, n in sources),
            first_date=_parse_date(first),
            last_date=_parse_date(last),
            corpus_version=await self.corpus_version(),
        )

    # -- chunks ---------------------------------------------------------------------

    async def all_chunks(self) -> list[Chunk]:
        """Every chunk, by id."""
        rows = await self.fetchall(f"SELECT {_CHUNK_COLUMNS} FROM chunks ORDER BY id")
        return [_chunk(r) for r in rows]

    async def chunk_ids(self) -> set[int]:
        """The ids of all stored chunks."""
        return {r[0] for r in await self.fetchall("SELECT id FROM chunks")}

    async def get_chunks(self, ids: Iterable[int]) -> dict[int, Chunk]:
        """Chunks by id (missing ids are left out)."""
        ids = list(set(ids))
        out: dict[int, Chunk] = {}
        for i in range(0, len(ids), _ID_BATCH):
            part = ids[i : i + _ID_BATCH]
            marks = ",".join("?" * len(part))
            rows = await self.fetchall(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id IN ({marks})", part
            )
            out.update((r[0], _chunk(r)) for r in rows)
        return out

    async def chunk_rows_for_index(self) -> list[ChunkIndexRow]:
        """Every chunk with the article fields that indexing and filters need."""
        rows = await self.fetchall(
            "SELECT c.id, c.article_id, c.content_hash, c.text, a.title, a.published_at, a.source"
            " FROM chunks c JOIN articles a ON a.id = c.article_id ORDER BY c.id"
        )
        return [ChunkIndexRow(r[0], r[1], r[2], r[3], r[4], _parse_date(r[5]), r[6]) for r in rows]

    async def chunk_id_list(self) -> list[int]:
        """The ids of all stored chunks, in order."""
        return [r[0] for r in await self.fetchall("SELECT id FROM chunks ORDER BY id")]

    async def index_rows(self) -> list[IndexRow]:
        """Every chunk as the indexes see it, by id, without its text (at 3,000 chunks the
        texts made this read 23 ms, though an update needs those of new chunks only)."""
        rows = await self.fetchall(
            f"SELECT {_INDEX_ROW_COLUMNS} FROM chunks c JOIN articles a ON a.id = c.article_id"
            " ORDER BY c.id"
        )
        return [_index_row(r) for r in rows]

    async def index_rows_of(self, ids: list[int]) -> tuple[list[IndexRow], dict[int, str]]:
        """The index rows of chunks ``ids`` and their texts (new chunks need both)."""
        rows: list[IndexRow] = []
        texts: dict[int, str] = {}
        for i in range(0, len(ids), _ID_BATCH):
            part = ids[i : i + _ID_BATCH]
            marks = ",".join("?" * len(part))
            found = await self.fetchall(
                f"SELECT {_INDEX_ROW_COLUMNS}, c.text FROM chunks c"
                f" JOIN articles a ON a.id = c.article_id WHERE c.id IN ({marks})",
                part,
            )
            rows.extend(_index_row(r) for r in found)
            texts.update((r[0], r[6]) for r in found)
        return rows, texts

    async def chunk_texts(self, ids: set[int], total: int) -> dict[int, str]:
        """The texts of chunks ``ids`` (of ``total`` chunks); a chunk deleted since is missing."""
        if not ids:
            return {}
        if len(ids) * 4 > total:  # most of them: one scan beats many lookups
            rows = await self.fetchall("SELECT id, text FROM chunks")
            return {cid: text for cid, text in rows if cid in ids}
        wanted = sorted(ids)
        out: dict[int, str] = {}
        for i in range(0, len(wanted), _ID_BATCH):
            part = wanted[i : i + _ID_BATCH]
            rows = await self.fetchall(
                f"SELECT id, text FROM chunks WHERE id IN ({','.join('?' * len(part))})", part
            )
            out.update((cid, text) for cid, text in rows)
        return out

    async def rows_with_version(
        self, chunk_ids: list[int], article_ids: list[int]
    ) -> tuple[dict[int, Chunk], dict[int, Article], int | None]:
        """Chunks and articles by id (as :meth:`get_chunks` and :meth:`get_articles` give
        them) and the corpus version they were read at, in one query instead of three: the
        search's row cache stays valid while that version does."""
        width = _ARTICLE_COLUMNS.count(",") + 1
        chunk_width = _CHUNK_COLUMNS.count(",") + 1
        rows = await self.fetchall(
            f"SELECT 2, CAST(value AS INTEGER){', NULL' * (width - 1)} FROM meta"
            " WHERE key = 'corpus_version'"
            f" UNION ALL SELECT 0, {_CHUNK_COLUMNS}{', NULL' * (width - chunk_width)} FROM chunks"
            f" WHERE id IN ({','.join('?' * len(chunk_ids))})"
            f" UNION ALL SELECT 1, {_ARTICLE_COLUMNS} FROM articles"
            f" WHERE id IN ({','.join('?' * len(article_ids))})",
            [*chunk_ids, *article_ids],
        )
        chunks = {row[1]: _chunk(row[1 : 1 + chunk_width]) for row in rows if row[0] == 0}
        articles = {row[1]: _article(row[1:]) for row in rows if row[0] == 1}
        version = next((row[1] for row in rows if row[0] == 2), None)
        return chunks, articles, version

    async def chunks_of(self, article_id: int) -> list[Chunk]:
        """An article's chunks in order."""
        rows = await self.fetchall(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE article_id = ? ORDER BY ordinal",
            [article_id],
        )
        return [_chunk(r) for r in rows]

    # -- vectors ----------------------------------------------------------------------

    async def vectors_for(self, model: str, hashes: Iterable[str]) -> dict[str, bytes]:
        """Stored vectors of ``model`` for these chunk content hashes."""
        hashes = list(set(hashes))
        out: dict[str, bytes] = {}
        for i in range(0, len(hashes), _ID_BATCH):
            part = hashes[i : i + _ID_BATCH]
            marks = ",".join("?" * len(part))
            rows = await self.fetchall(
                "SELECT content_hash, vector FROM chunk_vectors"
                f" WHERE model = ? AND content_hash IN ({marks})",
                [model, *part],
            )
            out.update((h, v) for h, v in rows)
        return out

    async def put_vectors(self, model: str, items: Iterable[tuple[str, bytes]]) -> None:
        """Store vectors of ``model`` by chunk content hash."""
        async with self.transaction() as db:
            await db.executemany(
                "INSERT OR REPLACE INTO chunk_vectors (model, content_hash, vector) VALUES (?,?,?)",
                [(model, h, v) for h, v in items],
            )

    async def prune_vectors(self) -> int:
        """Drop vectors that no chunk uses any more; returns how many went."""
        async with self.transaction() as db:
            cur = await db.execute(
                "DELETE FROM chunk_vectors WHERE content_hash NOT IN"
                " (SELECT content_hash FROM chunks)"
            )
            return cur.rowcount
