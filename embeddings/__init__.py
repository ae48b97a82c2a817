"""Embeddings and search: the embedder, the FAISS and BM25 indexes, hybrid retrieval."""
