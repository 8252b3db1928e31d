"""Read: the input formats shipped in the core (CSV, Parquet, JSON Lines, JSON)."""
