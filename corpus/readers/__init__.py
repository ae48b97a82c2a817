"""Readers turn files into article drafts, one format a module.

``read_path`` walks files and directories and yields, for every article found,
either an :class:`ArticleDraft` or a :class:`ReadFailure` with a one-line reason.
"""

from corpus.readers.base import ReadFailure, ReadResult
from corpus.readers.dispatch import SUPPORTED_SUFFIXES, read_path

__all__ = ["SUPPORTED_SUFFIXES", "ReadFailure", "ReadResult", "read_path"]
