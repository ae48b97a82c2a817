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
    # 3: feeds, channel sources, subscriptions and the delivery outbox.
    """
    CREATE TABLE feeds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        url TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL DEFAULT '',
        interval_minutes INTEGER NOT NULL,
        etag TEXT,
        last_modified TEXT,
        last_fetch_at TEXT,
        last_error TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        next_run_at TEXT NOT NULL,
        added_by INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE TABLE feed_entries (
        feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        guid TEXT NOT NULL,
        article_id INTEGER REFERENCES articles(id) ON DELETE SET NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (feed_id, guid)
    );
    CREATE TABLE article_origins (
        article_id INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
        feed_id INTEGER REFERENCES feeds(id) ON DELETE SET NULL,
        channel_id INTEGER
    );
    CREATE TABLE channel_sources (
        chat_id INTEGER PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        username TEXT,
        enabled_by INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE TABLE chats (
        chat_id INTEGER PRIMARY KEY,
        chat_type TEXT NOT NULL DEFAULT 'private',
        title TEXT NOT NULL DEFAULT '',
        digest_time TEXT,
        last_digest_on TEXT,
        paused_reason TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL REFERENCES chats(chat_id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('topic', 'feed')),
        query TEXT NOT NULL DEFAULT '',
        feed_id INTEGER REFERENCES feeds(id) ON DELETE CASCADE,
        query_model TEXT,
        query_vector BLOB,
        created_by INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE INDEX subscriptions_chat ON subscriptions(chat_id);
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        subscription_id INTEGER,
        quote_start INTEGER,
        quote_end INTEGER,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        message_id INTEGER,
        last_error TEXT,
        UNIQUE (chat_id, article_id)
    );
    CREATE INDEX deliveries_pending ON deliveries(status, not_before);
    """,
    # 4: vectors are identified by their model alone, not its precision (bf16 and fp32
    # vectors are interchangeable, see embeddings/embedder.py): fold "model@precision"
    # names into the model's, keeping one vector per chunk text.
    """
    INSERT OR IGNORE INTO chunk_vectors (model, content_hash, vector)
        SELECT substr(model, 1, instr(model, '@') - 1), content_hash, vector
        FROM chunk_vectors WHERE instr(model, '@') > 0;
    DELETE FROM chunk_vectors WHERE instr(model, '@') > 0;
    UPDATE subscriptions SET query_model = substr(query_model, 1, instr(query_model, '@') - 1)
        WHERE instr(query_model, '@') > 0;
    """,
    # 5: hardening. "More sources" quotes kept per chat with a random key (they survive
    # restarts and no chat can read another's); articles waiting to be routed to their
    # followers, written in the same transaction as the article, so a crash can delay a
    # push but never lose it; channels wait for a bot admin's approval before their posts
    # count as news (channels already added were added by admins or their own admins, and
    # stay approved); a daily digest that fails backs off instead of retrying every tick.
    """
    CREATE TABLE more_quotes (
        key TEXT PRIMARY KEY,
        chat_id INTEGER NOT NULL,
        quotes TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX more_quotes_created ON more_quotes(created_at);
    CREATE TABLE route_queue (
        article_id INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL
    );
    ALTER TABLE channel_sources ADD COLUMN status TEXT NOT NULL DEFAULT 'approved';
    ALTER TABLE chats ADD COLUMN digest_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN digest_retry_at TEXT;
    """,
]
