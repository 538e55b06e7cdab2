"""The late-label join: a labels table's keys, corrections and the errors naming its columns,
how a version's labels are scored, labels paired with served rows, and a labels file re-read
during a canary (a real CSV in tmp_path)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.deployment.labels import (
    LabelSpec,
    join_labels,
    prepare_labels,
    read_live_quality,
    resolve_label_spec,
)
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.errors import ConfigError, DataIngestError

JOINED = ["request_id", "row_index", "variant", "model_version", "prediction", "label"]


def _served(variant: str, version: str, predictions: list, *, rows_per_request: int = 1):
    """Answered serving-log rows: ``predictions`` in requests of ``rows_per_request`` rows."""
    return pd.DataFrame.from_records(
        [
            {
                "request_id": f"{variant}-{i // rows_per_request}",
                "row_index": i % rows_per_request,
                "variant": variant,
                "model_version": version,
                "prediction": value,
                "status": "ok",
                "latency_ms": 5.0,
            }
            for i, value in enumerate(predictions)
        ]
    )


def test_labels_keep_the_key_and_the_label_with_ids_as_text_and_whole_row_positions() -> None:
    raw = pd.DataFrame(
        {
            "request_id": [101, 102, 102],  # ids read from a file as numbers
            "row_index": ["0", "0", "1.0"],  # positions read as text
            "y": [1, 0, 1],
            "note": ["a", "b", "c"],
        }
    )
    labels = prepare_labels(raw, "y", "l.csv")
    assert list(labels.columns) == ["request_id", "label", "row_index"]
    assert labels.to_dict("records") == [
        {"request_id": "101", "label": 1, "row_index": 0},
        {"request_id": "102", "label": 0, "row_index": 0},
        {"request_id": "102", "label": 1, "row_index": 1},
    ]
    assert labels["row_index"].dtype == "int64"
    # Such labels pair with the service's text ids and integer row positions.
    log = pd.concat(
        [
            _served("challenger", "2", [1]).assign(request_id="101"),
            _served("challenger", "2", [1, 1], rows_per_request=2).assign(request_id="102"),
        ]
    )
    joined = join_labels(log, labels, "l.csv")
    assert joined[["request_id", "row_index", "label"]].to_dict("records") == [
        {"request_id": "101", "row_index": 0, "label": 1},
        {"request_id": "102", "row_index": 0, "label": 0},
        {"request_id": "102", "row_index": 1, "label": 1},
    ]


@pytest.mark.parametrize("position", ["1.5", "first", ""])
def test_a_row_index_that_is_not_a_whole_number_is_named(position: str) -> None:
    raw = pd.DataFrame({"request_id": ["a", "b"], "row_index": ["0", position], "y": [1, 0]})
    message = (
        r"labels l\.csv: column 'row_index' must hold whole numbers \(the row's position in its "
        rf"request\); found {re.escape(repr(position))}$"
    )
    with pytest.raises(DataIngestError, match=message):
        prepare_labels(raw, "y", "l.csv")


@pytest.mark.parametrize(("position", "shown"), [(1.5, "1.5"), (float("nan"), "an empty cell")])
def test_a_numeric_row_index_is_named_as_the_user_wrote_it(position: float, shown: str) -> None:
    """A CSV read by pandas gives floats: the message shows 1.5, not numpy's repr."""
    raw = pd.DataFrame({"request_id": ["a", "b"], "row_index": [0.0, position], "y": [1, 0]})
    with pytest.raises(DataIngestError, match=rf"found {re.escape(shown)}$"):
        prepare_labels(raw, "y", "l.csv")


def test_missing_columns_are_named_with_the_columns_the_table_has() -> None:
    with pytest.raises(
        DataIngestError,
        match=r"labels s3://b/l\.csv: missing column\(s\) \['request_id', 'y'\]; a labels table "
        r"needs `request_id` \(the id the service answered with\), the label column 'y' and, for "
        r"requests of several rows, `row_index`; its columns are \['id', 'truth'\]",
    ):
        prepare_labels(pd.DataFrame({"id": ["a"], "truth": [1]}), "y", "s3://b/l.csv")


