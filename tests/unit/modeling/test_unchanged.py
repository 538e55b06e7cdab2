"""The unchanged rule: same data digest and config hash as the champion means nothing to train."""

from __future__ import annotations

import pytest

from prefect_mlops.modeling.unchanged import is_unchanged, unchanged_reason
from prefect_mlops.registry import lineage

CHAMPION = {
    lineage.DATA_DIGEST: "d" * 64,
    lineage.CONFIG_HASH: "c" * 64,
    lineage.CODE_VERSION: "abc123-dirty",
}


def test_same_digest_and_config_hash_is_unchanged() -> None:
    assert is_unchanged(CHAMPION, "d" * 64, "c" * 64)


@pytest.mark.parametrize(
    ("digest", "config_hash"),
    [("e" * 64, "c" * 64), ("d" * 64, "f" * 64), ("e" * 64, "f" * 64)],
    ids=["data-changed", "config-changed", "both-changed"],
)
def test_any_difference_is_a_change(digest: str, config_hash: str) -> None:
    assert not is_unchanged(CHAMPION, digest, config_hash)


@pytest.mark.parametrize("tags", [None, {}, {lineage.CONFIG_HASH: "c" * 64}])
def test_no_champion_or_no_lineage_is_a_change(tags: dict[str, str] | None) -> None:
    assert not is_unchanged(tags, "d" * 64, "c" * 64)


def test_the_code_version_does_not_count() -> None:
    assert is_unchanged({**CHAMPION, lineage.CODE_VERSION: "other"}, "d" * 64, "c" * 64)


def test_reason_names_the_champion_and_both_hashes() -> None:
    reason = unchanged_reason("3", "d" * 64, "c" * 64)
    assert reason.startswith("unchanged: champion v3")
    assert "d" * 12 in reason and "c" * 12 in reason
