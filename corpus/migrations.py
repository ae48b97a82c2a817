"""Numbered schema migrations, applied in order when the store opens.

Each migration runs once; ``PRAGMA user_version`` records the last one applied.
Append new migrations at the end, never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: articles and their chunks.
    """
    CREATE TABLE articles (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        url TEXT UNIQUE,
        title TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        authors TEXT NOT NULL DEFAULT '[]',
        published_at TEXT,
        language TEXT NOT NULL DEFAULT 'en',
        text TEXT NOT NULL,
        content_hash TEXT NOT NULL UNIQUE,
        ingested_at TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX articles_published ON articles(published_at);
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        text TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        UNIQUE (article_id, ordinal)
    );
    CREATE INDEX chunks_hash ON chunks(content_hash);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta(key, value) VALUES ('corpus_version', '0');
    """,
    # 2: embedding vectors, keyed by model and chunk content hash, so an unchanged chunk
    # is never embedded twice (even when its article is replaced) and a new model
    # re-embeds everything.
    """
    CREATE TABLE chunk_vectors (
        model TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model, content_hash)
    ) WITHOUT ROWID;
    """,
]
