"""Data: sources that read and stream CSV / Parquet / SQL with the time window, content-addressed
snapshots, validation (GX), splitting and the demo data."""
