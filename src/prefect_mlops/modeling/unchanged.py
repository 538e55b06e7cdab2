"""The "unchanged" rule: a candidate that would be trained on the champion's very data with the
champion's very configuration is not trained at all.

A duplicate trigger (a second ``make demo``, an event delivered twice, a schedule firing on data
that did not move) must be harmless: it registers nothing, moves no alias and says "unchanged".

The rule compares two lineage tags of the champion version with the candidate's:
``mlops.data.digest`` (the snapshot's content hash) and ``mlops.config_hash`` (the whole
``TrainingConfig``, estimator, split seed, thresholds and tags included). The code version is
left out on purpose: it changes with every commit and reads ``<sha>-dirty`` in any edited
checkout, so it would make every run "changed" (or, with ``-dirty`` fixed, hide edits). To retrain
on unchanged data after a code change, change the config, e.g. a ``tags`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping

from prefect_mlops.registry import lineage


def is_unchanged(champion_tags: Mapping[str, str] | None, digest: str, config_hash: str) -> bool:
    """True when the champion (its version tags; None when there is none) was trained on the
    snapshot ``digest`` with the config ``config_hash``."""
    if not champion_tags:
        return False
    return (
        champion_tags.get(lineage.DATA_DIGEST) == digest
        and champion_tags.get(lineage.CONFIG_HASH) == config_hash
    )


def unchanged_reason(champion_version: str, digest: str, config_hash: str) -> str:
    """The one-line reason of an unchanged run, naming the champion and both hashes."""
    return (
        f"unchanged: champion v{champion_version} was trained on the same data "
        f"(snapshot {digest[:12]}…) with the same config (hash {config_hash[:12]}…); "
        "nothing trained or registered"
    )
