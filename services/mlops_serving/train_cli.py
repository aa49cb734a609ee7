"""``python -m <service>.train``: train on the service's data, log to MLflow, register, set
the alias. Exit codes: 0 trained and registered, 2 bad data set or settings, 3 MLflow/S3 failed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pydantic import ValidationError

from mlops_serving.errors import DatasetError
from mlops_serving.quiet import quiet_libraries
from mlops_serving.registry import Flavour, fmt_metrics
from mlops_serving.serve import LOG_FORMAT
from mlops_serving.settings import ModelServiceSettings, SettingsError

# At import, not in main(): `python -m <service>.train` imports its flavour (MLflow, hence
# GitPython and TensorFlow) right after this module, before main() runs.
quiet_libraries()


def main(settings_cls: type[ModelServiceSettings], flavour: Flavour[Any]) -> int:
    """Train once; print what was registered."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        settings = settings_cls()
    except (ValidationError, SettingsError) as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    settings.export_environment()
    try:
        info = flavour.train_and_register(settings)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - report MLflow/S3 failures as one line + exit code
        print(f"error: training could not be logged to MLflow at {settings.mlflow_tracking_uri}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    print(f"registered {info.name} version {info.version} as @{info.alias} "
          f"({fmt_metrics(info.metrics)})")
    return 0
