"""Batch scoring: a model version over a table in chunks, into Parquet parts."""
