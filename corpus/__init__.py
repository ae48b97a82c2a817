"""newsbot's corpus: articles in from files, URLs, feeds and channels; stored and chunked.

This package imports nothing from ``embeddings`` or ``bot``: data flows one way.
"""
