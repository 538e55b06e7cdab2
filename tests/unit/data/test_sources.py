"""Tests of ingest (CSV, Parquet, SQL; whole and in chunks), time filters, digests and snapshots."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from prefect_mlops.config import DataSource
from prefect_mlops.data.snapshots import (
    SnapshotRef,
    frame_digest,
    read_snapshot,
    row_hashes,
    verify_snapshot,
    write_snapshot,
)
from prefect_mlops.data.sources import (
    iter_tables,
    known_row_count,
    normalize_missing,
    read_as_dictionary,
    read_table,
    resolve_format,
)
from prefect_mlops.data.time_window import apply_time_filter
from prefect_mlops.errors import DataIngestError, MLOpsError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "ts": pd.to_datetime(
                ["2025-01-01 00:00", "2025-01-15 12:00", "2025-02-01 00:00", "2025-03-01 08:30"]
            ),
            "x": [1.5, np.nan, 3.0, 4.25],
            "n": [1, 2, 3, 4],
            "cat": ["red", None, "blue", "red"],
            "y": [0, 1, 0, 1],
        }
    )


def _from_csv() -> pd.DataFrame:
    """``_frame()`` as a CSV reads back: the missing category is NaN, not None."""
    df = _frame()
    df.loc[1, "cat"] = np.nan
    return df


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    _frame().to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- read_table


def test_read_csv_parses_timestamp(csv_file: Path) -> None:
    df = read_table(DataSource(path=str(csv_file), timestamp_column="ts"))
    pd.testing.assert_frame_equal(df, _from_csv())


def test_read_csv_without_timestamp_column_keeps_strings(csv_file: Path) -> None:
    df = read_table(DataSource(path=str(csv_file)))
    assert df["ts"].dtype == object
    assert len(df) == 4


def test_read_tsv_and_compressed_csv(tmp_path: Path) -> None:
    tsv = tmp_path / "table.tsv"
    _frame().to_csv(tsv, index=False, sep="\t")
    gz = tmp_path / "table.csv.gz"
    _frame().to_csv(gz, index=False)
    for path in (tsv, gz):
        df = read_table(DataSource(path=str(path), timestamp_column="ts"))
        pd.testing.assert_frame_equal(df, _from_csv())


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_read_parquet(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"table{suffix}"
    _frame().to_parquet(path, index=False)
    df = read_table(DataSource(path=str(path), timestamp_column="ts"))
    pd.testing.assert_frame_equal(df, normalize_missing(_frame()))


def test_missing_text_reads_as_nan_from_csv_parquet_sql_and_snapshots(tmp_path: Path) -> None:
    # Parquet and SQL give None, CSV gives NaN; models must see one of them (NaN) everywhere.
    frame = pd.DataFrame({"region": ["north", None, "east"], "x": [1.0, None, 3.0]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    url = f"sqlite:///{tmp_path / 't.db'}"
    frame.to_sql("t", create_engine(url), index=False)
    sources = [
        DataSource(path=str(tmp_path / "t.csv")),
        DataSource(path=str(tmp_path / "t.parquet")),
        DataSource(sql_url=url, query="select * from t"),
    ]
    for source in sources:
        region = read_table(source)["region"]
        assert region.iloc[1] is not None and np.isnan(region.iloc[1]), source.describe()
    ref = write_snapshot(frame, tmp_path / "snaps", source="test")
    region = read_snapshot(ref.path)["region"]
    assert region.iloc[1] is not None and np.isnan(region.iloc[1])


def test_read_file_uri_and_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "table.data"
    _frame().to_parquet(path, index=False)
    df = read_table(DataSource(path=path.as_uri(), format="parquet"))
    pd.testing.assert_frame_equal(df, normalize_missing(_frame()))


def test_read_time_window(csv_file: Path) -> None:
    source = DataSource(
        path=str(csv_file),
        timestamp_column="ts",
        since=datetime(2025, 1, 15, 12),
        until=datetime(2025, 3, 1, 8, 30),
    )
    df = read_table(source)
    assert df["id"].tolist() == ["b", "c"]  # since inclusive, until exclusive
    assert df.index.tolist() == [0, 1]


def test_read_mixed_offsets_become_utc(tmp_path: Path) -> None:
    path = tmp_path / "tz.csv"
    path.write_text("ts,v\n2025-01-01T00:00:00+01:00,1\n2025-01-01T00:00:00-05:00,2\n")
    df = read_table(DataSource(path=str(path), timestamp_column="ts"))
    assert str(df["ts"].dt.tz) == "UTC"
    assert df["ts"].tolist() == [
        pd.Timestamp("2024-12-31T23:00:00Z"),
        pd.Timestamp("2025-01-01T05:00:00Z"),
    ]


def test_read_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    engine = create_engine(f"sqlite:///{db}")
    _frame().to_sql("events", engine, index=False)
    engine.dispose()
    source = DataSource(
        sql_url=f"sqlite:///{db}",
        query="SELECT * FROM events WHERE n >= 2 ORDER BY n",
        timestamp_column="ts",
        since=datetime(2025, 1, 1),
        until=datetime(2025, 2, 15),
    )
    df = read_table(source)
    assert df["id"].tolist() == ["b", "c"]
    assert pd.api.types.is_datetime64_any_dtype(df["ts"])


# --------------------------------------------------------------------------- read errors


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


BAD_FILES = {
    "missing": ("nope.csv", None, r"nope\.csv does not exist"),
    "zero bytes": ("empty.csv", b"", r"empty\.csv .*has no rows"),
    "header only": ("header.csv", b"a,b,c\n", r"header\.csv has no rows"),
    "parquet with no rows": (
        "none.parquet",
        _parquet_bytes(_frame().iloc[:0]),
        r"none\.parquet has no rows",
    ),
    "garbage parquet": (
        "garbage.parquet",
        os.urandom(256),
        r"garbage\.parquet is not a readable Parquet",
    ),
    "parquet named csv": (
        "binary.csv",
        _parquet_bytes(_frame()),
        r"binary\.csv is not a readable CSV",
    ),
    "ragged csv": ("ragged.csv", b"a,b\n1,2\n3,4,5,6\n", r"ragged\.csv is not a readable CSV"),
    "unknown extension": ("table.xlsx", b"PK", r"table\.xlsx has an unknown extension '\.xlsx'"),
}


@pytest.mark.parametrize("whole", [True, False], ids=["read_table", "iter_tables"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_named_alike_whole_or_in_chunks(
    tmp_path: Path, case: str, whole: bool
) -> None:
    name, content, message = BAD_FILES[case]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    source = DataSource(path=str(path))
    with pytest.raises(DataIngestError, match=message):
        if whole:
            read_table(source)
        else:
            list(iter_tables(source, chunk_size=2))


def test_resolve_format() -> None:
    assert resolve_format("a/b.CSV") == "csv"
    assert resolve_format("a/b.txt") == "csv"
    assert resolve_format("s3://bucket/b.pq") == "parquet"
    assert resolve_format("whatever", "parquet") == "parquet"
    with pytest.raises(DataIngestError, match="no_suffix"):
        resolve_format("dir/no_suffix")


def test_sql_failure_hides_password(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    source = DataSource(sql_url=f"sqlite:///{db}", query="SELECT * FROM missing_table")
    with pytest.raises(
        DataIngestError, match=r"SQL query failed on sqlite:///.*x\.db.*missing_table"
    ):
        read_table(source)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"sql_url": "nosuchdb://user@host/db", "password_env": "TEST_DB_PASSWORD"}, "user@host"),
        ({"sql_url_env": "TEST_DB_URL"}, "user:***@host"),
    ],
)
def test_sql_bad_driver_names_url_without_password(
    data: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DB_PASSWORD", "s3cret")
    monkeypatch.setenv("TEST_DB_URL", "nosuchdb://user:s3cret@host/db?sslpassword=s3cret")
    source = DataSource(**data, query="SELECT 1")
    with pytest.raises(DataIngestError, match=re.escape(f"nosuchdb://{named}/db")) as info:
        read_table(source)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in str(info.value.__cause__)  # chained only when it shows no secret


def test_sql_no_rows(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    engine = create_engine(f"sqlite:///{db}")
    _frame().to_sql("events", engine, index=False)
    engine.dispose()
    source = DataSource(sql_url=f"sqlite:///{db}", query="SELECT * FROM events WHERE n > 99")
    with pytest.raises(DataIngestError, match=r"x\.db.*has no rows"):
        read_table(source)


def test_timestamp_column_missing(csv_file: Path) -> None:
    with pytest.raises(DataIngestError, match=r"timestamp column 'when' is not in .*table\.csv"):
        read_table(DataSource(path=str(csv_file), timestamp_column="when"))


@pytest.mark.parametrize("whole", [True, False], ids=["read_table", "iter_tables"])
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad_ts.csv",
            "ts,v\n2025-01-01,1\nyesterday-ish,2\n",
            r"bad_ts\.csv cannot be parsed.*yesterday",
        ),
        ("num_ts.csv", "ts,v\n1,1\n2,2\n", r"num_ts\.csv holds int64"),
    ],
)
def test_bad_timestamps_are_named(
    tmp_path: Path, name: str, content: str, message: str, whole: bool
) -> None:
    path = tmp_path / name
    path.write_text(content)
    # A chunked read parses the timestamp column only for a time window.
    source = DataSource(path=str(path), timestamp_column="ts", until=datetime(2100, 1, 1))
    with pytest.raises(DataIngestError, match=rf"timestamp column 'ts' in .*{message}"):
        if whole:
            read_table(source.model_copy(update={"until": None}))
        else:
            list(iter_tables(source, chunk_size=1))


def test_filter_leaves_no_rows(csv_file: Path) -> None:
    source = DataSource(path=str(csv_file), timestamp_column="ts", since=datetime(2030, 1, 1))
    with pytest.raises(DataIngestError, match=r"no rows of data file .*table\.csv have 'ts'"):
        read_table(source)


def test_errors_are_mlops_errors() -> None:
    assert issubclass(DataIngestError, MLOpsError)


# --------------------------------------------------------------------------- apply_time_filter


def test_time_filter_aware_column_naive_bound() -> None:
    df = pd.DataFrame({"ts": pd.to_datetime(["2025-01-01T10:00Z", "2025-01-02T10:00Z"])})
    out = apply_time_filter(df, "ts", datetime(2025, 1, 2), None)
    assert len(out) == 1


def test_time_filter_naive_column_aware_bound() -> None:
    df = pd.DataFrame({"ts": pd.to_datetime(["2025-01-01 10:00", "2025-01-02 10:00"])})
    out = apply_time_filter(df, "ts", None, datetime(2025, 1, 2, 10, tzinfo=UTC))
    assert out["ts"].tolist() == [pd.Timestamp("2025-01-01 10:00")]


def test_time_filter_drops_missing_timestamps_and_passes_through() -> None:
    df = pd.DataFrame({"ts": pd.to_datetime(["2025-01-01", None, "2025-02-01"])})
    assert apply_time_filter(df, "ts", None, None) is df
    assert len(apply_time_filter(df, "ts", datetime(2024, 1, 1), None)) == 2


def test_time_filter_needs_datetimes() -> None:
    df = pd.DataFrame({"ts": ["2025-01-01"]})
    with pytest.raises(DataIngestError, match=r"'ts'.*not datetime"):
        apply_time_filter(df, "ts", datetime(2024, 1, 1), None)


# --------------------------------------------------------------------------- iter_tables


def _sources(tmp_path: Path, frame: pd.DataFrame) -> list[DataSource]:
    """``frame`` as a CSV file, a Parquet file and a SQLite query."""
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    url = f"sqlite:///{tmp_path / 't.db'}"
    engine = create_engine(url)
    frame.to_sql("t", engine, index=False)
    engine.dispose()
    return [
        DataSource(path=str(tmp_path / "t.csv")),
        DataSource(path=str(tmp_path / "t.parquet")),
        DataSource(sql_url=url, query="SELECT * FROM t ORDER BY n"),
    ]


def test_iter_tables_streams_chunks_of_the_columns_asked_for(tmp_path: Path) -> None:
    import pyarrow as pa

    for source in _sources(tmp_path, _frame()):
        tables = list(iter_tables(source, chunk_size=3, columns=["n", "cat"]))
        assert [t.num_rows for t in tables] == [3, 1], source.describe()
        whole = pa.concat_tables(tables)
        assert whole.column_names == ["n", "cat"]
        assert whole["n"].to_pylist() == [1, 2, 3, 4]
        assert whole["cat"].to_pylist() == ["red", None, "blue", "red"]


def test_iter_tables_applies_the_window_like_read_table(tmp_path: Path) -> None:
    window = {"timestamp_column": "ts", "since": datetime(2025, 1, 15, 12)}
    for plain in _sources(tmp_path, _frame()):
        source = plain.model_copy(update=window)
        tables = list(iter_tables(source, chunk_size=2, columns=["id"]))
        # The window column comes along (as read); a chunk may be left empty.
        assert all(t.column_names == ["id", "ts"] for t in tables)
        kept = [i for t in tables for i in t["id"].to_pylist()]
        assert kept == read_table(source)["id"].tolist() == ["b", "c", "d"], source.describe()
        late = plain.model_copy(update={**window, "since": datetime(2030, 1, 1)})
        with pytest.raises(DataIngestError, match=r"no rows of .* have 'ts' .*widen"):
            list(iter_tables(late, chunk_size=2, columns=["id"]))


def test_iter_tables_checks_the_header_before_any_row(tmp_path: Path) -> None:
    seen: list[list[str]] = []
    for source in _sources(tmp_path, _frame()):
        chunks = iter_tables(source, chunk_size=2, columns=["id"], check_header=seen.append)
        next(chunks)
        assert seen[-1] == list(_frame().columns)
        missing = source.model_copy(update={"timestamp_column": "when", "until": datetime.now()})
        with pytest.raises(DataIngestError, match=r"timestamp column 'when' is not in"):
            next(iter_tables(missing, chunk_size=2, columns=["id"]))
        with pytest.raises(DataIngestError, match=r"lacks the column\(s\) \['nope'\]"):
            next(iter_tables(source, chunk_size=2, columns=["nope"]))


def test_iter_tables_reads_parquet_text_dictionary_encoded_when_asked(tmp_path: Path) -> None:
    import pyarrow as pa

    parquet = _sources(tmp_path, _frame())[1]
    (table,) = iter_tables(parquet, chunk_size=10, dictionary_columns=["cat", "n"])
    assert pa.types.is_dictionary(table.schema.field("cat").type)
    assert pa.types.is_string(table.schema.field("id").type)
    assert read_as_dictionary(table) == {"cat"}  # n is no text: read as it is
    (plain,) = iter_tables(parquet, chunk_size=10)
    assert read_as_dictionary(plain) == set()


def test_iter_tables_errors_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(DataIngestError, match="local files only"):
        list(iter_tables(DataSource(path="s3://bucket/t.parquet"), chunk_size=5))
    sql = DataSource(sql_url=f"sqlite:///{tmp_path / 'x.db'}", query="SELECT * FROM missing")
    with pytest.raises(DataIngestError, match=r"SQL query failed on sqlite:///.*missing"):
        list(iter_tables(sql, chunk_size=5))
    engine = create_engine(str(sql.sql_url))
    _frame().to_sql("events", engine, index=False)
    engine.dispose()
    empty = sql.model_copy(update={"query": "SELECT * FROM events WHERE n > 99"})
    with pytest.raises(DataIngestError, match=r"x\.db.*has no rows"):
        list(iter_tables(empty, chunk_size=5))


def test_known_row_count(tmp_path: Path) -> None:
    csv, parquet, sql = _sources(tmp_path, _frame())
    assert known_row_count(parquet) == 4
    assert known_row_count(csv) is None and known_row_count(sql) is None
    windowed = parquet.model_copy(update={"timestamp_column": "ts", "since": datetime(2025, 2, 1)})
    assert known_row_count(windowed) is None
    assert known_row_count(DataSource(path=str(tmp_path / "nope.parquet"))) is None


# --------------------------------------------------------------------------- digests


def test_frame_digest_stable_and_sensitive() -> None:
    a, b = _frame(), _frame()
    assert frame_digest(a) == frame_digest(b)
    assert len(frame_digest(a)) == 64
    b.loc[2, "x"] = 3.0001
    assert frame_digest(a) != frame_digest(b)
    renamed = a.rename(columns={"x": "z"})
    assert frame_digest(a) != frame_digest(renamed)
    assert frame_digest(a) != frame_digest(a.astype({"n": "float64"}))
    assert frame_digest(a) == frame_digest(a.set_index(pd.Index([9, 8, 7, 6])))
    assert frame_digest(a) != frame_digest(a.iloc[::-1])


def test_row_hashes() -> None:
    df = pd.concat([_frame(), _frame().iloc[[0]]], ignore_index=True)
    hashes = row_hashes(df)
    assert hashes.dtype == np.uint64
    assert len(hashes) == 5
    assert hashes.iloc[0] == hashes.iloc[4]
    assert hashes.iloc[:4].is_unique


# --------------------------------------------------------------------------- snapshots


def _rich_frame() -> pd.DataFrame:
    df = _frame()
    df["tz_ts"] = df["ts"].dt.tz_localize("UTC")
    df["flag"] = [True, False, True, False]
    df["as_category"] = pd.Categorical(["x", "y", "x", None])
    return df.set_index(pd.Index([10, 11, 12, 13]))


def test_snapshot_roundtrip_keeps_digest(tmp_path: Path) -> None:
    df = _rich_frame()
    before = frame_digest(df)
    ref = write_snapshot(df, tmp_path / "snaps", source="table.csv")
    assert isinstance(ref, SnapshotRef)
    assert ref.digest == before
    assert ref.path == str((tmp_path / "snaps" / f"{before}.parquet").resolve())
    assert (ref.n_rows, ref.n_columns, ref.source) == (4, 9, "table.csv")
    back = read_snapshot(ref.path)
    pd.testing.assert_frame_equal(back, normalize_missing(df.reset_index(drop=True)))
    assert frame_digest(back) == before
    assert verify_snapshot(ref.path) == before
    assert ref.to_dict() == {
        "digest": before,
        "path": ref.path,
        "n_rows": 4,
        "n_columns": 9,
        "source": "table.csv",
    }


def test_snapshot_of_demo_data_keeps_digest(tmp_path: Path) -> None:
    from prefect_mlops.data.demo import generate_churn

    df = generate_churn(2000, seed=5, corruption="null_burst")
    ref = write_snapshot(df, tmp_path, source="demo")
    assert ref.digest == frame_digest(df) == frame_digest(read_snapshot(ref.path))


def test_snapshot_is_read_only_with_sidecar(tmp_path: Path) -> None:
    ref = write_snapshot(_frame(), tmp_path, source="src")
    mode = stat.S_IMODE(os.stat(ref.path).st_mode)
    assert mode == 0o444
    meta = json.loads(Path(ref.path).with_suffix(".json").read_text())
    assert meta["source"] == "src"
    assert meta["n_rows"] == 4
    assert meta["columns"] == list(_frame().columns)
    assert meta["dtypes"]["ts"] == "datetime64[ns]"
    assert datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{ref.digest}.parquet", f"{ref.digest}.json"]
    )


def test_snapshot_is_never_rewritten(tmp_path: Path) -> None:
    first = write_snapshot(_frame(), tmp_path, source="first")
    mtime = os.stat(first.path).st_mtime_ns
    sidecar = Path(first.path).with_suffix(".json").read_text()
    second = write_snapshot(_frame().set_index(pd.Index([5, 6, 7, 8])), tmp_path, source="again")
    assert second.path == first.path
    assert os.stat(first.path).st_mtime_ns == mtime
    assert Path(first.path).with_suffix(".json").read_text() == sidecar
    other = write_snapshot(_frame().iloc[:3], tmp_path, source="other")
    assert other.digest != first.digest
    assert len(list(tmp_path.glob("*.parquet"))) == 2


def test_verify_snapshot_detects_tampering(tmp_path: Path) -> None:
    ref = write_snapshot(_frame(), tmp_path, source="src")
    tampered = _frame()
    tampered.loc[0, "n"] = 100
    os.chmod(ref.path, 0o644)
    tampered.to_parquet(ref.path, index=False)
    with pytest.raises(DataIngestError, match=rf"{ref.digest}\.parquet does not match its name"):
        verify_snapshot(ref.path)


def test_read_snapshot_missing(tmp_path: Path) -> None:
    with pytest.raises(DataIngestError, match=r"snapshot .*abc\.parquet does not exist"):
        read_snapshot(tmp_path / "abc.parquet")


def test_read_snapshot_garbage(tmp_path: Path) -> None:
    path = tmp_path / "abc.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataIngestError, match=r"abc\.parquet is not a readable Parquet"):
        read_snapshot(path)


def test_snapshot_mixed_types_names_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"ok": [1, 2], "mixed": [1, "two"]})
    with pytest.raises(DataIngestError, match="column 'mixed'"):
        write_snapshot(df, tmp_path, source="src")
    assert list(tmp_path.iterdir()) == []


def test_snapshot_duplicate_columns(tmp_path: Path) -> None:
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataIngestError, match=r"duplicate column names \['a'\]"):
        write_snapshot(df, tmp_path, source="src")


def test_digest_of_large_frame_is_fast(tmp_path: Path) -> None:
    import time

    n = 1_000_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 100, n),
            "c": np.array(["x", "y", "z"], dtype=object)[rng.integers(0, 3, n)],
        }
    )
    started = time.perf_counter()
    frame_digest(df)
    assert time.perf_counter() - started < 3


def test_snapshot_digest_follows_the_file_when_dtypes_change(tmp_path: Path) -> None:
    df = pd.DataFrame({"o": pd.Series([1, 2, 3], dtype=object)})  # reads back as int64
    ref = write_snapshot(df, tmp_path, source="src")
    back = read_snapshot(ref.path)
    assert back["o"].dtype == np.int64
    assert ref.digest == frame_digest(back) != frame_digest(df)
    assert verify_snapshot(ref.path) == ref.digest
    assert [p.suffix for p in sorted(tmp_path.iterdir())] == [".json", ".parquet"]
