"""Continuous monitoring, one module per concern: ``profile`` (what a model version's reference
data and test predictions look like, kept with the version), ``window`` (mergeable statistics of
a serving-log window), ``drift`` (feature and prediction drift, the tests Evidently's
``DataDriftPreset`` picks), ``skew`` (schema skew against the version's GX suite), ``quality``
(realised quality on late labels, estimated quality before them), ``efficiency`` (latency,
throughput, errors) and ``runner`` (a whole monitoring run: the checks and their result)."""
