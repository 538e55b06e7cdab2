"""prefect-mlops."""
