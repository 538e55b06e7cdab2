"""Model pipelines: features resolved from the config, a ColumnTransformer + estimator Pipeline,
fitted with an optional parameter search.

The preprocessing lives inside the ``Pipeline`` so serving applies exactly the training transforms.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prefect_mlops.config import SearchConfig, TrainingConfig
from prefect_mlops.errors import ConfigError, DataValidationError, TrainingError

DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
DEFAULT_SCORING = {"classification": "roc_auc", "regression": "neg_root_mean_squared_error"}


@dataclass(frozen=True)
class FeatureSpec:
    """The model's input columns, split by kind."""

    numeric: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        """All feature columns in model order."""
        return [*self.numeric, *self.categorical]


@dataclass
class FitResult:
    """A fitted pipeline plus what the search found."""

    model: Any
    best_params: dict[str, Any] = field(default_factory=dict)
    cv_results: pd.DataFrame | None = None
    best_cv_score: float | None = None


def require_columns(df: pd.DataFrame, columns: list[str], role: str, source: str) -> None:
    """Raise DataValidationError naming every column of ``columns`` missing from ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"{source}: {role} column(s) {missing} missing from the data; "
            f"columns present: {list(df.columns)}",
            failures=[f"column {c!r} ({role}) is missing" for c in missing],
        )


def resolve_features(df: pd.DataFrame, config: TrainingConfig, source: str = "data") -> FeatureSpec:
    """Feature columns by the config, or every usable column but target, id, timestamp, drops.

    Raises DataValidationError when the target or a configured feature is missing.
    """
    require_columns(df, [config.target], "target", source)
    excluded = {config.target, config.id_column, config.data.timestamp_column, *config.drop_columns}
    if config.features is not None:
        require_columns(df, config.features, "feature", source)
        columns = list(config.features)
    else:
        columns = [
            c
            for c in df.columns
            if c not in excluded and not pd.api.types.is_datetime64_any_dtype(df[c])
        ]
    if not columns:
        raise ConfigError(f"field features: no feature columns left in {source}")
    if config.categorical_features is not None:
        require_columns(df, config.categorical_features, "categorical feature", source)
        categorical = [c for c in columns if c in set(config.categorical_features)]
    else:
        categorical = [
            c
            for c in columns
            if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
        ]
    numeric = [c for c in columns if c not in set(categorical)]
    return FeatureSpec(numeric=numeric, categorical=categorical)


def import_estimator(class_path: str) -> type:
    """Import an estimator class from ``module.Class``; TrainingError names the path on failure."""
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name:
        raise TrainingError(
            f"field estimator.class_path: {class_path!r} is not an import path like "
            "'sklearn.ensemble.RandomForestClassifier'"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise TrainingError(
            f"field estimator.class_path: cannot import {class_path!r} ({exc})"
        ) from exc
    if not (inspect.isclass(cls) and hasattr(cls, "fit") and hasattr(cls, "predict")):
        raise TrainingError(
            f"field estimator.class_path: {class_path!r} is not a scikit-learn estimator class"
        )
    return cls


def preflight_checks(config: TrainingConfig) -> None:
    """Fail fast, before any data is read, on an estimator that cannot be imported or on
    contradictory blessing thresholds."""
    from prefect_mlops.modeling.blessing import check_thresholds

    if config.estimator.class_path:
        import_estimator(config.estimator.class_path)
    if config.thresholds:
        check_thresholds(config.thresholds)


def build_estimator(config: TrainingConfig, task: str, seed: int) -> Any:
    """Instantiate the configured estimator, seeding ``random_state`` when it has one."""
    class_path = config.estimator.class_path or DEFAULT_ESTIMATORS[task]
    cls = import_estimator(class_path)
    params = dict(config.estimator.params)
    if "random_state" in inspect.signature(cls).parameters and "random_state" not in params:
        params["random_state"] = seed
    try:
        return cls(**params)
    except TypeError as exc:
        raise TrainingError(f"field estimator.params: invalid for {class_path}: {exc}") from exc


def build_pipeline(features: FeatureSpec, estimator: Any) -> Any:
    """``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])``.

    Numeric: median imputation + scaling; categorical: one-hot with missing values as a
    category and unknown categories ignored at serving time.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers: list[tuple[str, Any, list[str]]] = []
    if features.numeric:
        numeric = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        transformers.append(("numeric", numeric, features.numeric))
    if features.categorical:
        # OneHotEncoder keeps missing values as their own category; unknown ones are ignored.
        categorical = OneHotEncoder(handle_unknown="ignore", max_categories=50, sparse_output=False)
        transformers.append(("categorical", categorical, features.categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def fit_model(
    pipeline: Any,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: str,
    search: SearchConfig | None,
    seed: int,
) -> FitResult:
    """Fit ``pipeline``; with ``search`` run RandomizedSearchCV / GridSearchCV over ``model__*``.

    Raises TrainingError naming the estimator when fitting fails.
    """
    try:
        if search is None:
            pipeline.fit(X, y)
            return FitResult(model=pipeline)
        from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

        space = {f"model__{k}": v for k, v in search.space.items()}
        scoring = search.scoring or _default_scoring(task, y)
        if search.kind == "grid":
            searcher: Any = GridSearchCV(pipeline, space, cv=search.cv, scoring=scoring)
        else:
            searcher = RandomizedSearchCV(
                pipeline,
                space,
                n_iter=search.n_iter,
                cv=search.cv,
                scoring=scoring,
                random_state=seed,
            )
        searcher.fit(X, y)
    except ValueError as exc:
        raise TrainingError(f"fitting {type(pipeline[-1]).__name__} failed: {exc}") from exc
    best = {k.removeprefix("model__"): v for k, v in searcher.best_params_.items()}
    return FitResult(
        model=searcher.best_estimator_,
        best_params=best,
        cv_results=pd.DataFrame(searcher.cv_results_),
        best_cv_score=float(searcher.best_score_),
    )


def training_params(
    config: TrainingConfig, task: str, features: FeatureSpec, estimator: Any, fitted: FitResult
) -> dict[str, Any]:
    """The MLflow params of a fit: ``task``, ``estimator`` (its import path), the feature lists,
    the configured ``model.*`` parameters and the search's ``best.*`` ones."""
    return {
        "task": task,
        "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
        "features.numeric": ",".join(features.numeric)[:6000],
        "features.categorical": ",".join(features.categorical)[:6000],
        **{f"model.{k}": v for k, v in config.estimator.params.items()},
        **{f"best.{k}": v for k, v in fitted.best_params.items()},
    }


def _default_scoring(task: str, y: pd.Series) -> str:
    if task == "classification" and y.nunique() > 2:
        return "roc_auc_ovr"
    return DEFAULT_SCORING[task]
