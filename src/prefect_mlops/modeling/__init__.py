"""Modeling: building and fitting the pipeline, evaluating it (metrics, slices) and blessing it
against the champion."""
