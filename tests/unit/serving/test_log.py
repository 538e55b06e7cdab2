"""The serving-log writer: typed Parquet partitioned by model and day that survives a new
writer, a typed SQL table per model, and a failing sink that never raises."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefect_mlops.errors import ConfigError
from prefect_mlops.serving.log import (
    COLUMNS,
    FEATURE_PREFIX,
    LEGACY_COLUMNS,
    PROBA_PREFIX,
    RequestRecord,
    ServingLogWriter,
    read_serving_log,
    read_window,
    sql_table_name,
)
from prefect_mlops.serving.schema import ColumnSpec, InputSchema

SCHEMA = InputSchema(
    (
        ColumnSpec("tenure", "long"),
        ColumnSpec("charges", "double"),
        ColumnSpec("contract", "string"),
        ColumnSpec("vip", "boolean"),
    )
)
DAY = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _frame(n: int) -> pd.DataFrame:
    """A request frame as ``schema.parse_body`` builds it (a long with a missing value is
    float64, missing text NaN, booleans objects)."""
    frame = pd.DataFrame(
        {
            "tenure": np.arange(n, dtype="float64"),
            "charges": np.linspace(1.0, 2.0, n),
            "contract": np.array(["a"] * n, dtype=object),
            "vip": np.array([True] * n, dtype=object),
        }
    )
    frame.loc[0, ["tenure", "contract"]] = np.nan
    return frame


def _record(
    rid: str,
    n: int,
    *,
    at: datetime = DAY,
    model: str = "churn",
    version: str = "3",
    variant: str = "champion",
) -> RequestRecord:
    return RequestRecord(
        rid, at, model, version, variant, 4.5,
        features=_frame(n), predictions=[i % 2 for i in range(n)],
        probabilities=[[0.25, 0.75]] * n, classes=[0, 1], input_schema=SCHEMA,
    )  # fmt: skip


def _refused(rid: str, at: datetime = DAY, model: str = "churn") -> RequestRecord:
    return RequestRecord(rid, at, model, "3", "champion", 1.0, "422", "bad")


def _write(directory: Path, records: list[RequestRecord], db_url: str | None = None) -> None:
    writer = ServingLogWriter(directory, db_url, flush_seconds=0.05)
    writer.log(records)
    writer.close()
    assert writer.stats.failures == 0, writer.stats.last_error


def test_writer_partitions_typed_parquet_by_model_and_day_and_survives_a_new_writer(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "serving_log"
    _write(directory, [_record("a", 2), _record("b", 3), _refused("c")])
    _write(directory, [_record("d", 1, at=DAY + timedelta(days=1))])  # a restarted server
    files = sorted(directory.rglob("part-*.parquet"))
    assert [f.parent.relative_to(directory).as_posix() for f in files] == [
        "model=churn/date=2026-03-04",
        "model=churn/date=2026-03-05",
    ]
    assert not list(directory.rglob("*.tmp"))
    schema = pq.read_schema(files[0])
    assert {n: str(schema.field(n).type) for n in schema.names if n not in COLUMNS} == {
        "feature.tenure": "int64",
        "feature.charges": "double",
        "feature.contract": "string",
        "feature.vip": "bool",
        "prediction": "int64",
        "proba.0": "double",
        "proba.1": "double",
    }
    assert schema.names[: len(COLUMNS)] == list(COLUMNS)

    log = read_window(directory, "churn")
    assert list(log["request_id"]) == ["a", "a", "b", "b", "b", "c", "d"]
    assert list(log["row_index"]) == [0, 1, 0, 1, 2, 0, 0]
    assert str(log["timestamp"].dt.tz) == "UTC"
    first, second = log.iloc[0], log.iloc[1]
    assert pd.isna(first["feature.tenure"]) and pd.isna(first["feature.contract"])
    assert (second["feature.tenure"], second["feature.contract"]) == (1, "a")
    assert bool(second["feature.vip"]) is True
    assert list(log["prediction"].iloc[:2]) == [0, 1]
    assert (first["proba.0"], first["proba.1"]) == (0.25, 0.75)
    refused = log[log["request_id"] == "c"].iloc[0]
    assert (refused["status"], refused["error"], refused["row_index"]) == ("422", "bad", 0)
    assert pd.isna(refused["feature.charges"]) and pd.isna(refused["prediction"])


def test_a_model_name_is_uri_encoded_and_its_window_holds_its_rows_only(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    _write(directory, [_record("a", 1, model="churn/eu model"), _record("b", 1, model="other")])
    assert (directory / "model=churn%2Feu%20model" / "date=2026-03-04").is_dir()
    assert list(read_window(directory, "churn/eu model")["request_id"]) == ["a"]
    assert list(read_window(directory, "other")["model_name"]) == ["other"]
    assert read_window(directory, "nobody").empty
    assert sorted(read_serving_log(directory)["request_id"]) == ["a", "b"]


def test_the_window_filters_time_versions_variants_and_keeps_the_newest_rows(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "log"
    at = [DAY + timedelta(hours=h) for h in range(4)]
    _write(
        directory,
        [
            _record("r0", 1, at=at[0]),
            _record("r1", 2, at=at[1], version="4", variant="challenger"),
            _record("r2", 1, at=at[2], variant="shadow", version="4"),
            _record("r3", 1, at=at[3]),
        ],
    )
    ids = lambda frame: list(frame["request_id"])  # noqa: E731
    assert ids(read_window(directory, "churn", start=at[1], end=at[3])) == ["r1", "r1", "r2"]
    # Naive bounds are UTC; strings work too.
    assert ids(read_window(directory, "churn", start=at[3].replace(tzinfo=None))) == ["r3"]
    assert ids(read_window(directory, "churn", end="2026-03-04T13:00:00+00:00")) == ["r0"]
    assert ids(read_window(directory, "churn", versions=["4"])) == ["r1", "r1", "r2"]
    assert ids(read_window(directory, "churn", variants=["shadow", "champion"])) == [
        "r0", "r2", "r3",
    ]  # fmt: skip
    newest = read_window(directory, "churn", last_n=3)
    assert list(zip(newest["request_id"], newest["row_index"], strict=True)) == [
        ("r1", 1), ("r2", 0), ("r3", 0),
    ]  # fmt: skip
    assert ids(read_window(directory, "churn", end=at[3], last_n=1)) == ["r2"]


def test_columns_are_projected_and_a_column_no_file_has_is_null(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    _write(directory, [_record("a", 2)])
    window = read_window(
        directory, "churn", columns=["request_id", "feature.charges", "feature.later"]
    )
    assert list(window.columns) == ["request_id", "feature.charges", "feature.later"]
    assert list(window["feature.charges"]) == [1.0, 2.0]
    assert window["feature.later"].isna().all()
    empty = read_window(directory, "churn", start=DAY + timedelta(days=9), columns=["status"])
    assert list(empty.columns) == ["status"] and empty.empty


def test_files_of_versions_with_different_features_are_unified(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    later = _record("v4", 1, version="4", at=DAY + timedelta(minutes=1))
    assert later.features is not None
    later.features["region"] = np.array(["north"], dtype=object)
    later.input_schema = InputSchema((*SCHEMA.columns, ColumnSpec("region", "string")))
    _write(directory, [_record("v3", 1), later])
    window = read_window(directory, "churn")
    assert list(window["request_id"]) == ["v3", "v4"]
    assert window["feature.region"].isna().tolist() == [True, False]
    assert window["feature.region"].iloc[1] == "north"
    assert list(window.columns[: len(COLUMNS)]) == list(COLUMNS)


def test_feature_and_probability_frames_strip_their_prefixes(tmp_path: Path) -> None:
    from prefect_mlops.serving.log import feature_frame, probability_frame

    directory = tmp_path / "log"
    _write(directory, [_record("a", 2)])
    window = read_window(directory, "churn")
    assert list(feature_frame(window).columns) == ["tenure", "charges", "contract", "vip"]
    proba = probability_frame(window)
    assert proba is not None and list(proba.columns) == ["0", "1"]
    assert probability_frame(window.drop(columns=["proba.0", "proba.1"])) is None


def test_an_unreadable_file_is_named_and_skipped_and_days_outside_the_range_are_not_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "log"
    _write(directory, [_record("a", 1), _record("b", 1, at=DAY + timedelta(days=1))])
    bad = directory / "model=churn" / "date=2026-03-05" / "part-corrupt.parquet"
    bad.write_bytes(b"not parquet at all")
    skipped: list[tuple[str, str]] = []
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.serving.log"):
        window = read_window(directory, "churn", on_skip=lambda p, r: skipped.append((p, r)))
    assert list(window["request_id"]) == ["a", "b"]
    assert [Path(p).name for p, _ in skipped] == ["part-corrupt.parquet"]
    assert "magic bytes" in skipped[0][1]
    assert "part-corrupt.parquet" in caplog.text
    skipped.clear()
    only_first = read_window(
        directory,
        "churn",
        end=DAY + timedelta(hours=1),
        on_skip=lambda p, r: skipped.append((p, r)),
    )
    assert list(only_first["request_id"]) == ["a"] and skipped == []


def test_an_empty_log_reads_as_the_common_columns(tmp_path: Path) -> None:
    for frame in (read_window(tmp_path / "none", "churn"), read_serving_log(tmp_path / "none")):
        assert list(frame.columns) == list(COLUMNS) and frame.empty


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"last_n": 0}, "last_n"), ({"last_n": 1.5}, "last_n"), ({"start": "soon"}, "start"),
     ({"end": "nat"}, "end")],
)  # fmt: skip
def test_bad_window_arguments_are_named(tmp_path: Path, kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"read_window: {field} "):
        read_window(tmp_path, "churn", **kwargs)


def _legacy_file(
    directory: Path, records: list[RequestRecord], name: str = "part-old", *, ids: bool = True
) -> None:
    """A file as the earlier writer wrote it: its ``rows()`` (features, prediction and
    probabilities as JSON) in its schema, under ``<dir>/date=YYYY-MM-DD/``."""
    rows = []
    for r in records:
        base = r.common()
        if r.features is None or r.predictions is None:
            rows.append({**base, "row_index": 0, "features": None, "prediction": None,
                         "probabilities": None})  # fmt: skip
            continue
        lines = r.features.to_json(orient="records", lines=True, date_format="iso").splitlines()
        probs = r.probabilities
        rows += [
            {**base, "row_index": i, "features": lines[i],
             "prediction": json.dumps(r.predictions[i]),
             "probabilities": json.dumps(probs[i]) if probs is not None else None}
            for i in range(len(r.predictions))
        ]  # fmt: skip
    string = pa.string()
    types = {"timestamp": pa.timestamp("us", tz="UTC"), "row_index": pa.int64(),
             "latency_ms": pa.float64()}  # fmt: skip
    schema = pa.schema([(c, types.get(c, string)) for c in LEGACY_COLUMNS])
    frame = pd.DataFrame.from_records(rows, columns=list(LEGACY_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    path = directory / f"date={records[0].timestamp:%Y-%m-%d}" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not ids:  # a file from before client_request_id existed
        frame, schema = frame.drop(columns="client_request_id"), schema.remove(1)
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def test_legacy_files_are_read_in_the_typed_shape(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    early = DAY - timedelta(hours=1)
    _legacy_file(
        directory,
        [_record("old", 2, at=early), _refused("old-bad", at=early),
         _record("elsewhere", 1, at=early, model="other")],
    )  # fmt: skip
    _write(directory, [_record("new", 1)])
    window = read_window(directory, "churn", classes=["no", "yes"])
    assert list(window["request_id"]) == ["old", "old", "old-bad", "new"]
    assert list(window["model_name"].unique()) == ["churn"]
    old = window.iloc[1]
    assert (old["feature.tenure"], old["feature.contract"], old["prediction"]) == (1, "a", 1)
    assert (old["proba.no"], old["proba.yes"]) == (0.25, 0.75)
    assert pd.isna(window.iloc[0]["feature.tenure"])
    assert pd.isna(window.iloc[2]["prediction"]) and window.iloc[2]["status"] == "422"
    # The typed file names its classes itself; the legacy rows' are positional without classes.
    plain = read_window(directory, "churn", columns=["request_id", "proba.0", "proba.1"])
    assert plain["proba.1"].iloc[[0, 1, 3]].tolist() == [0.75, 0.75, 0.75]
    assert pd.isna(plain["proba.1"].iloc[2])
    assert list(read_window(directory, "churn", end=DAY)["request_id"]) == ["old", "old", "old-bad"]
    everything = read_serving_log(directory)
    assert sorted(everything["request_id"].unique()) == ["elsewhere", "new", "old", "old-bad"]
    assert list(everything.columns[: len(COLUMNS)]) == list(COLUMNS)


def test_a_corrupt_legacy_file_is_skipped_by_name(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    _legacy_file(directory, [_record("old", 1)], ids=False)
    (directory / "date=2026-03-04" / "part-broken.parquet").write_bytes(b"PAR1 truncated")
    skipped: list[str] = []
    window = read_window(directory, "churn", on_skip=lambda path, _: skipped.append(path))
    assert list(window["request_id"]) == ["old"]
    assert window["client_request_id"].isna().all()
    assert [Path(p).name for p in skipped] == ["part-broken.parquet"]


def test_the_sql_sink_writes_a_typed_table_per_model_and_adds_later_columns(
    tmp_path: Path,
) -> None:
    from sqlalchemy import create_engine, inspect

    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = create_engine(url)
    legacy = pd.DataFrame({"request_id": ["legacy"], "features": ['{"tenure": 1}']})
    legacy.to_sql("serving_log", engine, index=False)  # an earlier version's table
    _write(tmp_path / "pq", [_record("a", 2), _refused("b")], url)
    later = _record("c", 1, version="4")
    assert later.features is not None
    later.features["region"] = np.array(["north"], dtype=object)
    later.input_schema = InputSchema((*SCHEMA.columns, ColumnSpec("region", "string")))
    _write(tmp_path / "pq", [later, _record("d", 1, model="churn/eu")], url)

    name = sql_table_name("churn")
    assert name == "serving_log__churn"
    types = {c["name"]: str(c["type"]) for c in inspect(engine).get_columns(name)}
    assert (types["feature.tenure"], types["feature.charges"]) == ("BIGINT", "DOUBLE")
    assert (types["prediction"], types["proba.1"], types["feature.region"]) == (
        "BIGINT", "DOUBLE", "TEXT",
    )  # fmt: skip
    table = pd.read_sql(f'SELECT * FROM "{name}" ORDER BY request_id, row_index', engine)
    assert list(table["request_id"]) == ["a", "a", "b", "c"]
    assert table["feature.region"].tolist()[-1] == "north"
    assert pd.isna(table["prediction"].iloc[2])
    other = sql_table_name("churn/eu")
    assert other.startswith("serving_log__churn_eu_") and other != sql_table_name("churn_eu")
    assert pd.read_sql(f'SELECT request_id FROM "{other}"', engine)["request_id"].tolist() == ["d"]
    assert pd.read_sql("SELECT * FROM serving_log", engine).equals(legacy)  # left as it was


def test_the_sql_sink_on_postgresql(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        engine.connect().close()
    except OperationalError:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    model = f"log-test-{tmp_path.name}"
    name = sql_table_name(model)
    try:
        _write(tmp_path / "pq", [_record("a", 2, model=model), _refused("b", model=model)], url)
        table = pd.read_sql(f'SELECT * FROM "{name}" ORDER BY request_id, row_index', engine)
        assert list(table["request_id"]) == ["a", "a", "b"]
        assert table["feature.tenure"].iloc[1] == 1 and table["proba.1"].iloc[0] == 0.75
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


def test_failing_sink_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder should be")
    writer = ServingLogWriter(blocker / "log", "sqlite:////nonexistent/dir/log.db")
    writer.log([_record("a", 2)])  # must not raise
    writer.close()
    assert writer.stats.failures == 2
    assert writer.stats.written_rows == 0
    assert "sql" in (writer.stats.last_error or "")


def test_dict_rows_with_a_column_outside_the_layout_are_counted_not_written(
    tmp_path: Path,
) -> None:
    writer = ServingLogWriter(tmp_path / "log")
    row = {"request_id": "x", "timestamp": DAY, "model_name": "churn", "model_version": "1",
           "variant": "champion", "row_index": 0, "latency_ms": 1.0, "status": "ok"}  # fmt: skip
    writer.log([{**row, "features": "{}"}, {**row, "request_id": "y", "prediction": "1"}])
    writer.close()
    assert writer.stats.failures == 1 and "'features'" in (writer.stats.last_error or "")
    assert list(read_window(tmp_path / "log", "churn")["request_id"]) == []
    writer = ServingLogWriter(tmp_path / "log")
    writer.log([{**row, "request_id": "y", "prediction": "1", f"{FEATURE_PREFIX}x": 2.0}])
    writer.close()
    window = read_window(tmp_path / "log", "churn")
    assert (window["prediction"].tolist(), window["feature.x"].tolist()) == (["1"], [2.0])
    assert not any(c.startswith(PROBA_PREFIX) for c in window.columns)


def test_client_request_id_is_logged(tmp_path: Path) -> None:
    record = _record("new", 1)
    record.client_request_id = "order 42"
    _write(tmp_path / "log", [record])
    assert read_window(tmp_path / "log", "churn")["client_request_id"].tolist() == ["order 42"]


def test_small_and_large_requests_give_the_same_typed_columns(tmp_path: Path) -> None:
    from prefect_mlops.serving.log import SMALL_FRAME_ROWS

    big = _record("big", SMALL_FRAME_ROWS + 4)  # stacked by pd.concat
    assert big.features is not None
    small = [
        _record(f"s{i}", 1) for i in range(3)
    ]  # stacked as object arrays, one with missing values
    for i, record in enumerate(small):
        assert record.features is not None
        record.features = big.features.iloc[[i]].reset_index(drop=True)
    _write(tmp_path / "big", [big])
    _write(tmp_path / "small", small)
    (big_file,) = (tmp_path / "big").rglob("part-*.parquet")
    (small_file,) = (tmp_path / "small").rglob("part-*.parquet")
    assert pq.read_schema(big_file) == pq.read_schema(small_file)
    features = [c for c in pq.read_schema(big_file).names if c.startswith(FEATURE_PREFIX)]
    got = read_window(tmp_path / "small", "churn")[features]
    expected = read_window(tmp_path / "big", "churn")[features].head(3)
    pd.testing.assert_frame_equal(got, expected)


def test_last_n_reads_only_the_newest_days_it_needs(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    days = [DAY + timedelta(days=d) for d in range(3)]
    _write(directory, [_record("d0", 1, at=days[0]), _record("d1", 2, at=days[1]),
                       _record("d2", 1, at=days[2])])  # fmt: skip
    (directory / "model=churn" / "date=2026-03-04" / "part-corrupt.parquet").write_bytes(b"x")
    skipped: list[str] = []
    newest = read_window(directory, "churn", last_n=3, on_skip=lambda p, _: skipped.append(p))
    assert list(newest["request_id"]) == ["d1", "d1", "d2"] and skipped == []
    everything = read_window(directory, "churn", last_n=9, on_skip=lambda p, _: skipped.append(p))
    assert list(everything["request_id"]) == ["d0", "d1", "d1", "d2"]
    assert [Path(p).name for p in skipped] == ["part-corrupt.parquet"]


def test_string_classes_name_their_columns_and_a_regressor_logs_floats_only(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "log"
    labelled = _record("cls", 2, model="plans")
    labelled.predictions, labelled.classes = ["basic", "premium"], ["basic", "plus", "premium"]
    labelled.probabilities = [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]
    regressor = _record("reg", 2, model="charges")
    regressor.predictions, regressor.probabilities, regressor.classes = [1.5, 2.5], None, None
    _write(directory, [labelled, regressor])
    plans = read_window(directory, "plans")
    assert plans["prediction"].tolist() == ["basic", "premium"]
    assert [c for c in plans if c.startswith(PROBA_PREFIX)] == [
        "proba.basic", "proba.plus", "proba.premium",
    ]  # fmt: skip
    assert plans["proba.premium"].tolist() == [0.1, 0.7]
    charges = read_window(directory, "charges")
    assert charges["prediction"].dtype == "float64" and charges["prediction"].tolist() == [1.5, 2.5]
    assert not any(c.startswith(PROBA_PREFIX) for c in charges)


def test_an_unordered_read_has_the_same_rows_and_last_n_keeps_its_order(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    days = [DAY + timedelta(days=d) for d in range(3)]
    _write(directory, [_record("d2", 1, at=days[2]), _record("d0", 2, at=days[0]),
                       _record("d1", 1, at=days[1])])  # fmt: skip
    ordered = read_window(directory, "churn")
    unordered = read_window(directory, "churn", ordered=False)
    key = ["request_id", "row_index"]
    assert list(ordered["request_id"]) == ["d0", "d0", "d1", "d2"]
    pd.testing.assert_frame_equal(
        unordered.sort_values(key).reset_index(drop=True),
        ordered.sort_values(key).reset_index(drop=True),
    )
    newest = read_window(directory, "churn", ordered=False, last_n=2)
    assert list(newest["request_id"]) == ["d1", "d2"]  # the newest need the order: kept
