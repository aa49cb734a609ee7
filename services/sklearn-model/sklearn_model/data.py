"""The Kaggle Titanic ``train.csv`` format: loading, checking, and the model's feature frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from mlops_serving.errors import DatasetError as _DatasetError

# Kaggle's train.csv header, in order.
CSV_COLUMNS = (
    "PassengerId", "Survived", "Pclass", "Name", "Sex", "Age",
    "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked",
)
TARGET = "Survived"
NUMERIC_FEATURES = ("Age", "SibSp", "Parch", "Fare")
CATEGORICAL_FEATURES = ("Pclass", "Sex", "Embarked")
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES


class DatasetError(_DatasetError):
    """The CSV is missing or not in the Titanic train.csv format; the message says which."""


def load_titanic(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Read a Titanic train.csv: the feature frame (:data:`FEATURES`) and the 0/1 target."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (set TITANIC_CSV to the Kaggle train.csv)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; expected the Kaggle Titanic "
            f"train.csv header: {','.join(CSV_COLUMNS)}"
        )
    if frame.empty:
        raise DatasetError(f"{path}: no rows")
    target = frame[TARGET]
    bad = ~target.isin([0, 1])
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2  # + header, 1-based
        raise DatasetError(
            f"{path}: line {line}: Survived must be 0 or 1, got {target[bad].iloc[0]}"
        )
    return features_frame(frame.to_dict("records")), target.astype(int)


def features_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The model's input frame from records keyed by the CSV column names (extra keys ignored).

    Missing values become NaN, which the pipeline imputes.
    """
    frame = pd.DataFrame.from_records(list(rows))
    for col in FEATURES:
        if col not in frame.columns:
            frame[col] = None
    out = frame[list(FEATURES)].copy()
    for col in NUMERIC_FEATURES:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    # Categories as strings (Pclass 1/2/3 is a category, not a magnitude); NaN stays missing.
    for col in CATEGORICAL_FEATURES:
        out[col] = out[col].map(lambda v: None if v is None or v != v else str(v)).astype(object)
    return out
