"""The dev loop's build: a code-only change of one service, rebuilt by `deployer build SERVICE`.

For each service image: build it once from a copy of services/ (so the repository is never
touched; the dependency layers come from Docker's cache, or are built here the first time),
then ``--rounds`` times append a comment to one of the service's own code files and time the
whole `deployer build SERVICE --context-dir COPY` process. Side by side, the same command with
nothing changed (the content-hash hit: no builder at all) is the baseline; both are printed as
medians, with their ratio. Target: a code-only rebuild <= 10 s with the dependencies cached.

Then the size of each image (``docker image inspect``), next to the sizes measured before the
cuts (cnn-image 2.05 GB, mlflow-server 1.14 GB, sklearn-model 783 MB, minio 451 MB,
gradio-frontend 618 MB, llm-connector 354 MB).

Images are tagged ``mlops-bench/<service>`` (never the ones tests or the stack use).

    .venv/bin/python bench/bench_rebuild.py [--rounds 3] [SERVICE ...]

``--requirements``: a one-line change of a service's requirements file instead (a comment line:
the dependency step runs again, the packages are the same), rebuilt with BuildKit (pip's cache
in a cache mount) and with the legacy builder (every wheel downloaded again), side by side in
one run, per service: the ratio BuildKit / legacy, and the bytes pip downloaded (the build
output's "Downloading" sizes) on each.

    .venv/bin/python bench/bench_rebuild.py --requirements [--rounds 1] [SERVICE ...]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOYER = str(Path(sys.executable).parent / "deployer")
FACTS = REPO / ".testbed" / "facts.json"
OFFLINE = REPO / "templates" / "values.offline.yaml"
CA_DIR = Path("/usr/local/share/ca-certificates")
SERVICES = ("gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server",
            "minio")
#: Sizes before the cuts of the shared dependency step (MB, as `docker images` showed them).
SIZES_BEFORE = {"gradio-frontend": 618, "llm-connector": 354, "sklearn-model": 783,
                "cnn-image": 2050, "mlflow-server": 1140, "minio": 451}
TARGET_S = 10.0


def _values(tmp: Path) -> Path:
    path = tmp / "bench-values.yaml"
    images = {name: f"mlops-bench/{name}:latest" for name in SERVICES}
    path.write_text(yaml.safe_dump({
        "services": {name: {"image": image} for name, image in images.items()},
        "jobs": {"bucket-init": {"image": images["sklearn-model"]}},
        "s3": {"seaweedfs_image": images["minio"]},
    }))
    return path


def _code_file(context: Path) -> Path:
    """One of the service's own Python files (not its requirements: only code changes)."""
    files = sorted(p for p in context.rglob("*.py") if "__pycache__" not in p.parts)
    if not files:
        raise SystemExit(f"no Python file in {context}")
    return files[0]


def _build(argv: list[str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    return took


def _build_output(argv: list[str]) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    return took, proc.stdout + proc.stderr


_DOWNLOAD = re.compile(r"Downloading \S+ \(([\d.]+) (kB|MB|GB)\)")
_UNIT = {"kB": 1e3, "MB": 1e6, "GB": 1e9}


def _downloaded_mb(output: str) -> float:
    """What pip downloaded, from its "Downloading NAME (SIZE)" lines (cached wheels print none)."""
    return sum(float(n) * _UNIT[u] for n, u in _DOWNLOAD.findall(output)) / 1e6


def _copy_services(tmp: Path) -> tuple[Path, Path]:
    """A copy of services/ (the repository is never touched) and the bench's values file."""
    contexts = tmp / "services"
    shutil.copytree(REPO / "services", contexts,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return contexts, _values(tmp)


def requirements_main(args: argparse.Namespace, base: str, certs: list[str]) -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-req-") as tmp_name:
        contexts, values = _copy_services(Path(tmp_name))
        for name in args.services:
            argv = {builder: [DEPLOYER, "build", name, "-v", "--builder", builder, "-f",
                              str(OFFLINE), "-f", str(values), "--base-image", base, *certs,
                              "--context-dir", str(contexts)]
                    for builder in ("buildkit", "legacy")}
            for builder in argv:  # warm: each builder's own layer cache (and BuildKit's mount)
                _build(argv[builder])
            requirements = contexts / name / "requirements.txt"
            times: dict[str, list[float]] = {"buildkit": [], "legacy": []}
            downloads: dict[str, list[float]] = {"buildkit": [], "legacy": []}
            for _ in range(args.rounds):
                for builder in ("legacy", "buildkit"):  # the same change, built by each
                    with requirements.open("a") as handle:
                        handle.write(f"# bench-rebuild {uuid.uuid4().hex}\n")
                    took, output = _build_output(argv[builder])
                    times[builder].append(took)
                    downloads[builder].append(_downloaded_mb(output))
            rows.append((name, *(statistics.median(times[b]) for b in ("buildkit", "legacy")),
                         *(statistics.median(downloads[b]) for b in ("buildkit", "legacy"))))
    print(f"one-line requirements change, rebuilt by `deployer build SERVICE` (median of "
          f"{args.rounds}; whole process), BuildKit vs the legacy builder")
    print(f"{'service':16} {'buildkit':>9} {'legacy':>8} {'ratio':>6} {'pip MB bk':>10} "
          f"{'pip MB legacy':>14}")
    for name, bk, legacy, bk_mb, legacy_mb in rows:
        print(f"{name:16} {bk:8.1f}s {legacy:7.1f}s {bk / legacy:5.2f}x {bk_mb:10.1f} "
              f"{legacy_mb:14.1f}")
    return 0


def _size_mb(image: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requirements", action="store_true",
                        help="a requirements change, BuildKit vs legacy (see above)")
    parser.add_argument("services", nargs="*", default=list(SERVICES))
    args = parser.parse_args()
    base = json.loads(FACTS.read_text())["base_image"]
    certs = [a for c in sorted(CA_DIR.glob("*.crt")) for a in ("--ca-cert", str(c))]
    if args.requirements:
        return requirements_main(args, base, certs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp_name:
        contexts, values = _copy_services(Path(tmp_name))
        for name in args.services:
            argv = [DEPLOYER, "build", name, "-f", str(OFFLINE), "-f", str(values),
                    "--base-image", base, *certs, "--context-dir", str(contexts)]
            first = _build(argv)  # the dependency layers: from the cache, or built now
            code = _code_file(contexts / name)
            changed, unchanged = [], []
            for _ in range(args.rounds):
                with code.open("a") as handle:
                    handle.write(f"# bench-rebuild {uuid.uuid4().hex}\n")
                changed.append(_build(argv))
                unchanged.append(_build(argv))
            image = f"mlops-bench/{name}:latest"
            rows.append((name, first, statistics.median(changed),
                         statistics.median(unchanged), _size_mb(image),
                         code.relative_to(contexts)))
    print(f"code-only rebuild by `deployer build SERVICE` (median of {args.rounds}; whole "
          f"process; target <= {TARGET_S:.0f} s), baseline: the same with nothing changed")
    print(f"{'service':16} {'first':>7} {'rebuild':>8} {'no-op':>7} {'ratio':>6} "
          f"{'size MB':>8} {'before':>7}  changed file")
    for name, first, rebuild, noop, size, code_path in rows:
        before = SIZES_BEFORE.get(name)
        flag = "" if rebuild <= TARGET_S else "  (over target)"
        print(f"{name:16} {first:6.1f}s {rebuild:7.1f}s {noop:6.1f}s {rebuild / noop:5.1f}x "
              f"{size:8.0f} {before if before else '-':>7}  {code_path}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
