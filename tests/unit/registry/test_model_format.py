"""The one safe model loader against a real MLflow SQLite registry: skops only (pickle when
allowed), the package's trusted types (never the artifact's own list), the digest recorded at
registration; serving, batch scoring and training all load through it."""

from __future__ import annotations

import builtins
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import skops.io
from registry_store import Registry
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from prefect_mlops import registry
from prefect_mlops.errors import ConfigError, ModelLoadError
from prefect_mlops.registry import lineage, model_format, tracking
from prefect_mlops.registry.model_format import LoadPolicy, file_digest, package_trusts
from prefect_mlops.scoring.model import clear_model_cache, load_model_cached
from prefect_mlops.serving.loading import load_version as serve_version

X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
Y = [0, 0, 1, 1]
STRICT = LoadPolicy()


class Shady(TransformerMixin, BaseEstimator):
    """A user class scikit-learn does not define (skops would have to trust it)."""

    def fit(self, X: Any, y: Any = None) -> Shady:
        return self

    def transform(self, X: Any) -> Any:
        return X


def _log(reg: Registry, model: Any, **options: Any) -> str:
    """Log ``model`` in a run of its own with ``mlflow.sklearn.log_model(**options)``, as any
    MLflow user (or attacker with artifact-store access) could; returns its model URI."""
    import mlflow

    experiment_id = reg.client.get_run(reg.run_id).info.experiment_id
    run_id = reg.client.create_run(experiment_id).info.run_id
    with tracking.active_run(run_id), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=tracking.model_pip_requirements(), **options
        )
    reg.client.set_terminated(run_id, "FINISHED")
    return str(info.model_uri)


def _register(reg: Registry, uri: str) -> str:
    return registry.create_version(
        reg.client, model_name=reg.name, model_uri=uri, run_id=None, tags={},
        blessed=True, reason="model format test",
    )  # fmt: skip


def _model_file(reg: Registry, version: str) -> Path:
    location = urlparse(reg.client.get_model_version_download_uri(reg.name, version)).path
    (path,) = Path(location).glob("model.*")
    return path


def _fitted() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


def test_a_registered_model_records_its_digest_and_loads_everywhere(reg: Registry) -> None:
    import mlflow

    version = reg.new_version()
    tags = reg.client.get_model_version(reg.name, version).tags
    assert tags[lineage.MODEL_DIGEST] == file_digest(_model_file(reg, version))
    assert tags[lineage.MODEL_DIGEST].startswith("sha256:")

    model = model_format.load_version(reg.client, reg.name, version, STRICT)
    assert model.predict(X).tolist() == Y
    assert serve_version(reg.client, reg.name, version).model.predict(X).tolist() == Y
    assert tracking.load_model(f"models:/{reg.name}/{version}").predict(X).tolist() == Y
    # The artifact stays a normal MLflow sklearn model: MLflow's own client loads it.
    assert mlflow.pyfunc.load_model(f"models:/{reg.name}/{version}").predict(X).tolist() == Y


def test_a_pickle_model_is_refused_unless_allowed(reg: Registry) -> None:
    version = _register(reg, _log(reg, _fitted(), serialization_format="pickle"))
    with pytest.raises(ModelLoadError, match=r"saved as pickle.*MLOPS_ALLOW_PICKLE_MODELS"):
        model_format.load_version(reg.client, reg.name, version, STRICT)
    with pytest.raises(ModelLoadError, match="MLOPS_ALLOW_PICKLE_MODELS"):
        serve_version(reg.client, reg.name, version)
    allowed = LoadPolicy(allow_pickle=True)
    model = model_format.load_version(reg.client, reg.name, version, allowed)
    assert model.predict(X).tolist() == Y


def test_the_artifacts_own_trusted_types_are_ignored(reg: Registry) -> None:
    """``builtins.eval`` as a FunctionTransformer's function, trusted by the artifact's MLmodel
    (MLflow's loader would load it): refused, named, unless the settings trust it."""
    model = Pipeline([("f", FunctionTransformer(func=builtins.eval)), ("m", _fitted())])
    uri = _log(reg, model, serialization_format="skops", skops_trusted_types=["builtins.eval"])
    version = _register(reg, uri)
    with pytest.raises(ModelLoadError, match=r"not trust: builtins\.eval") as info:
        model_format.load_version(reg.client, reg.name, version, STRICT)
    assert "MLOPS_MODEL_TRUSTED_TYPES" in str(info.value)
    with pytest.raises(ModelLoadError, match=r"builtins\.eval"):
        serve_version(reg.client, reg.name, version)
    declared = LoadPolicy(trusted_types=("builtins.eval",))
    loaded = model_format.load_version(reg.client, reg.name, version, declared)
    assert isinstance(loaded.steps[0][1], FunctionTransformer)


