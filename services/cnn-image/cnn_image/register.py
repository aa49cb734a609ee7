"""``python -m cnn_image.register FILE``: register a Keras model file (``.h5`` / ``.keras``) as a
new version of ``MODEL_NAME``, with its provenance as tags, and optionally point an alias at it.

For a model trained elsewhere (offline there is no CIFAR-10 to train on). The served contract
is always the same, whatever the file: 32x32 RGB pixels 0..255 in, class probabilities out. So
what the file expects and answers is declared, and adapted once here, never per request:

- ``--input-scaling 0-1``: the file was trained on pixels / 255: a Rescaling layer goes first;
- ``--outputs logits``: its last layer gives logits (e.g. trained with
  ``from_logits=True``): a Softmax layer goes last, so the answers are that network's own
  probabilities (not recalibrated on data).

No metric is logged: nothing was measured here. Tags on the run and the version: the source
(``--source``, e.g. the package it ships in), the file's SHA-256, ``--licence``, the input
scaling and the output transform. Exit codes: 0 registered (or ``--if-missing`` and the alias
exists), 2 bad file or arguments, 3 MLflow/S3 failed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_serving.quiet import quiet_libraries
from mlops_serving.serve import LOG_FORMAT
from mlops_serving.settings import SettingsError
from pydantic import ValidationError

from cnn_image.cifar import SIDE
from cnn_image.config import Settings

log = logging.getLogger(__name__)

#: CIFAR-10's classes in label order (batches.meta of the official archive).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
OUTPUT_TRANSFORMS = {
    "probabilities": "the file's own outputs (already probabilities)",
    "logits": "softmax over the file's outputs (its logits)",
}
INPUT_SCALINGS = {"0-255": "pixels 0..255 as given", "0-1": "pixels / 255 (a Rescaling layer)"}


class RegisterError(ValueError):
    """The file or the arguments cannot make a servable model; the message says why and how."""


@dataclass(frozen=True)
class Provenance:
    """Where a model file comes from and what it expects: tags of the run and the version."""

    file: Path
    sha256: str
    source: str
    licence: str
    input_scaling: str
    outputs: str

    def tags(self) -> dict[str, str]:
        """``source.*`` / ``serving.*`` tags (MLflow tag values are strings)."""
        return {"source.file": self.file.name, "source.file_sha256": self.sha256,
                "source.package": self.source, "source.licence": self.licence,
                "serving.input_scaling": self.input_scaling,
                "serving.outputs": OUTPUT_TRANSFORMS[self.outputs]}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_file(path: Path) -> Any:
    """The Keras model in ``path`` (compile=False: only inference is needed, and an old file's
    optimizer or loss config need not load in this Keras)."""
    import keras  # heavy: only once the arguments are checked

    if not path.is_file():
        raise RegisterError(f"{path}: no such file (expected a Keras .h5 or .keras model)")
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001 - keras raises many types for unreadable files
        raise RegisterError(f"{path}: not a loadable Keras model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc


def servable(base: Any, n_classes: int, input_scaling: str, outputs: str, path: Path) -> Any:
    """``base`` wrapped to take 0..255 RGB 32x32 pixels and answer ``n_classes`` probabilities."""
    import keras

    shape_in = tuple(base.input_shape[1:])
    if shape_in != (SIDE, SIDE, 3):
        raise RegisterError(f"{path}: input shape {shape_in}, expected ({SIDE}, {SIDE}, 3) "
                            "(32x32 RGB)")
    n_out = int(base.output_shape[-1])
    if n_out != n_classes:
        raise RegisterError(f"{path}: {n_out} outputs but {n_classes} class names "
                            "(give --class-names in output order)")
    inputs = keras.Input(shape=(SIDE, SIDE, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs) if input_scaling == "0-1" else inputs
    x = base(x)
    if outputs == "logits":
        x = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, x, name=f"{base.name}_served")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cnn_image.register",
        description="Register a Keras model file as a new version of MODEL_NAME (MLflow at "
                    "MLFLOW_TRACKING_URI), provenance as tags; serve it via --alias.")
    p.add_argument("file", type=Path, help="the Keras model file (.h5 or .keras)")
    p.add_argument("--alias", default=None,
                   help="point this alias at the new version (e.g. champion)")
    p.add_argument("--if-missing", action="store_true",
                   help="do nothing when --alias already points at a version (idempotent runs)")
    p.add_argument("--outputs", choices=sorted(OUTPUT_TRANSFORMS), required=True,
                   help="what the file's last layer gives: probabilities, or logits (softmax "
                        "is added)")
    p.add_argument("--input-scaling", choices=sorted(INPUT_SCALINGS), required=True,
                   help="the pixel range the file was trained on")
    p.add_argument("--class-names", default=",".join(CIFAR10_CLASSES),
                   help="comma-separated, in output order (default: CIFAR-10's)")
    p.add_argument("--source", required=True,
                   help="where the file comes from, e.g. a package name==version")
    p.add_argument("--licence", required=True, help="the file's licence, e.g. BSD-3-Clause")
    return p


def register(args: argparse.Namespace, settings: Settings) -> str:
    """Log the wrapped model in a run, register it, tag the version, move the alias; a line
    saying what was done."""
    import keras
    import mlflow
    import mlflow.tensorflow
    from mlops_serving.registry import champion, client_for
    from tensorflow import __version__ as tf_version

    from cnn_image.flavour import signature

    names = [n.strip() for n in args.class_names.split(",") if n.strip()]
    if len(set(names)) != len(names) or not names:
        raise RegisterError(f"--class-names {args.class_names!r}: expected distinct names")
    client = client_for(settings)
    if args.alias and args.if_missing:
        current = champion(settings.model_copy(update={"model_alias": args.alias}), client)
        if current is not None:
            return (f"ok: {settings.model_name}@{args.alias} is version {current.version} "
                    "already (--if-missing)")
    base = load_file(args.file)
    model = servable(base, len(names), args.input_scaling, args.outputs, args.file)
    prov = Provenance(args.file, sha256_of(args.file), args.source, args.licence,
                      args.input_scaling, args.outputs)
    metadata = {"class_names": names, "outputs": OUTPUT_TRANSFORMS[args.outputs],
                "input_scaling": args.input_scaling, "provenance": prov.tags()}
    mlflow.set_experiment(settings.mlflow_experiment_name)
    with mlflow.start_run(run_name=f"{settings.model_name}-register") as run:
        mlflow.set_tags(prov.tags())
        mlflow.log_params({"input_scaling": args.input_scaling, "outputs": args.outputs,
                           "n_classes": len(names), "params": base.count_params()})
        logged = mlflow.tensorflow.log_model(
            model, name="model", registered_model_name=settings.model_name,
            signature=signature(len(names)), metadata=metadata,
            pip_requirements=[f"tensorflow-cpu=={tf_version}", f"keras=={keras.__version__}"])
    version = str(logged.registered_model_version)
    for key, value in prov.tags().items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    line = f"registered {settings.model_name} version {version} (run {run.info.run_id})"
    if args.alias:
        client.set_registered_model_alias(settings.model_name, args.alias, version)
        line += f" as @{args.alias}"
    return f"{line}; outputs: {OUTPUT_TRANSFORMS[args.outputs]}; no metrics (none measured)"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, check, register; one line of output (or one error line and an exit code)."""
    quiet_libraries()  # MLflow and Keras are imported after this
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    settings.export_environment()
    try:
        print(register(args, settings))
    except RegisterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - MLflow/S3 failures: one line + exit code
        print(f"error: registering in MLflow at {settings.mlflow_tracking_uri} failed: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
