"""The registry tests' view of a real MLflow SQLite registry (a client and a model name of one
test's own) and fault injection: a client that makes chosen registry calls fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException

from prefect_mlops import registry
from prefect_mlops.registry import lineage


@dataclass
class Registry:
    """The shared store as one test sees it: a client and a model name of its own."""

    client: Any
    name: str
    run_id: str
    uri: str

    def new_version(self, *, blessed: bool = True, **tags: str) -> str:
        """``create_version`` (no alias moves) of the logged model."""
        return registry.create_version(
            self.client,
            model_name=self.name,
            model_uri=self.uri,
            run_id=self.run_id,
            tags=tags,
            blessed=blessed,
            reason="blessed: roc_auc ok" if blessed else "not blessed: roc_auc worse",
        )

    def register(self, *, blessed: bool, promote: bool = True) -> registry.RegistrationResult:
        """``register_model_version`` of the logged model."""
        return registry.register_model_version(
            self.client,
            model_name=self.name,
            model_uri=self.uri,
            run_id=self.run_id,
            tags={"mlops.metric.roc_auc": "0.91"},
            blessed=blessed,
            promote=promote,
            reason="unit test",
            actor="tester",
        )

    def aliases(self) -> dict[str, str]:
        return registry.alias_state(self.client, self.name)

    def versions(self) -> list[str]:
        return sorted(str(v.version) for v in registry.search_versions(self.client, self.name))

    def replayed_history(self) -> dict[str, str]:
        """The aliases the alias history says there are (each move replayed in order)."""
        replayed: dict[str, str] = {}
        for move in registry.alias_history(self.client, self.name):
            if move.to_version is None:
                replayed.pop(move.alias, None)
            else:
                replayed[move.alias] = move.to_version
        return replayed


Rule = Callable[[str, tuple[Any, ...]], bool]


class FaultyClient:
    """The real ``MlflowClient``, except that a call a rule matches raises MlflowException.

    ``fail(method, args, times=1)`` adds a rule (a predicate on the method name and positional
    arguments) that fires ``times`` times (None: always). ``calls`` lists every registry write.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.rules: list[list[Any]] = []  # [predicate, remaining, message]
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fired: list[str] = []

    def fail(self, predicate: Rule, message: str, times: int | None = 1) -> FaultyClient:
        self.rules.append([predicate, times, message])
        return self

    def __getattr__(self, method: str) -> Any:
        attr = getattr(self.real, method)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, args))
            for rule in self.rules:
                predicate, remaining, message = rule
                if remaining != 0 and predicate(method, args):
                    if remaining is not None:
                        rule[1] = remaining - 1
                    self.fired.append(message)
                    raise MlflowException(message)
            return attr(*args, **kwargs)

        return call


def history_write_of(alias: str, to_version: str | None = None) -> Rule:
    """Matches writing the alias-history entry of a move of ``alias`` (to ``to_version``)."""

    def matches(method: str, args: tuple[Any, ...]) -> bool:
        if method != "set_registered_model_tag" or not args[1].startswith(
            lineage.ALIAS_MOVE_PREFIX
        ):
            return False
        entry = json.loads(args[2])
        return entry["alias"] == alias and (to_version is None or entry["to_version"] == to_version)

    return matches


def any_history_write(method: str, args: tuple[Any, ...]) -> bool:
    return method == "set_registered_model_tag" and args[1].startswith(lineage.ALIAS_MOVE_PREFIX)


def alias_set(alias: str, version: str) -> Rule:
    """Matches pointing ``alias`` at ``version``."""

    def matches(method: str, args: tuple[Any, ...]) -> bool:
        return method == "set_registered_model_alias" and args[1:] == (alias, version)

    return matches


def tag_write(key: str) -> Rule:
    """Matches setting or deleting the registered-model tag ``key``."""

    def matches(method: str, args: tuple[Any, ...]) -> bool:
        return method in ("set_registered_model_tag", "delete_registered_model_tag") and (
            args[1] == key
        )

    return matches
