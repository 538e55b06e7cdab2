"""The chunks to score: the input streamed through the data sources, checked before any row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.data.demo import generate_churn
from prefect_mlops.errors import DataIngestError, ScoringError
from prefect_mlops.scoring.chunks import iter_scoring_tables, needed_columns
from prefect_mlops.scoring.config import ScoringConfig

ROWS = 3000
FEATURES = ["age", "tenure_months", "contract"]


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("churn")
    frame = generate_churn(ROWS, seed=11)
    frame.to_csv(folder / "churn.csv", index=False)
    frame.to_parquet(folder / "churn.parquet", index=False)
    return {"csv": folder / "churn.csv", "parquet": folder / "churn.parquet"}


def _config(out: Path, data: dict[str, object], **overrides: object) -> ScoringConfig:
    raw = {"model_name": "m", "data": data, "output_dir": str(out), "id_column": "customer_id"}
    return ScoringConfig.model_validate({**raw, **overrides})


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_stream_never_holds_more_than_a_chunk(
    churn: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    config = _config(tmp_path / "out", {"path": str(churn[kind])}, chunk_size=256)
    chunks = list(iter_scoring_tables(config, FEATURES))
    sizes = [c.rows for c in chunks]
    assert sum(sizes) == ROWS and max(sizes) == 256 and len(sizes) == -(-ROWS // 256)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].table.column_names == [*FEATURES, "customer_id"]


def test_time_window_keeps_the_rows_in_it_and_skips_empty_chunks(
    churn: dict[str, Path], tmp_path: Path
) -> None:
    stamps = pd.read_parquet(churn["parquet"], columns=["event_ts"])["event_ts"]
    since = stamps.sort_values().iloc[ROWS // 2]
    data = {"path": str(churn["csv"]), "timestamp_column": "event_ts", "since": str(since)}
    chunks = list(iter_scoring_tables(_config(tmp_path / "out", data, chunk_size=500), FEATURES))
    assert sum(c.rows for c in chunks) == int((stamps >= since).sum())
    assert all(c.rows for c in chunks) and [c.index for c in chunks] == list(range(len(chunks)))
    late = {**data, "since": "2100-01-01"}
    with pytest.raises(DataIngestError, match=r"no rows of data file .*churn\.csv have 'event_ts'"):
        list(iter_scoring_tables(_config(tmp_path / "out", late), FEATURES))


def test_bad_columns_are_named_before_any_row(churn: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ScoringError, match=r"feature column\(s\) \['loyalty'\]"):
        next(iter_scoring_tables(_config(out, {"path": str(churn["parquet"])}), ["loyalty"]))
    with pytest.raises(ScoringError, match="id_column 'key' is not in"):
        next(iter_scoring_tables(_config(out, {"path": str(churn["csv"])}, id_column="key"), []))
    window = {"path": str(churn["csv"]), "timestamp_column": "when", "until": "2030-01-01"}
    with pytest.raises(DataIngestError, match=r"timestamp column 'when' is not in .*churn\.csv"):
        next(iter_scoring_tables(_config(out, window), FEATURES))
    assert not out.exists()


def test_old_parts_go_only_once_the_first_chunk_is_read(
    churn: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-00000.parquet").write_bytes(b"old")
    with pytest.raises(ScoringError, match="overwrite"):
        next(iter_scoring_tables(_config(out, {"path": str(churn["csv"])}), FEATURES))
    again = _config(out, {"path": str(churn["csv"])}, overwrite=True)
    chunks = iter_scoring_tables(again, FEATURES)
    assert (out / "part-00000.parquet").exists()
    next(chunks)
    assert not (out / "part-00000.parquet").exists()


def test_needed_columns() -> None:
    assert needed_columns(["a", "customer_id"], "customer_id") == ["a", "customer_id"]
    assert needed_columns(["a"], "customer_id") == ["a", "customer_id"]
    assert needed_columns(["a"], None) == ["a"]
