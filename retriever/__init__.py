"""A question to an answer: hybrid search, sentence selection, dedup, abstention."""
