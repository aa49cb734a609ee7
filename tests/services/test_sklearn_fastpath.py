"""sklearn-model's numpy fast path gives the fitted pipeline's own probabilities, bit for bit.

The forest is the service's: trained by its own training code (``model.fit`` with the default
hyper-parameters) on the real Kaggle CSV, saved as the training run logs it (MLflow, skops) and
loaded by the flavour the service uses. The reference is scikit-learn itself on the feature
frame (``Pipeline.predict_proba``). Rows: every CSV passenger, as the API would send them,
with names kept, dropped or rewritten (no title, rare and unknown titles), values missing,
numbers exactly on the trees' split thresholds, and categories the model never saw; called
one by one and in batches on both sides of the forest's two walking strategies.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from model_fixtures import titanic_csv  # noqa: F401  (pytest fixture)
from svc_util import service_app

MODULES = ("data", "model", "fastpath", "flavour", "schemas")
NAMES = ["Braund, Mr. Owen Harris", "Smith, Dr. John", "Doe, Jonkheer. Jan", "Lee, Rev. A",
         "no comma or title", "Roe, Sir. R. (Richard)", "", "Kay, the Countess. of X"]


@pytest.fixture(scope="module")
def sk() -> Iterator[dict[str, Any]]:
    with service_app("sklearn-model", *MODULES) as mods:
        yield mods


@pytest.fixture(scope="module")
def served(sk: dict[str, Any], titanic_csv: Path,  # noqa: F811
           tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The service's forest (default hyper-parameters, CV skipped: it changes no parameter),
    through a skops save and the flavour's load, as /predict gets it."""
    import mlflow.sklearn

    x, y = sk["data"].load_titanic(titanic_csv)
    trained = sk["model"].fit(x, y, sk["model"].Hyperparams(cv_folds=1))
    path = tmp_path_factory.mktemp("fastpath") / "model"
    mlflow.sklearn.save_model(trained.pipeline, str(path),
                              serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                              skops_trusted_types=sk["flavour"].SKOPS_TRUSTED_TYPES)
    return sk["flavour"].FLAVOUR.load(path, None)


