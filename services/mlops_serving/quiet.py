"""Keep a healthy service's log to the lines that mean something.

MLflow imports GitPython (to tag runs with a commit), which, with no ``git`` on PATH (as in the
images), warns over a dozen lines on every import; TensorFlow prints its C++ banner (CPU
features, oneDNN) and absl's "log messages before InitializeLog" line. None of it is about the
service. Set before those libraries are imported (they read the variables once), and only where
the operator has not set them (``setdefault``: turning them back on is one variable away).
"""

from __future__ import annotations

import os

QUIET_ENV = {
    "GIT_PYTHON_REFRESH": "quiet",  # GitPython: no warning when git is missing
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow C++: warnings and errors only
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no progress bars in a log file
}


def quiet_libraries() -> None:
    """Put :data:`QUIET_ENV` into the process environment where unset."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
