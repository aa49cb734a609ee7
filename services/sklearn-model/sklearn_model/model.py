"""The Titanic model: a scikit-learn Pipeline (imputation + one-hot + RandomForest) and its
held-out evaluation. Only stock scikit-learn classes, so the skops file needs no custom types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from sklearn_model.data import CATEGORICAL_FEATURES, NUMERIC_FEATURES


@dataclass(frozen=True)
class Hyperparams:
    """What the training run varies (logged as MLflow params)."""

    n_estimators: int = 200
    max_depth: int | None = 7
    test_size: float = 0.2
    random_state: int = 42


@dataclass(frozen=True)
class Trained:
    """A fitted pipeline, its held-out metrics, and the split sizes."""

    pipeline: Pipeline
    metrics: dict[str, float]
    n_train: int
    n_test: int


def build_pipeline(hp: Hyperparams) -> Pipeline:
    """Unfitted pipeline: median-impute numbers, most-frequent-impute + one-hot categories."""
    numeric = SimpleImputer(strategy="median")
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ])
    prep = ColumnTransformer([
        ("num", numeric, list(NUMERIC_FEATURES)),
        ("cat", categorical, list(CATEGORICAL_FEATURES)),
    ])
    forest = RandomForestClassifier(
        n_estimators=hp.n_estimators,
        max_depth=hp.max_depth,
        random_state=hp.random_state,
        n_jobs=1,  # the service has one CPU; parallel trees only add memory here
    )
    return Pipeline([("prep", prep), ("forest", forest)])


def evaluate(pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC of a fitted pipeline on (x, y)."""
    proba = pipeline.predict_proba(x)[:, 1]
    label = (proba >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(y, label)),
        "f1": float(f1_score(y, label)),
        "roc_auc": float(roc_auc_score(y, proba)),
    }


def fit(x: pd.DataFrame, y: pd.Series, hp: Hyperparams) -> Trained:
    """Stratified split, fit on the train part, metrics on the held-out part."""
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=hp.test_size, random_state=hp.random_state, stratify=y
    )
    pipeline = build_pipeline(hp)
    pipeline.fit(x_train, y_train)
    return Trained(pipeline, evaluate(pipeline, x_test, y_test), len(x_train), len(x_test))


def survival_probability(pipeline: Pipeline, x: pd.DataFrame) -> np.ndarray:
    """P(Survived = 1) per row."""
    classes = list(pipeline.classes_)
    return np.asarray(pipeline.predict_proba(x)[:, classes.index(1)], dtype=float)
