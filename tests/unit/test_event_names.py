"""The events module: names defined once, resources and payloads as triggers read them."""

from __future__ import annotations

import pytest

from prefect_mlops import events


def test_every_event_is_named_once_under_mlops() -> None:
    assert len(set(events.EVENTS)) == len(events.EVENTS) == 9
    assert all(name.startswith("mlops.") for name in events.EVENTS)
    assert set(events.RETRAIN_EVENTS) <= set(events.EVENTS)


def test_an_event_is_about_the_model_with_its_version_related() -> None:
    event = events.build_event(
        events.DRIFT_DETECTED,
        "churn",
        version="7",
        reason="drift in age",
        payload={"drifted_columns": ["age"], "drifted_share": 0.11},
    )
    assert event.event == "mlops.drift.detected"
    assert event.resource.id == "mlops.model.churn"
    assert event.resource["mlops.model_name"] == "churn"
    [version] = event.related
    assert version.id == "mlops.model.churn.version.7"
    assert version.role == "model-version" and version["mlops.version"] == "7"
    assert event.payload == {
        "drifted_columns": ["age"],
        "drifted_share": 0.11,
        "model_name": "churn",
        "version": "7",
        "reason": "drift in age",
    }


def test_the_required_payload_fields_win_over_a_payload_that_names_them() -> None:
    event = events.build_event(
        events.MODEL_BLESSED, "m", version=3, reason="better", payload={"version": "x"}
    )
    assert event.payload["version"] == "3"
    assert set(events.REQUIRED_PAYLOAD) <= set(event.payload)


def test_without_a_version_no_version_is_related() -> None:
    event = events.build_event(events.DATA_ARRIVED, "m", version=None, reason="1,000 new rows")
    assert event.related == [] and event.payload["version"] is None


def test_an_unknown_event_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown event 'mlops\.drift\.detect'"):
        events.build_event("mlops.drift.detect", "m", version="1", reason="typo")
