"""The serving-log writer: partitioned Parquet files that survive a new writer, a SQL table, and
a failing sink that never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from prefect_mlops.serving.log import (
    COLUMNS,
    RequestRecord,
    ServingLogWriter,
    read_serving_log,
)


def _record(rid: str, n: int, status: str = "ok") -> RequestRecord:
    frame = pd.DataFrame({"tenure": [float(i) for i in range(n)], "contract": ["a"] * n})
    frame.loc[0, "tenure"] = np.nan
    return RequestRecord(
        rid,
        datetime.now(UTC),
        "m",
        "3",
        "champion",
        4.5,
        status,
        features=frame,
        predictions=list(range(n)),
        probabilities=[[0.25, 0.75]] * n,
    )


def test_writer_partitions_parquet_and_survives_a_new_writer(tmp_path: Path) -> None:
    directory = tmp_path / "serving_log"
    writer = ServingLogWriter(directory, flush_rows=3, flush_seconds=0.2)
    writer.log([_record("a", 2), _record("b", 3)])
    writer.log([RequestRecord("c", datetime.now(UTC), "m", "3", "champion", 1.0, "422", "bad")])
    writer.close()
    files = list(directory.glob("date=*/part-*.parquet"))
    assert files and all(f.parent.name.startswith("date=20") for f in files)
    assert not list(directory.rglob("*.tmp"))

    again = ServingLogWriter(directory)  # a restarted server appends, never overwrites
    again.log([_record("d", 1)])
    again.close()
    log = read_serving_log(directory)
    assert list(log.columns) == list(COLUMNS)
    assert len(log) == 2 + 3 + 1 + 1
    assert list(log["request_id"]) == ["a", "a", "b", "b", "b", "c", "d"]
    assert list(log["row_index"]) == [0, 1, 0, 1, 2, 0, 0]
    assert str(log["timestamp"].dt.tz) == "UTC"
    first = log.iloc[0]
    assert json.loads(first["features"]) == {"tenure": None, "contract": "a"}
    assert json.loads(first["prediction"]) == 0
    assert json.loads(first["probabilities"]) == [0.25, 0.75]
    refused = log[log["request_id"] == "c"].iloc[0]
    assert (refused["status"], refused["error"]) == ("422", "bad")
    assert refused["features"] is None and refused["prediction"] is None


def test_writer_appends_to_a_sql_table(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = ServingLogWriter(tmp_path / "pq", url)
    writer.log([_record("a", 2)])
    writer.flush()
    writer.log([_record("b", 1)])
    writer.close()
    table = pd.read_sql(
        "SELECT * FROM serving_log ORDER BY request_id, row_index", create_engine(url)
    )
    assert list(table.columns) == list(COLUMNS)
    assert list(table["request_id"]) == ["a", "a", "b"]
    assert writer.stats.sql_rows == 3 and writer.stats.failures == 0


def test_failing_sink_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder should be")
    writer = ServingLogWriter(blocker / "log", "sqlite:////nonexistent/dir/log.db")
    writer.log([_record("a", 2)])  # must not raise
    writer.close()
    assert writer.stats.failures == 2
    assert writer.stats.written_rows == 0
    assert "sql" in (writer.stats.last_error or "")


def _old_rows(rid: str) -> pd.DataFrame:
    """Rows as an earlier version wrote them: every column but ``client_request_id``."""
    from prefect_mlops.serving.log import to_frame

    return to_frame(_record(rid, 1).rows()).drop(columns=["client_request_id"])


def test_client_request_id_is_logged_and_old_files_read_with_it_null(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = tmp_path / "serving_log"
    old = directory / "date=2026-01-01" / "part-old.parquet"
    old.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(_old_rows("old"), preserve_index=False), old)
    writer = ServingLogWriter(directory)
    record = _record("new", 1)
    record.client_request_id = "order 42"
    writer.log([record])
    writer.close()
    log = read_serving_log(directory).set_index("request_id")
    assert log.loc["new", "client_request_id"] == "order 42"
    assert log.loc["old", "client_request_id"] is None
    assert list(log.reset_index().columns) == list(COLUMNS)


def test_a_sql_table_of_an_earlier_version_gets_the_new_column(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'log.db'}"
    _old_rows("old").to_sql("serving_log", create_engine(url), index=False)
    writer = ServingLogWriter(tmp_path / "pq", url)
    record = _record("new", 1)
    record.client_request_id = "order 42"
    writer.log([record])
    writer.close()
    assert writer.stats.failures == 0 and writer.stats.sql_rows == 1
    table = pd.read_sql("SELECT * FROM serving_log ORDER BY request_id", create_engine(url))
    assert set(table.columns) == set(COLUMNS)
    assert list(table["client_request_id"]) == ["order 42", None]
