"""Predictions for one table: features as training saw them, row slices, OpenMP limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

from prefect_mlops.config import DataSource
from prefect_mlops.data.sources import mark_read_as_dictionary, normalize_missing, read_table
from prefect_mlops.scoring.chunks import iter_scoring_tables
from prefect_mlops.scoring.config import ScoringConfig
from prefect_mlops.scoring.predict import (
    concat_predictions,
    features_frame,
    predict_columns,
    row_slices,
)


def test_features_frame_is_what_training_reads() -> None:
    """Text (plain, dictionary-encoded, chunked, all missing) becomes object columns of str
    with NaN for missing, as read_table gives training; other columns convert as to_pandas
    does; None is left only where a non-text object column has nulls."""
    text = ["a", None, "b", "a", None]
    table = pa.table(
        {
            "plain": pa.array(text),
            "dictionary": pa.array(text).dictionary_encode(),
            "large": pa.array(text, pa.large_string()),
            "chunked": pa.chunked_array([text[:2], text[2:]]),
            "empty": pa.array([None] * 5, pa.string()),
            "number": pa.array([1, None, 3, 4, 5]),
            "flag": pa.array([True, False, True, False, True]),
        }
    )
    frame, may_have_missing = features_frame(table)
    # A dictionary column of the source stays categorical, as pandas reads it.
    assert isinstance(frame["dictionary"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(frame, normalize_missing(table.to_pandas()))
    assert not may_have_missing
    # One the reader encoded (named in the schema) is text again, as a plain read gives it.
    frame = features_frame(mark_read_as_dictionary(table, ["dictionary"]))[0]
    decoded = table.set_column(1, "dictionary", pa.array(text))
    pd.testing.assert_frame_equal(frame, normalize_missing(decoded.to_pandas()))
    for column in ("plain", "dictionary", "large", "chunked"):
        values = frame[column].tolist()
        assert frame[column].dtype == object and values[0] == "a", column
        assert all(isinstance(v, float) and np.isnan(v) for v in values[1::3]), column
    assert frame["empty"].dtype == object and all(np.isnan(v) for v in frame["empty"])
    with_none = pa.table({"flag": pa.array([True, None, False])})
    assert features_frame(with_none)[1]
    assert features_frame(pa.table({"t": pa.array([], pa.string())}))[0].shape == (0, 1)


def test_parquet_text_is_read_as_dictionary_and_given_back_as_text(tmp_path: Path) -> None:
    """Plain text features come dictionary-encoded from the reader, named in the schema, and
    features_frame gives them back as text; a categorical column of the file stays categorical
    (what pandas, and so training, reads); the id column keeps its plain type."""
    frame = pd.DataFrame(
        {
            "key": ["k1", "k2", "k3"],
            "city": ["x", None, "y"],
            "tier": pd.Categorical(["a", "b", None]),
            "n": [1.0, None, 3.0],
        }
    )
    path = tmp_path / "in.parquet"
    frame.to_parquet(path, index=False)
    config = ScoringConfig(
        model_name="m", data={"path": str(path)}, output_dir=str(tmp_path), id_column="key"
    )
    (chunk,) = iter_scoring_tables(config, ["city", "tier", "n"])
    assert pa.types.is_dictionary(chunk.table.schema.field("city").type)
    assert pa.types.is_string(chunk.table.schema.field("key").type)
    got, _ = features_frame(chunk.table.select(["city", "tier", "n"]))
    trained_on = read_table(DataSource(path=str(path)))  # what training reads
    pd.testing.assert_frame_equal(got, trained_on[["city", "tier", "n"]])
    assert got["city"].dtype == object and isinstance(got["tier"].dtype, pd.CategoricalDtype)


def test_row_slices_cover_the_table_in_order() -> None:
    table = pa.table({"x": list(range(10))})
    parts = row_slices(table, 3)
    assert [p.num_rows for p in parts] == [3, 3, 4]
    assert pa.concat_tables(parts).equals(table)
    assert [p.num_rows for p in row_slices(table.slice(0, 2), 4)] == [1, 1]
    assert row_slices(table.slice(0, 0), 2)[0].num_rows == 0


def test_predictions_of_slices_are_those_of_the_whole() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40), "b": rng.integers(0, 5, 40)})
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    whole = predict_columns(
        model, X, include_probabilities=True, feature_types={"b": "double"}, predict_threads=1
    )
    assert sorted(whole) == ["prediction", "proba_0", "proba_1"]
    assert (whole["prediction"] == model.predict(X)).all()
    parts = [predict_columns(model, X.iloc[:15]), predict_columns(model, X.iloc[15:])]
    assert (concat_predictions(parts)["prediction"] == whole["prediction"]).all()
