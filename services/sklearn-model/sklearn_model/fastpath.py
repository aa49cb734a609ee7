"""A numpy twin of a fitted Titanic pipeline, for /predict.

``Pipeline.predict_proba`` on one passenger costs tens of milliseconds, nearly all of it
overhead: a pandas frame, the ColumnTransformer's per-call checks and DataFrame slicing, and
the forest calling 300 trees one by one through joblib, each re-validating its input. This
module reads the fitted parameters once (the imputers' fill values, the encoder's categories,
every tree's nodes) and computes the same numbers with a handful of numpy operations:

- the feature matrix: each ColumnTransformer block in order; numbers with NaN replaced by the
  imputer's statistic, categories imputed then one-hot encoded (unseen ones: all zeros, as
  ``handle_unknown="ignore"`` does);
- the forest: all trees flattened into one node table. Small inputs walk it for every (row,
  tree) at once, one level per step; large ones call each tree's compiled ``apply``. Either
  way the leaves' class fractions are normalised and summed tree by tree in the forest's order
  and divided by the number of trees, as scikit-learn does, so the probabilities are the same
  floats, not merely close (the test compares them bit for bit).

Anything it does not recognise (another imputer setting, a dropped or infrequent category, a
passthrough block, another estimator) raises :class:`Unsupported` when compiled, and the
service keeps calling the pipeline itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

from sklearn_model.data import title_of

__all__ = ["FastPipeline", "Unsupported", "feature_columns"]

#: Up to this many rows the whole forest is walked at once ((rows x trees) nodes per level);
#: above it the per-tree compiled ``apply`` is cheaper (measured: 0.1 ms vs 1 ms for one row,
#: 17 ms vs 37 ms for 1000).
VECTOR_ROWS = 64


class Unsupported(Exception):
    """The fitted pipeline has a part this module does not reproduce (the message says which)."""


def _number(value: Any) -> float:
    """A numeric field as the feature frame reads it (None and NaN: missing)."""
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number or None, got {value!r}")
    return float(value)


def _category(value: Any) -> str | None:
    """A categorical field as the feature frame reads it: text, or None when missing."""
    return None if value is None or value != value else str(value)  # NaN != NaN


def feature_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The feature frame's columns (see :func:`sklearn_model.data.features_frame`) as lists,
    from records keyed by the CSV column names, without pandas: numbers as floats (NaN when
    missing), categories as text or None, and the derived FamilySize and Title."""
    get = [row.get for row in rows]
    cols: dict[str, list[Any]] = {c: [_number(g(c)) for g in get]
                                  for c in ("Age", "SibSp", "Parch", "Fare")}
    cols["FamilySize"] = [(0.0 if s != s else s) + (0.0 if p != p else p) + 1.0
                          for s, p in zip(cols["SibSp"], cols["Parch"], strict=True)]
    for c in ("Pclass", "Sex", "Embarked"):
        cols[c] = [_category(g(c)) for g in get]
    cols["Title"] = [title_of(g("Name"), g("Sex"), a) for g, a in zip(get, cols["Age"],
                                                                       strict=True)]
    return cols


@dataclass(frozen=True)
class _Numeric:
    """A SimpleImputer block: its columns and the value each one's NaN becomes."""

    columns: tuple[str, ...]
    fill: np.ndarray

    def write(self, cols: Mapping[str, list[Any]], out: np.ndarray, start: int) -> None:
        block = np.array([cols[c] for c in self.columns], dtype=np.float64).T
        out[:, start:start + len(self.columns)] = np.where(np.isnan(block), self.fill, block)


@dataclass(frozen=True)
class _OneHot:
    """A most-frequent/constant imputer + one-hot encoder block: per column its fill value and
    each category's output position."""

    columns: tuple[str, ...]
    fill: tuple[str, ...]
    slots: tuple[dict[str, int], ...]
    width: int

    def write(self, cols: Mapping[str, list[Any]], out: np.ndarray, start: int) -> None:
        for column, fill, slots in zip(self.columns, self.fill, self.slots, strict=True):
            for i, value in enumerate(cols[column]):
                slot = slots.get(fill if value is None else value)
                if slot is not None:  # unseen category: no column set
                    out[i, start + slot] = 1.0


_Block = _Numeric | _OneHot


def _imputer_ok(imputer: Any) -> SimpleImputer:
    if not isinstance(imputer, SimpleImputer) or imputer.add_indicator:
        raise Unsupported(f"imputer {imputer!r}")
    missing = imputer.missing_values
    if not (isinstance(missing, float) and missing != missing):
        raise Unsupported(f"imputer missing_values={missing!r} (only NaN/None)")
    return imputer


def _numeric_block(imputer: Any, columns: tuple[str, ...]) -> _Numeric:
    fill = np.asarray(_imputer_ok(imputer).statistics_, dtype=np.float64)
    if fill.shape != (len(columns),) or np.isnan(fill).any():  # an all-missing column
        raise Unsupported(f"numeric imputer statistics {fill!r} for {columns}")
    return _Numeric(columns, fill)


def _onehot_block(steps: Pipeline, columns: tuple[str, ...]) -> _OneHot:
    if len(steps.steps) != 2:
        raise Unsupported(f"categorical steps {steps!r}")
    imputer, encoder = _imputer_ok(steps.steps[0][1]), steps.steps[1][1]
    if (not isinstance(encoder, OneHotEncoder) or encoder.handle_unknown != "ignore"
            or encoder.drop_idx_ is not None or getattr(encoder, "_infrequent_enabled", False)
            or encoder.sparse_output):
        raise Unsupported(f"encoder {encoder!r}")
    fill = tuple(imputer.statistics_)
    cats = [list(c) for c in encoder.categories_]
    if not all(isinstance(v, str) for v in (*fill, *(v for c in cats for v in c))):
        raise Unsupported("categories that are not all text")
    slots, offset = [], 0
    for cat in cats:
        slots.append({v: offset + i for i, v in enumerate(cat)})
        offset += len(cat)
    return _OneHot(columns, fill, tuple(slots), offset)


