"""The Kaggle Titanic ``train.csv`` format: loading, checking, and the model's feature frame."""

from __future__ import annotations

import re
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
#: What the current pipeline uses: the CSV's columns plus two derived from them, ``Title``
#: (from ``Name``) and ``FamilySize`` (SibSp + Parch + the passenger).
NUMERIC_FEATURES = ("Age", "Fare", "FamilySize")
CATEGORICAL_FEATURES = ("Pclass", "Sex", "Embarked", "Title")
#: Every column of the feature frame: the used ones plus SibSp and Parch, which versions
#: registered before the derived features read (their pipelines pick their own columns).
RAW_NUMERIC = ("Age", "SibSp", "Parch", "Fare")
FRAME_NUMERIC = (*RAW_NUMERIC, "FamilySize")
FEATURES = FRAME_NUMERIC + CATEGORICAL_FEATURES

# Titles of the passenger list folded into the four common ones or "Rare" (the same social
# group: Mlle/Ms are unmarried, Mme married; the others are few, mostly officers, clergy and
# nobility).
_TITLE_GROUPS = {"Mr": "Mr", "Mrs": "Mrs", "Miss": "Miss", "Master": "Master", "Mlle": "Miss",
                 "Ms": "Miss", "Mme": "Mrs"}
_TITLE = re.compile(r",\s*([^.,]+?)\.")
BOY_AGE = 15  # "Master" is the list's title of boys


def title_of(name: object, sex: object, age: object) -> str | None:
    """The passenger's title from ``Surname, Title. Given names`` (the list's format), grouped.

    Without a name (the API's ``name`` is optional) the title is inferred from sex and age as
    the list gives it: Master for a boy, Mr for a man, Miss for a girl or a woman of unknown
    age, Mrs for a woman. None when sex is unknown too (then imputed)."""
    if isinstance(name, str):
        match = _TITLE.search(name)
        if match:
            return _TITLE_GROUPS.get(match.group(1).strip(), "Rare")
    years = float(age) if isinstance(age, int | float) and age == age else None  # NaN: unknown
    if sex == "male":
        return "Master" if years is not None and years < BOY_AGE else "Mr"
    if sex == "female":
        return "Mrs" if years is not None and years >= 18 else "Miss"
    return None


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
    """The model's input frame from records keyed by the CSV column names (extra keys ignored),
    with the derived ``Title`` and ``FamilySize``.

    Missing values become NaN, which the pipeline imputes (a missing SibSp/Parch counts 0 in
    the family size, as the API's defaults do).
    """
    frame = pd.DataFrame.from_records(list(rows))
    for col in (*CSV_COLUMNS, *FEATURES):
        if col not in frame.columns:
            frame[col] = None
    out = frame[[*RAW_NUMERIC, "Pclass", "Sex", "Embarked"]].copy()
    for col in RAW_NUMERIC:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    out["FamilySize"] = out["SibSp"].fillna(0) + out["Parch"].fillna(0) + 1
    out["Title"] = [title_of(n, s, a) for n, s, a in
                    zip(frame["Name"], frame["Sex"], out["Age"], strict=True)]
    out = out[list(FEATURES)]
    # Categories as strings (Pclass 1/2/3 is a category, not a magnitude); NaN stays missing.
    for col in CATEGORICAL_FEATURES:
        out[col] = out[col].map(lambda v: None if v is None or v != v else str(v)).astype(object)
    return out
