"""Search indexes derived from the SQLite store, a cache rebuilt from it at will.

`vectors` (FAISS: the only module importing it), `bm25` (words), `tokens` (word-piece
vectors for reranking), `texts` (what answers quote and cite), `build` (the indexes of one
generation, built from a snapshot) and `saved` (their folder: save, load, residency).
"""