def thresholds(pipeline: Any, feature: int, count: int) -> list[float]:
    """Split thresholds the forest uses on one feature column (values right on a split)."""
    found = sorted({float(t.threshold[i]) for e in pipeline.steps[1][1].estimators_
                    for t in [e.tree_] for i in np.flatnonzero(t.feature == feature)})
    return found[:: max(1, len(found) // count)]


def passenger_rows(sk: dict[str, Any], csv: Path, pipeline: Any) -> list[dict[str, Any]]:
    """Every CSV passenger through the API's schema, varied (seeded), plus edge rows."""
    rng = random.Random(11)
    # Features 0 and 1 are Age and Fare in the service's pipeline (a scaled one: no use).
    ages = [t for t in thresholds(pipeline, 0, 40) if 0 <= t <= 120] or [30.0]
    fares = [t for t in thresholds(pipeline, 1, 40) if 0 <= t <= 10_000] or [8.05]
    rows = []
    for r in pd.read_csv(csv).itertuples():
        body: dict[str, Any] = {"pclass": int(r.Pclass), "sex": r.Sex, "sibsp": int(r.SibSp),
                                "parch": int(r.Parch)}
        if not pd.isna(r.Age) and rng.random() > 0.15:
            body["age"] = float(r.Age) if rng.random() > 0.2 else rng.choice(ages)
        if not pd.isna(r.Fare) and rng.random() > 0.1:
            body["fare"] = float(r.Fare) if rng.random() > 0.2 else rng.choice(fares)
        if not pd.isna(r.Embarked) and rng.random() > 0.1:
            body["embarked"] = r.Embarked
        pick = rng.random()
        if pick < 0.5:
            body["name"] = r.Name
        elif pick < 0.7:
            body["name"] = rng.choice(NAMES)
        rows.append(sk["schemas"].Passenger(**body).as_record())
    return rows


def odd_rows() -> list[dict[str, Any]]:
    """Records the schema would refuse but the model code takes: categories never seen in
    training, NaN for missing, keys absent (the frame fills them with None)."""
    return [
        {"Pclass": 2, "Sex": "unknown", "Embarked": "X", "Name": "A, Dr. B", "Age": 40},
        {"Pclass": 4, "Sex": "female", "Age": float("nan"), "Fare": float("nan")},
        {"Pclass": 1},
        {"Pclass": 3, "Sex": "male", "Age": 0, "Fare": 0.0, "SibSp": 20, "Parch": 20},
        {"Pclass": 1, "Sex": "female", "Age": 120, "Fare": 10_000, "Embarked": "Q",
         "Name": "Zed, Mme. Q"},
    ]


def reference(sk: dict[str, Any], pipeline: Any, rows: list[dict[str, Any]]) -> np.ndarray:
    """scikit-learn's answer: the feature frame through the whole pipeline."""
    result: np.ndarray = sk["model"].survival_probability(pipeline,
                                                          sk["data"].features_frame(rows))
    return result


def test_the_service_predicts_through_the_fast_path(served: Any) -> None:
    assert served.fast is not None


def test_feature_matrix_is_the_column_transformers(sk: dict[str, Any], served: Any,
                                                   titanic_csv: Path) -> None:  # noqa: F811
    rows = passenger_rows(sk, titanic_csv, served.pipeline) + odd_rows()
    expected = served.pipeline.steps[0][1].transform(sk["data"].features_frame(rows))
    got = served.fast.transform(sk["fastpath"].feature_columns(rows))
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


@pytest.mark.parametrize("chunk", [1, 7, 64, 65, 1000])
def test_same_probabilities_as_the_pipeline(sk: dict[str, Any], served: Any,
                                            titanic_csv: Path, chunk: int) -> None:  # noqa: F811
    rows = passenger_rows(sk, titanic_csv, served.pipeline) + odd_rows()
    expected = reference(sk, served.pipeline, rows)
    got = np.concatenate([served.survival_probability(rows[i:i + chunk])
                          for i in range(0, len(rows), chunk)])
    # Not merely close: the same floats, so a rounded answer or a 0.5 cut can never differ.
    mismatch = np.flatnonzero(got != expected)
    assert mismatch.size == 0, [(rows[i], got[i], expected[i]) for i in mismatch[:5]]


def test_a_version_on_other_columns_compiles_too(sk: dict[str, Any],
                                                 titanic_csv: Path) -> None:  # noqa: F811
    """Versions registered before the derived features read SibSp/Parch and no Title: the
    fast path follows the fitted pipeline's own columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    cat = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                    ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    prep = ColumnTransformer([("num", SimpleImputer(strategy="mean"),
                               ["Age", "SibSp", "Parch", "Fare"]),
                              ("cat", cat, ["Pclass", "Sex", "Embarked"])])
    old = Pipeline([("prep", prep), ("forest", RandomForestClassifier(
        n_estimators=40, max_depth=None, random_state=1))])
    x, y = sk["data"].load_titanic(titanic_csv)
    old.fit(x, y)
    model = sk["model"].ServedModel(old)
    assert model.fast is not None
    rows = passenger_rows(sk, titanic_csv, old) + odd_rows()
    assert np.array_equal(model.survival_probability(rows), reference(sk, old, rows))


def test_unknown_steps_fall_back_to_scikit_learn(sk: dict[str, Any],
                                                 titanic_csv: Path) -> None:  # noqa: F811
    from sklearn.preprocessing import StandardScaler

    pipeline = sk["model"].build_pipeline(sk["model"].Hyperparams(n_estimators=20))
    pipeline.steps[0][1].transformers[0] = ("num", StandardScaler(), ["Fare", "FamilySize"])
    x, y = sk["data"].load_titanic(titanic_csv)
    pipeline.fit(x, y)
    model = sk["model"].ServedModel(pipeline)
    assert model.fast is None
    rows = passenger_rows(sk, titanic_csv, pipeline)
    assert np.array_equal(model.survival_probability(rows), reference(sk, pipeline, rows))


def test_refusals_say_what_is_not_reproduced(sk: dict[str, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(sk["fastpath"].Unsupported, match="not a prep \\+ forest pipeline"):
        sk["fastpath"].FastPipeline(LogisticRegression())
