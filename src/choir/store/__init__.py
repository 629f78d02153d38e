"""Storage adapters: the SQL store and the vector index."""
