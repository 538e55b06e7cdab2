"""The ``prefect-mlops`` command line: one error boundary, one module per command group."""