def test_rows_without_a_label_or_id_are_ignored_and_the_last_correction_of_a_row_wins() -> None:
    raw = pd.DataFrame(
        {
            "request_id": ["a", "a", "a", "b", None, "c"],
            "row_index": [0, 1, 0, 0, 0, 0],
            "y": [0, 0, 1, 1, 1, None],
        }
    )
    labels = prepare_labels(raw, "y", "l.csv")
    # (a, 0) was corrected from 0 to 1; (a, 1) is another row of the same request.
    assert labels.to_dict("records") == [
        {"request_id": "a", "label": 0.0, "row_index": 1},
        {"request_id": "a", "label": 1.0, "row_index": 0},
        {"request_id": "b", "label": 1.0, "row_index": 0},
    ]
    assert labels.index.tolist() == [0, 1, 2]


def test_without_row_index_the_last_label_of_a_request_wins() -> None:
    raw = pd.DataFrame({"request_id": ["a", "b", "a"], "y": ["no", "yes", "yes"]})
    labels = prepare_labels(raw, "y", "l.csv")
    assert labels.to_dict("records") == [
        {"request_id": "b", "label": "yes"},
        {"request_id": "a", "label": "yes"},
    ]


def _spec(labels: pd.DataFrame, tags: dict[str, str], **kwargs: str | None) -> LabelSpec:
    args: dict[str, str | None] = {"label_column": None, "metric": None, **kwargs}
    return resolve_label_spec(labels, where="l.csv", version_tags=tags, **args)  # type: ignore[arg-type]


def test_the_version_task_tag_wins_over_what_the_labels_look_like() -> None:
    labels = pd.DataFrame({"request_id": ["a", "b"], "price": [0, 1]})  # looks like classes
    spec = _spec(labels, {"mlops.target": "price", "mlops.task": "regression"})
    assert spec == LabelSpec("l.csv", "price", "regression", "rmse", None)


@pytest.mark.parametrize(
    ("values", "task", "metric"),
    [([0.5, 1.7, 2.25], "regression", "rmse"), (["yes", "no"], "classification", "accuracy")],
)
def test_without_a_task_tag_the_task_is_inferred_from_the_labels(
    values: list, task: str, metric: str
) -> None:
    labels = pd.DataFrame({"request_id": [str(i) for i in range(len(values))], "y": values})
    tags = {"mlops.target": "y", "mlops.task": "unknown", f"mlops.metric.{metric}": "0.91"}
    assert _spec(labels, tags) == LabelSpec("l.csv", "y", task, metric, 0.91)


def test_without_a_task_tag_nor_labels_the_error_says_what_to_do() -> None:
    empty = pd.DataFrame({"request_id": ["a"], "y": [None]})
    with pytest.raises(
        ConfigError,
        match=r"labels l\.csv: the model version has no mlops\.task tag and the labels have no "
        "rows to infer it from; add labels or register the model with prefect-mlops",
    ):
        _spec(empty, {"mlops.target": "y"})


def test_a_label_spec_names_the_labels_in_its_errors() -> None:
    labels = pd.DataFrame({"request_id": ["a"], "y": [1]})
    with pytest.raises(
        ConfigError,
        match=r"labels l\.csv: set label_column \(the model version has no mlops\.target tag "
        r"naming its training target\)",
    ):
        _spec(labels, {"mlops.task": "classification"})
    with pytest.raises(DataIngestError, match=r"labels l\.csv: missing column\(s\) \['churned'\]"):
        _spec(labels, {"mlops.task": "classification"}, label_column="churned")
    explicit = _spec(
        labels, {"mlops.target": "other", "mlops.task": "classification"}, label_column="y"
    )
    assert (explicit.label_column, explicit.metric) == ("y", "accuracy")


def test_nothing_to_join_gives_an_empty_frame_of_the_joined_columns() -> None:
    labels = prepare_labels(pd.DataFrame({"request_id": ["a"], "y": [1]}), "y", "l.csv")
    for log, table in [(pd.DataFrame(), labels), (_served("challenger", "2", [1]), labels.head(0))]:
        joined = join_labels(log, table, "l.csv")
        assert joined.empty and list(joined.columns) == JOINED


def test_the_join_keeps_typed_predictions_and_answered_labelled_rows_only() -> None:
    log = _served("champion", "1", [0.5, 2.5, 4.0])
    log.loc[2, "status"] = "500"
    labels = prepare_labels(
        pd.DataFrame({"request_id": ["champion-0", "champion-2", "nobody"], "y": [1, 2, 3]}),
        "y",
        "l.csv",
    )
    joined = join_labels(log, labels, "l.csv")
    assert list(joined.columns) == JOINED
    assert joined.to_dict("records") == [
        {"request_id": "champion-0", "row_index": 0, "variant": "champion", "model_version": "1",
         "prediction": 0.5, "label": 1},
    ]  # fmt: skip