def _blocks(prep: Any) -> list[_Block]:
    if not isinstance(prep, ColumnTransformer) or prep.sparse_output_:
        raise Unsupported(f"preprocessing {prep!r}")
    blocks: list[_Block] = []
    for name, part, columns in prep.transformers_:
        if part == "drop" or (isinstance(columns, list) and not columns):
            continue  # dropped columns (the remainder here) add nothing to the matrix
        if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
            raise Unsupported(f"block {name!r} selects columns by {columns!r}")
        cols = tuple(columns)
        if isinstance(part, SimpleImputer):
            blocks.append(_numeric_block(part, cols))
        elif isinstance(part, Pipeline):
            blocks.append(_onehot_block(part, cols))
        else:
            raise Unsupported(f"block {name!r}: {part!r}")
    return blocks


def _width(block: _Block) -> int:
    return len(block.columns) if isinstance(block, _Numeric) else block.width


class FlatForest:
    """Every tree of a fitted forest in one node table: children (a leaf points at itself),
    split feature and threshold, and each node's fraction of class ``classes_[column]``
    normalised as the tree's ``predict_proba`` normalises it. Only that column is kept: a
    forest adds its trees' probabilities column by column, so one column alone comes out the
    same, at a tenth of the cost of gathering both from the node table."""

    def __init__(self, forest: Any, column: int) -> None:
        if not (isinstance(forest, RandomForestClassifier | ExtraTreesClassifier)
                and forest.n_outputs_ == 1
                and all(isinstance(e, DecisionTreeClassifier | ExtraTreeClassifier)
                        for e in forest.estimators_)):
            raise Unsupported(f"estimator {forest!r}")
        self.trees = [e.tree_ for e in forest.estimators_]
        counts = [t.node_count for t in self.trees]
        self.starts = np.cumsum([0, *counts[:-1]]).astype(np.intp)
        leaf = np.concatenate([t.children_left == -1 for t in self.trees])
        own = np.arange(sum(counts), dtype=np.intp)
        self.left = np.where(leaf, own, np.concatenate(
            [t.children_left + s for t, s in zip(self.trees, self.starts, strict=True)]))
        self.right = np.where(leaf, own, np.concatenate(
            [t.children_right + s for t, s in zip(self.trees, self.starts, strict=True)]))
        self.feature = np.where(leaf, 0, np.concatenate([t.feature for t in self.trees]))
        self.threshold = np.concatenate([t.threshold for t in self.trees])
        n_classes = int(forest.n_classes_)
        proba = np.concatenate([t.value[:, 0, :n_classes] for t in self.trees])
        norm = proba.sum(axis=1)[:, np.newaxis]
        norm[norm == 0.0] = 1.0
        self.proba = np.ascontiguousarray((proba / norm)[:, column])
        self.depth = max(t.max_depth for t in self.trees)
        self.n_features = int(forest.n_features_in_)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: node ids, shape (trees, rows)."""
        x32 = np.ascontiguousarray(x, dtype=np.float32)  # the trees compare float32 inputs
        if len(x32) > VECTOR_ROWS:
            return np.stack([t.apply(x32) for t in self.trees]) + self.starts[:, np.newaxis]
        node = np.repeat(self.starts[:, np.newaxis], len(x32), axis=1)
        rows = np.arange(len(x32))[np.newaxis, :]
        for _ in range(self.depth):
            go_left = x32[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return node

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The class's probability per row: the trees' added up one after another in the
        forest's order, then divided by their number. ``accumulate`` always adds in sequence;
        ``sum``/``reduce`` may add pairwise (seen for one row), which rounds differently."""
        total: np.ndarray = np.add.accumulate(self.proba[self.leaves(x)], axis=0)[-1]
        return total / len(self.trees)


class FastPipeline:
    """The fitted ``prep`` + ``forest`` pipeline of :func:`sklearn_model.model.build_pipeline`
    (or any version with the same kinds of steps), computed with numpy."""

    def __init__(self, pipeline: Any) -> None:
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise Unsupported(f"model {type(pipeline).__name__} is not a prep + forest pipeline")
        classes = list(getattr(pipeline, "classes_", []))
        if 1 not in classes:
            raise Unsupported(f"classes {classes} (no survived = 1)")
        self.blocks = _blocks(pipeline.steps[0][1])
        self.forest = FlatForest(pipeline.steps[1][1], classes.index(1))
        self.width = sum(_width(b) for b in self.blocks)
        if self.width != self.forest.n_features:
            raise Unsupported(f"{self.width} features prepared, the forest reads "
                              f"{self.forest.n_features}")

    def transform(self, cols: Mapping[str, list[Any]]) -> np.ndarray:
        """The matrix the pipeline's ColumnTransformer gives for these columns."""
        n = len(next(iter(cols.values())))
        out = np.zeros((n, self.width), dtype=np.float64)
        start = 0
        for block in self.blocks:
            block.write(cols, out, start)
            start += _width(block)
        return out

    def survival_probability(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """P(Survived = 1) per record (keyed by the CSV column names, as ``as_record`` gives)."""
        return self.forest.predict(self.transform(feature_columns(rows)))
