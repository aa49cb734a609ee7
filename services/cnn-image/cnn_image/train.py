"""``python -m cnn_image.train``: train on CIFAR10_DIR, log to MLflow, register, set the alias
(exit codes: see :mod:`mlops_serving.train_cli`)."""

from __future__ import annotations

import sys

from mlops_serving.train_cli import main

from cnn_image.config import Settings
from cnn_image.flavour import FLAVOUR

if __name__ == "__main__":
    sys.exit(main(Settings, FLAVOUR))
