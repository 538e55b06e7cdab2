"""Batch scoring: a model version over a table in chunks, into Parquet parts (no Prefect here).

One module per concern, in the order the ``batch-scoring`` flow uses them:

* :mod:`.config` — :class:`~.config.ScoringConfig`, the flow's one parameter.
* :mod:`.model` — alias → version and its feature columns; the model loaded once per process.
* :mod:`.chunks` — the input streamed through :mod:`prefect_mlops.data.sources` (the reader
  training uses) in bounded chunks, checked against the model before the first one.
* :mod:`.predict` — one table's features as training saw them, predicted in row slices.
* :mod:`.output` — request ids, the scored table's columns, part files and the output folder.
* :mod:`.staging` — the Dask runner's input: chunks staged as files for the workers.
* :mod:`.runner` — scoring one table, one staged chunk, or the whole input in this process.
* :mod:`.summary` — what a job produced (:class:`~.summary.ScoringSummary`), as JSON and markdown.
"""