def test_a_user_class_is_refused_naming_it(reg: Registry) -> None:
    model = Pipeline([("shady", Shady()), ("m", _fitted())]).fit(X, Y)
    name = f"{Shady.__module__}.Shady"
    version = _register(reg, _log(reg, model, skops_trusted_types=[name]))
    with pytest.raises(ModelLoadError, match=rf"not trust: {name}"):
        model_format.load_version(reg.client, reg.name, version, STRICT)


def test_logging_refuses_a_model_the_loader_would_refuse(reg: Registry) -> None:
    model = Pipeline([("f", FunctionTransformer(func=builtins.eval)), ("m", _fitted())])
    with pytest.raises(ConfigError, match=r"builtins\.eval.*MLOPS_MODEL_TRUSTED_TYPES"):
        tracking.log_sklearn_model(reg.run_id, model, X, policy=STRICT)


def test_a_tampered_artifact_is_refused_naming_both_digests(reg: Registry) -> None:
    version = _register(reg, _log(reg, _fitted()))
    path = _model_file(reg, version)
    registered = file_digest(path)
    # Same format, same trusted types: only the digest tells the swap.
    path.write_bytes(skops.io.dumps(LogisticRegression().fit(X, [1, 1, 0, 0])))
    tampered = file_digest(path)
    assert tampered != registered
    for load in (
        lambda: model_format.load_version(reg.client, reg.name, version, STRICT),
        lambda: serve_version(reg.client, reg.name, version),
        lambda: tracking.load_model(f"models:/{reg.name}/{version}"),
    ):
        with pytest.raises(ModelLoadError, match="changed after registration") as info:
            load()
        assert registered in str(info.value) and tampered in str(info.value)
        assert f"models:/{reg.name}/{version}" in str(info.value)
    # Batch scoring's per-process loader, given the version's digest.
    location = reg.client.get_model_version_download_uri(reg.name, version)
    clear_model_cache()
    with pytest.raises(ModelLoadError, match="changed after registration"):
        load_model_cached(location, reg.client.tracking_uri, reg.client.tracking_uri, registered)


def test_a_version_registered_before_digests_loads_with_a_warning(
    reg: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    reg.client.create_registered_model(reg.name)
    version = str(reg.client.create_model_version(reg.name, source=reg.uri).version)
    assert lineage.MODEL_DIGEST not in reg.client.get_model_version(reg.name, version).tags
    with caplog.at_level("WARNING", logger="prefect_mlops.registry.model_format"):
        model = model_format.load_version(reg.client, reg.name, version, STRICT)
    assert model.predict(X).tolist() == Y
    assert "no recorded digest" in caplog.text and f"models:/{reg.name}/{version}" in caplog.text


def test_a_model_file_outside_its_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: ../../etc/passwd\n"
        "    serialization_format: skops\n"
    )
    with pytest.raises(ModelLoadError, match="outside its folder"):
        model_format.download_model_file(str(tmp_path), tmp_path / "dl", tracking_uri=None)


@pytest.mark.parametrize(
    "name",
    [
        "numpy.dtype",
        "numpy.float64",
        "numpy.dtypes.Float64DType",
        "scipy.sparse._csr.csr_matrix",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    ],
)
def test_the_package_trusts_scikit_learn_classes_and_numpy_scipy_data_types(name: str) -> None:
    assert package_trusts(name)


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "os.system",
        "subprocess.Popen",
        "numpy.load",  # a function
        "numpy.ndarray.tofile",
        "sklearn.utils.validation.check_array",  # a function
        "sklearn.no_such_module.Thing",
        "scipy.integrate.quad",
        "numpy.lib.npyio.NpzFile",  # a numpy class, not a data type
        "sklearn.base.BaseEstimator.__init_subclass__",
        "",
        "sklearn",
    ],
)
def test_the_package_trusts_nothing_else(name: str) -> None:
    assert not package_trusts(name)


def test_every_scikit_learn_estimator_in_our_pipeline_is_trusted() -> None:
    """Every classifier and regressor a config may name (``estimator.class_path``), fitted in
    the pipeline ``modeling.training`` builds, holds only types the package trusts."""
    from sklearn.utils import all_estimators

    from prefect_mlops.modeling.training import DEFAULT_ESTIMATORS, FeatureSpec, build_pipeline

    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "c": rng.normal(size=n),
            "b": rng.choice(["x", "y", "z"], n).astype(object),
        }
    )
    df.loc[3, "a"], df.loc[5, "b"] = np.nan, np.nan
    targets = {"classifier": rng.integers(0, 2, n), "regressor": rng.normal(size=n)}
    spec = FeatureSpec(numeric=["a", "c"], categorical=["b"])
    checked: list[str] = []
    for kind, y in targets.items():
        for est_name, cls in all_estimators(type_filter=kind):
            try:
                pipeline = build_pipeline(spec, cls())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pipeline.fit(df, y)
            except Exception:  # needs arguments or other data: nothing to save
                continue
            types = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
            assert model_format.refused_types(types, STRICT) == [], est_name
            checked.append(est_name)
    assert len(checked) > 50
    for path in DEFAULT_ESTIMATORS.values():
        assert path.rpartition(".")[2] in checked
