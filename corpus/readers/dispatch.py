"""Pick a reader by file extension; walk directories recursively."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from corpus.readers.base import (
    DEFAULT_MAX_FILE_BYTES,
    ReadFailure,
    ReadResult,
    UnreadableFile,
    decode_utf8,
    read_bytes,
)
from corpus.readers.html import parse_html
from corpus.readers.jsonfmt import parse_json, parse_jsonl
from corpus.readers.markdown import parse_markdown
from corpus.readers.seed import parse_seed

log = logging.getLogger(__name__)

_HTML_SUFFIXES = frozenset({".html", ".htm"})
SUPPORTED_SUFFIXES = frozenset(
    {".txt", ".json", ".jsonl", ".ndjson", ".html", ".htm", ".md", ".markdown"}
)


def _read_file(path: Path, max_bytes: int) -> Iterator[ReadResult]:
    origin = str(path)
    suffix = path.suffix.lower()
    try:
        data = read_bytes(path, max_bytes)
        # trafilatura finds an HTML page's encoding itself; the other formats are UTF-8.
        content = data if suffix in _HTML_SUFFIXES else decode_utf8(data)
    except UnreadableFile as exc:
        yield ReadFailure(origin, str(exc))
        return
    except OSError as exc:
        yield ReadFailure(origin, f"cannot read the file ({exc.strerror or exc})")
        return
    try:
        yield from _parse(suffix, content, origin)
    except Exception as exc:  # a reader's bug on one odd file must not end the whole ingest
        log.exception("reading %s failed", origin)
        yield ReadFailure(origin, f"could not read the file ({type(exc).__name__})")


def _parse(suffix: str, content: str | bytes, origin: str) -> Iterator[ReadResult]:
    if isinstance(content, bytes):
        yield parse_html(content, origin)
        return
    text = content
    if suffix == ".txt":
        yield parse_seed(text, origin)
    elif suffix == ".json":
        yield from parse_json(text, origin)
    elif suffix in (".jsonl", ".ndjson"):
        yield from parse_jsonl(text, origin)
    elif suffix in (".md", ".markdown"):
        yield parse_markdown(text, origin)


def read_path(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[ReadResult]:
    """Every article in a file or, recursively, a directory (by extension, sorted).

    Hidden files and unsupported extensions inside directories are skipped; a file
    named explicitly with an unsupported extension is a failure.
    """
    if not path.exists():
        yield ReadFailure(str(path), "no such file or directory")
        return
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
            if child.is_file() and not hidden and child.suffix.lower() in SUPPORTED_SUFFIXES:
                yield from _read_file(child, max_bytes)
        return
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        yield ReadFailure(str(path), f"unsupported file type '{path.suffix or '(none)'}'")
        return
    yield from _read_file(path, max_bytes)