def test_labels_without_row_index_name_the_first_request_of_several_rows() -> None:
    log = pd.concat(
        [
            _served("champion", "1", [1]),
            _served("challenger", "2", [1, 1, 0, 0], rows_per_request=2),
        ]
    )
    labels = prepare_labels(
        pd.DataFrame(
            {"request_id": ["champion-0", "challenger-0", "challenger-1"], "y": [1, 1, 0]}
        ),
        "y",
        "l.csv",
    )
    with pytest.raises(
        DataIngestError,
        match=r"labels l\.csv: request 'challenger-0' scored several rows; add a `row_index` "
        r"column \(the row's position in its request\)",
    ):
        join_labels(log, labels, "l.csv")


def _config(labels: Path | None, **kwargs: object) -> DeploymentConfig:
    source = {"path": str(labels)} if labels is not None else None
    return DeploymentConfig.model_validate(
        {"model_name": "m", "strategy": "canary", "labels": source, **kwargs}
    )


def _canary_log() -> pd.DataFrame:
    """Six champion rows (all right) and six v2 challenger rows (half right), and v3 rows."""
    return pd.concat(
        [
            _served("champion", "1", [1, 0, 1, 0, 1, 0]),
            _served("challenger", "2", [1, 1, 1, 1, 1, 1]),
            _served("challenger", "3", [0, 0]).assign(request_id=["challenger-0", "challenger-1"]),
        ],
        ignore_index=True,
    )


def _write_labels(path: Path) -> Path:
    truth = [1, 0, 1, 0, 1, 0]
    rows = [f"champion-{i},0,{y}" for i, y in enumerate(truth)]
    rows += [f"challenger-{i},0,{y}" for i, y in enumerate(truth)]
    path.write_text("request_id,row_index,churned\n" + "\n".join(rows) + "\n")
    return path


def test_live_quality_re_reads_the_labels_file_and_scores_this_version(tmp_path: Path) -> None:
    spec = LabelSpec("labels.csv", "churned", "classification", "accuracy", 0.75)
    config = _config(_write_labels(tmp_path / "labels.csv"), min_labelled_rows=6,
                     quality_confidence=0.9)  # fmt: skip
    reading = read_live_quality(config, spec, _canary_log(), "2")
    assert (reading.metric, reading.challenger_rows, reading.challenger) == ("accuracy", 6, 0.5)
    assert (reading.baseline, reading.baseline_source) == (1.0, "champion live, 6 rows")
    assert reading.confidence == 0.9
    assert reading.drop_bound is not None and 0 < reading.drop_bound <= 0.5
    # The champion's six rows are too few for min_labelled_rows=7: the offline metric is used.
    fewer_config = _config(tmp_path / "labels.csv", min_labelled_rows=7)
    fewer = read_live_quality(fewer_config, spec, _canary_log(), "2")
    assert (fewer.challenger_rows, fewer.baseline, fewer.baseline_source) == (
        6, 0.75, "challenger offline test",
    )  # fmt: skip
    assert fewer.drop_bound is None  # six challenger rows are too few to judge as well


def test_a_labels_file_with_no_rows_yet_reads_as_no_labelled_rows(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,row_index,churned\n")
    spec = LabelSpec("labels.csv", "churned", "classification", "accuracy", None)
    reading = read_live_quality(_config(path), spec, _canary_log(), "2")
    assert (reading.challenger_rows, reading.challenger, reading.baseline) == (0, None, None)


def test_live_quality_errors_name_the_labels(tmp_path: Path) -> None:
    spec = LabelSpec("s3://bucket/labels.csv", "churned", "classification", "accuracy", None)
    with pytest.raises(
        ConfigError,
        match=r"^live quality needs `labels` \(a table of request ids and true values\)$",
    ):
        read_live_quality(_config(None), spec, _canary_log(), "2")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("request_id,truth\nchallenger-0,1\n")
    with pytest.raises(DataIngestError, match=r"labels s3://bucket/labels\.csv: missing column"):
        read_live_quality(_config(wrong), spec, _canary_log(), "2")
    unkeyed = tmp_path / "unkeyed.csv"
    unkeyed.write_text("request_id,churned\nchallenger-0,1\n")
    several = _served("challenger", "2", [1, 0], rows_per_request=2)
    with pytest.raises(DataIngestError, match=r"labels s3://bucket/labels\.csv: request"):
        read_live_quality(_config(unkeyed), spec, several, "2")
