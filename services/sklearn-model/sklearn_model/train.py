"""``python -m sklearn_model.train``: train on TITANIC_CSV, log to MLflow, register, set the
alias (exit codes: see :mod:`mlops_serving.train_cli`)."""

from __future__ import annotations

import sys

from mlops_serving.train_cli import main

from sklearn_model.config import Settings
from sklearn_model.flavour import FLAVOUR

if __name__ == "__main__":
    sys.exit(main(Settings, FLAVOUR))
