"""Optional Prometheus metrics (served when ``NEWSBOT_METRICS_PORT`` is set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

ANSWERS = Counter("newsbot_answers_total", "Questions answered", ["outcome"])
LATENCY = Histogram(
    "newsbot_answer_seconds",
    "Time to answer a question",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ERRORS = Counter("newsbot_errors_total", "Errors raised by handlers")
ARTICLES = Gauge("newsbot_corpus_articles", "Articles in the corpus")
CHUNKS = Gauge("newsbot_corpus_chunks", "Chunks in the corpus")


def observe_answer(abstained: bool, seconds: float) -> None:
    """Count an answer and its latency."""
    ANSWERS.labels("abstained" if abstained else "answered").inc()
    LATENCY.observe(seconds)


def set_corpus_size(articles: int, chunks: int) -> None:
    """Update the corpus-size gauges."""
    ARTICLES.set(articles)
    CHUNKS.set(chunks)


def serve(port: int) -> None:
    """Serve /metrics on 127.0.0.1:``port`` (a thread)."""
    start_http_server(port, addr="127.0.0.1")
