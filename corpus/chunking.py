"""Sentence-aware chunking with exact character offsets.

Chunks gather whole sentences until they hold about ``target_words`` words (never more
than ``max_words`` unless a single sentence is longer, which is then cut at word
boundaries). Consecutive chunks share one sentence, so a fact that straddles a
boundary is still found whole in one chunk.
"""

from __future__ import annotations

from corpus.models import ChunkSpan
from corpus.text import sentence_spans, word_spans

TARGET_WORDS = 150
MAX_WORDS = 200


def _split_long_sentence(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    words = word_spans(text, start, end)
    return [
        (words[i][0], words[min(i + max_words, len(words)) - 1][1])
        for i in range(0, len(words), max_words)
    ]


def _units(text: str, max_words: int) -> list[tuple[int, int, int]]:
    """Sentences as (start, end, words), long ones cut into pieces of ``max_words``."""
    units: list[tuple[int, int, int]] = []
    for start, end in sentence_spans(text):
        words = word_spans(text, start, end)
        if len(words) <= max_words:
            units.append((start, end, len(words)))
        else:
            for s, e in _split_long_sentence(text, start, end, max_words):
                units.append((s, e, len(word_spans(text, s, e))))
    return units


def chunk_spans(
    text: str, target_words: int = TARGET_WORDS, max_words: int = MAX_WORDS
) -> list[ChunkSpan]:
    """Chunk ``text`` into overlapping spans of whole sentences.

    ``text[span.start:span.end]`` is the chunk's text; spans are ordered, non-empty,
    carry no surrounding white space, and together cover every non-space character.
    """
    units = _units(text, max_words)
    spans: list[ChunkSpan] = []
    i = 0
    while i < len(units):
        j, words = i, units[i][2]
        while j + 1 < len(units) and words < target_words and words + units[j + 1][2] <= max_words:
            j += 1
            words += units[j][2]
        spans.append(ChunkSpan(ordinal=len(spans), start=units[i][0], end=units[j][1]))
        if j + 1 >= len(units):
            break
        # One sentence of overlap, unless the chunk was a single unit (no progress
        # otherwise) or the overlap sentence could not share a chunk with the next one.
        overlap_fits = units[j][2] + units[j + 1][2] <= max_words
        i = j if j > i and overlap_fits else j + 1
    return spans
