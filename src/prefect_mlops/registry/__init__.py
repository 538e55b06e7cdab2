"""Registry: MLflow tracking, lineage tag names and builders, alias moves and their history."""
