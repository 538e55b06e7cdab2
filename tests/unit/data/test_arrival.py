"""Counting the rows that arrived since the champion's snapshot, on tiny frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.config import DataSource
from prefect_mlops.data.arrival import ChampionData, count_new_rows, newest_timestamp
from prefect_mlops.data.snapshots import write_snapshot
from prefect_mlops.data.sources import read_table
from prefect_mlops.errors import DataIngestError
from prefect_mlops.registry import lineage


def _frame(n: int, start: str = "2026-01-01") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%dT%H:%M:%S"),
            "x": range(n),
        }
    )


def _csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def _champion(df: pd.DataFrame, tmp_path: Path, *, timestamp: str | None = "ts") -> ChampionData:
    """v3 trained on ``df`` read as training reads it (its snapshot under tmp_path)."""
    source = DataSource(path=str(_csv(df, tmp_path / "trained.csv")), timestamp_column=timestamp)
    snapshot = write_snapshot(read_table(source), tmp_path / "snapshots", "trained.csv")
    tags = {lineage.DATA_SNAPSHOT: snapshot.path, lineage.DATA_ROWS: str(snapshot.n_rows)}
    return ChampionData.from_tags("3", tags)


def test_rows_newer_than_the_snapshots_newest_timestamp_are_new(tmp_path: Path) -> None:
    full = _frame(10)
    champion = _champion(full.iloc[:6], tmp_path)
    source = DataSource(path=str(_csv(full, tmp_path / "now.csv")), timestamp_column="ts")
    count = count_new_rows(source, champion)
    assert (count.new_rows, count.basis, count.champion_version) == (4, "timestamp", "3")
    assert count.newest_trained == "2026-01-01T05:00:00"
    assert count.arrived(4) and not count.arrived(5)


def test_rows_rewritten_in_place_are_not_new_but_late_rows_are(tmp_path: Path) -> None:
    full = _frame(10)
    champion = _champion(full.iloc[:6], tmp_path)
    # the source lost two old rows and gained one: timestamps decide, not the row count
    now = pd.concat([full.iloc[2:6], full.iloc[9:]])
    source = DataSource(path=str(_csv(now, tmp_path / "now.csv")), timestamp_column="ts")
    assert count_new_rows(source, champion).new_rows == 1


def test_an_aware_source_compares_with_a_naive_snapshot_as_utc(tmp_path: Path) -> None:
    champion = _champion(_frame(6), tmp_path)
    later = _frame(3, start="2026-01-01T05:00:00")  # 05:00 (the newest trained), 06:00, 07:00
    later["ts"] = later["ts"] + "+00:00"
    source = DataSource(path=str(_csv(later, tmp_path / "now.csv")), timestamp_column="ts")
    assert count_new_rows(source, champion).new_rows == 2


def test_without_a_timestamp_column_the_row_counts_are_compared(tmp_path: Path) -> None:
    champion = _champion(_frame(6), tmp_path, timestamp=None)
    source = DataSource(path=str(_csv(_frame(10), tmp_path / "now.csv")))
    count = count_new_rows(source, champion)
    assert (count.new_rows, count.basis, count.source_rows, count.champion_rows) == (
        4,
        "row_count",
        10,
        6,
    )
    shrunk = DataSource(path=str(_csv(_frame(4), tmp_path / "fewer.csv")))
    assert count_new_rows(shrunk, champion).new_rows == 0


def test_a_parquet_source_is_counted_from_its_footer(tmp_path: Path) -> None:
    champion = _champion(_frame(6), tmp_path, timestamp=None)
    path = tmp_path / "now.parquet"
    _frame(9).to_parquet(path, index=False)
    assert count_new_rows(DataSource(path=str(path)), champion).new_rows == 3


def test_the_sources_time_window_applies_as_in_training(tmp_path: Path) -> None:
    champion = _champion(_frame(6), tmp_path)
    source = DataSource(
        path=str(_csv(_frame(10), tmp_path / "now.csv")),
        timestamp_column="ts",
        until=pd.Timestamp("2026-01-01T08:00:00").to_pydatetime(),
    )
    assert count_new_rows(source, champion).new_rows == 2  # 06:00 and 07:00


def test_a_gone_snapshot_falls_back_to_the_row_count(tmp_path: Path) -> None:
    champion = _champion(_frame(6), tmp_path)
    Path(str(champion.snapshot)).unlink()
    source = DataSource(path=str(_csv(_frame(10), tmp_path / "now.csv")), timestamp_column="ts")
    count = count_new_rows(source, champion)
    assert (count.new_rows, count.basis) == (4, "row_count")


def test_without_a_champion_every_row_is_new(tmp_path: Path) -> None:
    source = DataSource(path=str(_csv(_frame(7), tmp_path / "now.csv")), timestamp_column="ts")
    count = count_new_rows(source, None)
    assert (count.new_rows, count.basis, count.champion_version) == (7, "no_champion", None)


def test_a_champion_recording_neither_snapshot_nor_rows_is_named(tmp_path: Path) -> None:
    source = DataSource(path=str(_csv(_frame(7), tmp_path / "now.csv")))
    with pytest.raises(DataIngestError, match=r"champion v2 records no mlops\.data\.rows tag"):
        count_new_rows(source, ChampionData.from_tags("2", {}))


def test_a_rows_tag_that_is_not_a_number_is_named() -> None:
    with pytest.raises(DataIngestError, match=r"tag mlops\.data\.rows='many' is not a row count"):
        ChampionData.from_tags("2", {lineage.DATA_ROWS: "many"})


def test_a_source_without_the_timestamp_column_is_named(tmp_path: Path) -> None:
    champion = _champion(_frame(6), tmp_path)
    source = DataSource(
        path=str(_csv(_frame(3).drop(columns="ts"), tmp_path / "now.csv")), timestamp_column="ts"
    )
    with pytest.raises(DataIngestError, match=r"now\.csv lacks the column\(s\) \['ts'\]"):
        count_new_rows(source, champion)


def test_a_snapshot_without_the_timestamp_column_is_named(tmp_path: Path) -> None:
    champion = _champion(_frame(6), tmp_path, timestamp=None)
    snapshot = str(champion.snapshot)
    with pytest.raises(DataIngestError, match=r"has no timestamp column 'event_ts'"):
        newest_timestamp(snapshot, "event_ts")
