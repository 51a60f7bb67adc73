"""Articles in, an index on disk out: loading, cleaning, splitting, embedding, storing."""
