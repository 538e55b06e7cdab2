"""The Dask runner's input: chunks staged as files, each yielded once written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.data.demo import generate_churn
from prefect_mlops.errors import DataIngestError
from prefect_mlops.scoring.config import ScoringConfig
from prefect_mlops.scoring.staging import (
    read_staged_chunk,
    remove_staged_chunk,
    stage_chunks,
    staging_dir,
)

ROWS = 3000
FEATURES = ["age", "tenure_months", "contract", "payment_method"]


def _config(out: Path, path: Path, **overrides: object) -> ScoringConfig:
    raw = {
        "model_name": "m",
        "data": {"path": str(path)},
        "output_dir": str(out),
        "id_column": "customer_id",
        "chunk_size": 1000,
    }
    return ScoringConfig.model_validate({**raw, **overrides})


def test_stage_chunks_yields_each_chunk_once_written(tmp_path: Path) -> None:
    frame = generate_churn(ROWS, seed=11)
    parquet = tmp_path / "churn.parquet"
    frame.to_parquet(parquet, index=False)
    config = _config(tmp_path / "out", parquet)
    chunks = stage_chunks(config, FEATURES, "j1")
    first = next(chunks)
    staging = staging_dir(config.output_dir, "j1")
    # Only the first chunk is on disk when the caller gets it.
    assert [p.name for p in staging.iterdir()] == ["chunk-00000.arrow"]
    assert first.rows == 1000 and first.seconds >= 0
    table = read_staged_chunk(first, [*FEATURES, "customer_id"])
    assert table["customer_id"].to_pylist() == frame["customer_id"].head(1000).tolist()
    pd.testing.assert_series_equal(
        table["contract"].to_pandas().astype(object), frame["contract"].head(1000)
    )
    rest = list(chunks)
    assert [c.index for c in rest] == [1, 2] and sum(c.rows for c in rest) == ROWS - 1000
    remove_staged_chunk(first)
    remove_staged_chunk(first)  # a missing file is no error
    assert sorted(p.name for p in staging.iterdir()) == ["chunk-00001.arrow", "chunk-00002.arrow"]
    # A caller that stops early decides what happens to the chunks staged so far.
    early = stage_chunks(config, FEATURES, "j2")
    next(early)
    early.close()
    assert [p.name for p in staging_dir(config.output_dir, "j2").iterdir()] == ["chunk-00000.arrow"]


def test_a_read_error_removes_what_was_staged(tmp_path: Path) -> None:
    csv = tmp_path / "churn.csv"
    generate_churn(ROWS, seed=11).to_csv(csv, index=False)
    bad = tmp_path / "truncated.csv"
    bad.write_text(csv.read_text()[: len(csv.read_text()) // 2] + '\n"unclosed')
    failing = _config(tmp_path / "out", bad, chunk_size=200)
    with pytest.raises(DataIngestError, match="truncated"):
        list(stage_chunks(failing, FEATURES, "j3"))
    assert not staging_dir(failing.output_dir, "j3").exists()
