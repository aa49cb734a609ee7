"""``python -m app.train``: train on CIFAR10_DIR, log to MLflow, register, set the alias.

Exit codes: 0 trained and registered, 2 bad data set or settings, 3 MLflow/S3 failed.
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from app.cifar import DatasetError
from app.config import Settings, SettingsError
from app.registry import train_and_register


def main() -> int:
    """Train once; print what was registered."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    settings.export_environment()
    try:
        info = train_and_register(settings)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - report MLflow/S3 failures as one line + exit code
        print(f"error: training could not be logged to MLflow at {settings.mlflow_tracking_uri}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(info.metrics.items()))
    print(f"registered {info.name} version {info.version} as @{info.alias} ({metrics})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
