"""The Titanic model: a scikit-learn Pipeline (imputation + one-hot + RandomForest) and its
held-out evaluation. Only stock scikit-learn classes, so the skops file needs no custom types."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from sklearn_model.data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, features_frame
from sklearn_model.fastpath import FastPipeline, Unsupported

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hyperparams:
    """What the training run varies (logged as MLflow params)."""

    n_estimators: int = 300
    max_depth: int | None = 10
    min_samples_leaf: int = 2
    max_features: float = 0.5  # share of the features each split considers
    test_size: float = 0.2
    random_state: int = 42
    cv_folds: int = 5


@dataclass(frozen=True)
class Trained:
    """A fitted pipeline, its held-out and cross-validated metrics, and the split sizes."""

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
        min_samples_leaf=hp.min_samples_leaf,
        max_features=hp.max_features,
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


def cross_validate(x: pd.DataFrame, y: pd.Series, hp: Hyperparams) -> dict[str, float]:
    """Stratified k-fold accuracy (shuffled, seed 0) of the whole pipeline on all rows.

    One 20 % split of 891 rows moves by +-0.03 with the seed; the mean over folds, with its
    spread, is the figure to compare versions by. The folds refit imputers and encoder too, so
    nothing of a test fold leaks into its model."""
    folds = StratifiedKFold(n_splits=hp.cv_folds, shuffle=True, random_state=0)
    scores = cross_val_score(build_pipeline(hp), x, y, cv=folds, scoring="accuracy")
    return {"cv_accuracy_mean": float(scores.mean()), "cv_accuracy_std": float(scores.std())}


def fit(x: pd.DataFrame, y: pd.Series, hp: Hyperparams) -> Trained:
    """Cross-validated accuracy on all rows; then a stratified split, fit on the train part,
    metrics on the held-out part (the model served is the one fitted on the train part)."""
    cv = cross_validate(x, y, hp) if hp.cv_folds > 1 else {}
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=hp.test_size, random_state=hp.random_state, stratify=y
    )
    pipeline = build_pipeline(hp)
    pipeline.fit(x_train, y_train)
    metrics = {**evaluate(pipeline, x_test, y_test), **cv}
    return Trained(pipeline, metrics, len(x_train), len(x_test))


def survival_probability(pipeline: Pipeline, x: pd.DataFrame) -> np.ndarray:
    """P(Survived = 1) per row."""
    classes = list(pipeline.classes_)
    return np.asarray(pipeline.predict_proba(x)[:, classes.index(1)], dtype=float)


class ServedModel:
    """A loaded pipeline as /predict calls it: through its numpy twin
    (:class:`sklearn_model.fastpath.FastPipeline`, the same probabilities without a DataFrame
    or per-tree dispatch) when the pipeline's steps are ones it reproduces, else through
    scikit-learn with the forest on one thread (joblib's workers cost more than a few rows'
    prediction)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.fast: FastPipeline | None
        try:
            self.fast = FastPipeline(pipeline)
        except Unsupported as exc:
            log.warning("predicting through scikit-learn (slower): the fast path does not "
                        "reproduce %s", exc)
            self.fast = None
            forest = pipeline.steps[-1][1] if isinstance(pipeline, Pipeline) else pipeline
            if "n_jobs" in getattr(forest, "get_params", dict)():
                forest.set_params(n_jobs=1)

    def survival_probability(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """P(Survived = 1) per record keyed by the CSV column names."""
        if self.fast is not None:
            return self.fast.survival_probability(rows)
        return survival_probability(self.pipeline, features_frame(rows))
