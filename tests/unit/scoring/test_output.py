"""The scored output: request ids, the scored table, part files and the output folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from prefect_mlops.errors import ScoringError
from prefect_mlops.scoring.config import ScoringConfig
from prefect_mlops.scoring.output import check_output_dir, part_path, request_ids
from prefect_mlops.scoring.runner import score_chunk


def test_request_ids_are_zero_padded_row_numbers() -> None:
    ids = request_ids("job", 12, 3)
    assert ids.to_pylist() == ["job-00012-0000000", "job-00012-0000001", "job-00012-0000002"]
    assert request_ids("job", 0, 0).to_pylist() == []
    # Past 10**7 rows the row number takes the digits it needs, as f"{row:07d}" does.
    tail = request_ids("j", 1, 10**7 + 2).slice(10**7 - 1).to_pylist()
    assert tail == ["j-00001-9999999", "j-00001-10000000", "j-00001-10000001"]


def test_score_chunk_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    keys = [f"c{i}" for i in range(50)]
    chunk = pd.DataFrame({"key": keys, "age": rng.integers(18, 80, 50), "x": rng.normal(size=50)})
    feats = ["age", "x"]
    model = LogisticRegression().fit(chunk[feats], (chunk["x"] > 0).astype(int))
    one = score_chunk(model, chunk, feats, "m", "1", 3, job_id="j", id_column="key")
    two = score_chunk(model, chunk, feats, "m", "1", 3, job_id="j", id_column="key")
    pd.testing.assert_frame_equal(one, two)
    assert list(one.columns) == ["key", "request_id", "prediction", "model_name", "model_version"]
    assert one["request_id"].iloc[7] == "j-00003-0000007"
    assert (one["prediction"].to_numpy() == model.predict(chunk[feats])).all()
    with pytest.raises(ScoringError, match="age"):
        score_chunk(model, chunk.drop(columns=["age"]), feats, "m", "1", 0, job_id="j")


def test_output_dir_must_be_a_folder_without_parts(tmp_path: Path) -> None:
    def config(out: Path, **overrides: object) -> ScoringConfig:
        base = {"model_name": "m", "data": {"path": "x.csv"}, "output_dir": str(out)}
        return ScoringConfig.model_validate({**base, **overrides})

    check_output_dir(config(tmp_path / "new"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScoringError, match="is a file, not a folder"):
        check_output_dir(config(tmp_path / "file"))
    part_path(tmp_path, 0).write_bytes(b"old")
    with pytest.raises(ScoringError, match=r"1 part file\(s\) \(part-00000\.parquet"):
        check_output_dir(config(tmp_path))
    check_output_dir(config(tmp_path, overwrite=True))
