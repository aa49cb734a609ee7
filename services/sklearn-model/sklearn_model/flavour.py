"""The MLflow flavour of this service: train + log (skops) + register a RandomForest, and load
a cached version with ``mlflow.sklearn``. The registry lookup, cache and alias polling are
:mod:`mlops_serving`'s."""

from __future__ import annotations

from dataclasses import asdict
from importlib.metadata import version as dist_version
from pathlib import Path

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature
from mlops_serving.registry import ModelInfo, promote, train_hint, training_run
from sklearn.pipeline import Pipeline

from sklearn_model.config import Settings
from sklearn_model.data import load_titanic
from sklearn_model.model import Hyperparams, ServedModel, fit, survival_probability

# skops refuses types it does not know: the forest's trees, and numpy dtypes the fitted
# imputers/encoder keep (both plain data, no code).
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", "numpy.dtype"]


def hyperparams(settings: Settings) -> Hyperparams:
    """Training hyper-parameters from the settings."""
    return Hyperparams(
        n_estimators=settings.n_estimators,
        max_depth=settings.max_depth,
        min_samples_leaf=settings.min_samples_leaf,
        max_features=settings.max_features,
        test_size=settings.test_size,
        random_state=settings.random_state,
        cv_folds=settings.cv_folds,
    )


class TitanicForest:
    """The :class:`mlops_serving.registry.Flavour` of the Titanic RandomForest."""

    def train_and_register(self, settings: Settings) -> ModelInfo:
        """Train on ``TITANIC_CSV``, log params/metrics/model (skops), register a new version
        of ``MODEL_NAME`` and point ``MODEL_ALIAS`` at it."""
        x, y = load_titanic(settings.titanic_csv)
        hp = hyperparams(settings)
        with training_run(settings) as (client, run):
            mlflow.log_params({**asdict(hp), "rows": len(x), "features": ",".join(x.columns)})
            trained = fit(x, y, hp)
            mlflow.log_params({"n_train": trained.n_train, "n_test": trained.n_test})
            mlflow.log_metrics(trained.metrics)
            example = x.head(5)
            logged = mlflow.sklearn.log_model(
                trained.pipeline,
                name="model",
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                registered_model_name=settings.model_name,
                signature=infer_signature(example, survival_probability(trained.pipeline,
                                                                        example)),
                input_example=example,
                # Given explicitly: inferring them starts a subprocess that re-imports the model.
                pip_requirements=[f"{d}=={dist_version(d)}"
                                  for d in ("scikit-learn", "skops", "pandas", "numpy")],
            )
        return promote(settings, client, run, logged.registered_model_version, trained.metrics)

    def load(self, path: Path, info: ModelInfo) -> ServedModel:
        """The fitted pipeline saved in ``path``, ready for /predict."""
        pipeline: Pipeline = mlflow.sklearn.load_model(str(path))
        return ServedModel(pipeline)

    def register_hint(self, settings: Settings) -> str:
        """How an operator gives this service a model (shown while it waits for one)."""
        return train_hint(settings, "sklearn_model.train",
                          "TITANIC_CSV set to Kaggle's Titanic train.csv (the image ships one "
                          "at /opt/data/titanic.csv)")


FLAVOUR = TitanicForest()
