"""Property-based fuzzing of the three APIs (schemathesis over each one's own OpenAPI document).

Each service runs as the real app, as a process on 127.0.0.1 (``python -m <package>``): the
sklearn-model and cnn-image with a model trained at start into the bed's MLflow (the real Titanic
CSV; a small CIFAR-10-format archive), the llm-connector against the Gemini-protocol server of
tests/services/fake_gemini.py. For every operation schemathesis generates valid and invalid
requests (wrong types, out-of-range values, missing and extra fields, bad query parameters);
a hand-written table adds what a schema-driven generator does not send: bodies that are not
JSON, not the declared media type, non-finite numbers, deep nesting, oversized text.

The rule for every answer: never a 5xx, and every 4xx says what was wrong (a FastAPI ``detail``
naming the field, or the service's ``{"error": {"detail": ...}}``). Runs are bounded in examples
and in wall time; the figures are printed at the end of the test run.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.figures import record

# The service tests' helpers, as the modules those tests import (one port registry, one set of
# import paths for the services' packages).
sys.path.insert(0, str(Path(__file__).parent / "services"))
from fake_gemini import FakeGeminiServer  # noqa: E402
from model_fixtures import bed_service_env, run_tag, titanic_csv  # noqa: E402, F401
from svcutil import SERVICES, ServiceProcess, free_port, wait_http  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Generated requests per operation and generation mode, and the wall-time budget of one API
#: (all its operations and modes together): whichever ends first stops the run.
MAX_EXAMPLES = 80
BUDGET_S = 15.0
KEY = "AIzaFUZZ-" + uuid.uuid4().hex
#: An answer body longer than this is cut in failure reports.
SHOWN = 300


@dataclass
class FuzzReport:
    """What one API answered: counts by status, and the answers that broke the rule."""

    api: str
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def check(self, what: str, response: requests.Response) -> None:
        self.sent += 1
        self.statuses[response.status_code] += 1
        problem = rule_broken(response)
        if problem and len(self.broken) < 10:
            self.broken.append(f"{what} -> {response.status_code}: {problem}; body: "
                               f"{response.text[:SHOWN]!r}")

    def summary(self) -> str:
        by_class = Counter(f"{code // 100}xx" for code in self.statuses.elements())
        seconds = time.monotonic() - self.started
        return (f"{self.api}: {self.sent} requests in {seconds:.0f} s, "
                f"{by_class.get('2xx', 0)} 2xx, {by_class.get('4xx', 0)} 4xx, "
                f"{by_class.get('5xx', 0)} 5xx, {len(self.broken)} broke the rule; statuses "
                + ", ".join(f"{c}x{n}" for c, n in sorted(self.statuses.items())))


def rule_broken(response: requests.Response) -> str | None:
    """Why this answer breaks the rule (None: it keeps it)."""
    code = response.status_code
    if code >= 500:
        return "server error"
    if code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return "a 4xx whose body is not JSON"
    if not explains(body):
        return "a 4xx whose body does not say what was wrong"
    return None


def explains(body: Any) -> bool:
    """A FastAPI ``detail`` (text, or errors each with a location and a message) or the
    llm-connector's ``{"error": {"detail": text}}``."""
    if not isinstance(body, dict):
        return False
    detail = body.get("detail")
    if isinstance(body.get("error"), dict):
        detail = body["error"].get("detail")
    if isinstance(detail, str):
        return bool(detail.strip())
    if isinstance(detail, list) and detail:
        return all(isinstance(e, dict) and e.get("msg") and e.get("loc") for e in detail)
    return False


# ---------------------------------------------------------------------------------------------
# The services, each a real process on loopback


@pytest.fixture(scope="module")
def model_env(bed_service_env: dict[str, str], run_tag: str,  # noqa: F811
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**bed_service_env, "TRAIN_IF_MISSING": "true", "STARTUP_WAIT_SECONDS": "60",
            "MODEL_POLL_SECONDS": "3600", "LOG_LEVEL": "warning",
            "MODEL_DIR": str(tmp_path_factory.mktemp("fuzz-models"))}


def _wait_ready(svc: ServiceProcess, timeout_s: float) -> None:
    """Until /health says ready (a first model trained and registered, then loaded)."""
    deadline = time.monotonic() + timeout_s
    status = "?"
    while time.monotonic() < deadline:
        status = requests.get(svc.url + "/health", timeout=5).json().get("status", "?")
        if status == "ready":
            return
        time.sleep(1)
    raise AssertionError(f"{svc.name} not ready after {timeout_s:g} s (status {status}):\n"
                         f"{svc.logs()[-3000:]}")


@pytest.fixture(scope="module")
def sklearn_api(model_env: dict[str, str], run_tag: str, titanic_csv: Path,  # noqa: F811
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**model_env, "MODEL_NAME": f"fuzz-titanic-{run_tag}",
           "MLFLOW_EXPERIMENT_NAME": f"fuzz-titanic-{run_tag}", "TITANIC_CSV": str(titanic_csv),
           "N_ESTIMATORS": "20"}
    svc = ServiceProcess("sklearn-model", free_port(), env, tmp_path_factory.mktemp("fuzz-sk"))
    with svc:
        _wait_ready(svc, 180)
        yield svc.url


@pytest.fixture(scope="module")
def cnn_api(model_env: dict[str, str], run_tag: str,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import cnn_image.cifar as cifar
    from svc_util import write_colour_archive

    data = write_colour_archive(cifar, tmp_path_factory.mktemp("fuzz-cifar"), per_batch=60)
    env = {**model_env, "MODEL_NAME": f"fuzz-cnn-{run_tag}",
           "MLFLOW_EXPERIMENT_NAME": f"fuzz-cnn-{run_tag}", "CIFAR10_DIR": str(data),
           "EPOCHS": "1", "TRAIN_LIMIT": "300", "BATCH_SIZE": "64",
           "MAX_UPLOAD_BYTES": str(256 * 1024)}
    svc = ServiceProcess("cnn-image", free_port(), env, tmp_path_factory.mktemp("fuzz-cnn"))
    with svc:
        _wait_ready(svc, 300)
        yield svc.url


@pytest.fixture(scope="module")
def llm_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with FakeGeminiServer(free_port(), api_key=KEY) as gemini:
        env = {"GOOGLE_API_KEY": KEY, "GOOGLE_API_BASE_URL": gemini.url,
               "GOOGLE_MODEL": "gemini-fuzz", "RETRY_ATTEMPTS": "1", "LOG_LEVEL": "warning",
               "MAX_PROMPT_CHARS": "2000"}
        svc = ServiceProcess("llm-connector", free_port(), env,
                             tmp_path_factory.mktemp("fuzz-llm"))
        with svc:
            yield svc.url
            assert KEY not in svc.logs(), "the API key appeared in the service log"


# ---------------------------------------------------------------------------------------------
# Generated requests


def fuzz_api(api: str, base_url: str) -> FuzzReport:
    """Every operation of ``base_url``'s OpenAPI, positive then negative examples, within
    MAX_EXAMPLES per operation and mode and BUDGET_S for the whole API."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.result import Ok

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport(api)
    deadline = report.started + BUDGET_S
    session = requests.Session()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"{api}: its OpenAPI document is invalid: {result.err()}"
        operations.append(result.ok())
    assert operations, f"{api}: no operation in its OpenAPI document"
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for operation in operations:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                      derandomize=True, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            def send(case: Any) -> None:
                if time.monotonic() > deadline:
                    return  # the budget is spent: the remaining examples send nothing
                response = case.call(base_url=base_url, session=session, timeout=30)
                report.check(f"{case.as_curl_command()}", response)

            try:
                send()
            except Unsatisfiable:
                # Nothing to get wrong (e.g. GET /health has no parameters or body).
                assert mode == GenerationMode.NEGATIVE, f"{api}: no valid {operation.label}"
    session.close()
    return report


# ---------------------------------------------------------------------------------------------
# What a schema-driven generator does not send: raw bodies


@dataclass(frozen=True)
class Raw:
    id: str
    content_type: str | None
    body: bytes


NOT_JSON = [
    Raw("text-plain", "text/plain", b"hello"),
    Raw("truncated-json", "application/json", b'{"prompt": "hi'),
    Raw("empty-body", "application/json", b""),
    Raw("json-null", "application/json", b"null"),
    Raw("json-number", "application/json", b"42"),
    Raw("json-string", "application/json", b'"a string"'),
    Raw("json-empty-list", "application/json", b"[]"),
    Raw("json-nan", "application/json", b"NaN"),
    Raw("xml", "application/xml", b"<passenger><pclass>1</pclass></passenger>"),
    Raw("form", "application/x-www-form-urlencoded", b"pclass=1&sex=male"),
    Raw("no-content-type", None, b'{"pclass": 1}'),
    Raw("not-utf8", "application/json", b'{"prompt": "\xff\xfe"}'),
    Raw("deep-nesting", "application/json", b"[" * 5000 + b"]" * 5000),
    Raw("binary-junk", "application/octet-stream", bytes(range(256)) * 64),
]
#: Per API: JSON bodies valid but for one field set to a non-finite or absurd number; Python's
#: JSON reader takes NaN/Infinity literals, and an error that echoes them back cannot be
#: written as JSON (that was the 500).
NUMBERS = {
    "sklearn-model": [
        ("/predict", b'{"pclass": 1, "sex": "female", "age": NaN}'),
        ("/predict", b'{"pclass": 1, "sex": "female", "fare": Infinity}'),
        ("/predict", b'[{"pclass": 1, "sex": "male", "age": -Infinity}]'),
        ("/predict", b'{"pclass": 1, "sex": "male", "age": 1e999}'),
        ("/predict", b'{"pclass": NaN, "sex": "male"}'),
        ("/predict", b'{"pclass": 1, "sex": "male", "sibsp": 1e20}'),
        ("/predict", b'{"pclass": 1, "sex": "male", "parch": 123456789012345678901234567890}'),
    ],
    "llm-connector": [
        ("/chat", b'{"prompt": "hi", "temperature": NaN}'),
        ("/chat", b'{"prompt": "hi", "temperature": Infinity}'),
        ("/generate", b'{"prompt": "hi", "max_output_tokens": 1e400}'),
        ("/chat", b'{"prompt": "hi", "max_output_tokens": 99999999999999999999999}'),
        ("/chat", b'{"prompt": "' + b"x" * 100_000 + b'"}'),
    ],
    "cnn-image": [],
}
POSTS = {"sklearn-model": ["/predict"], "cnn-image": ["/predict"],
         "llm-connector": ["/chat", "/generate"]}


def raw_requests(api: str, base_url: str, report: FuzzReport) -> None:
    for path in POSTS[api]:
        for raw in NOT_JSON:
            headers = {"content-type": raw.content_type} if raw.content_type else {}
            response = requests.post(base_url + path, data=raw.body, headers=headers, timeout=30)
            report.check(f"raw {raw.id} POST {path}", response)
    for path, body in NUMBERS[api]:
        response = requests.post(base_url + path, data=body,
                                 headers={"content-type": "application/json"}, timeout=30)
        report.check(f"number POST {path} {body[:60]!r}", response)
    if api == "cnn-image":
        cnn_uploads(base_url, report)


def cnn_uploads(base_url: str, report: FuzzReport) -> None:
    """Multipart uploads a generator from the schema does not make: not images, truncated and
    huge images, a decompression bomb, a wrong field name, bad top_k."""
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(png, format="PNG")
    good = png.getvalue()
    response = requests.post(base_url + "/predict", files={"file": ("a.png", good, "image/png")},
                             timeout=60)
    report.check("upload a valid PNG", response)
    if response.status_code != 200:
        report.broken.append(f"a valid PNG was refused: {response.status_code} {response.text}")
    uploads: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        # An 8x8 PNG whose header claims 30000 x 30000 px (2.7 GB decoded): refused from the
        # header, before any pixel is decoded.
        ("decompression-bomb", {"file": ("bomb.png", _claimed_size(good, 30000), "image/png")},
         {}),
        ("big-claimed-size", {"file": ("big.png", _claimed_size(good, 9000), "image/png")}, {}),
        ("text-file", {"file": ("a.png", b"not an image", "image/png")}, {}),
        ("truncated-png", {"file": ("a.png", good[: len(good) // 2], "image/png")}, {}),
        ("empty-file", {"file": ("a.png", b"", "image/png")}, {}),
        ("too-large", {"file": ("a.png", b"\x89PNG" + b"\0" * (300 * 1024), "image/png")}, {}),
        ("wrong-field", {"image": ("a.png", good, "image/png")}, {}),
        ("top-k-zero", {"file": ("a.png", good, "image/png")}, {"top_k": "0"}),
        ("top-k-words", {"file": ("a.png", good, "image/png")}, {"top_k": "many"}),
        ("top-k-huge", {"file": ("a.png", good, "image/png")}, {"top_k": "1e9"}),
    ]
    for what, files, params in uploads:
        response = requests.post(base_url + "/predict", files=files, params=params, timeout=60)
        report.check(f"upload {what}", response)


def _claimed_size(png: bytes, side: int) -> bytes:
    """``png`` with its IHDR chunk claiming ``side`` x ``side`` pixels (CRC fixed)."""
    import struct
    import zlib

    start = 8 + 8  # signature, then the IHDR chunk's length and type
    ihdr = struct.pack(">II", side, side) + png[start + 8 : start + 13]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return png[:start] + ihdr + crc + png[start + 13 + 4 :]


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["sklearn-model", "cnn-image", "llm-connector"])
def test_fuzzed_api_never_answers_5xx_and_every_4xx_says_why(
    api: str, request: pytest.FixtureRequest
) -> None:
    fixture = {"sklearn-model": "sklearn_api", "cnn-image": "cnn_api",
               "llm-connector": "llm_api"}[api]
    base_url: str = request.getfixturevalue(fixture)
    report = fuzz_api(api, base_url)
    raw_requests(api, base_url, report)
    record("API fuzzing (schemathesis + raw bodies)", report.summary())
    # The API still answers afterwards (no worker wedged by what it was sent).
    wait_http(base_url + "/health", 30)
    assert report.sent > 50, report.summary()
    assert report.statuses[200] > 0, f"no request was accepted at all: {report.summary()}"
    assert not report.broken, "\n".join([report.summary(), *report.broken])


def test_the_rule_can_fail() -> None:
    """The checker itself: a 500, a 4xx without a reason and an HTML 4xx break the rule."""

    def answer(code: int, body: bytes, kind: str = "application/json") -> requests.Response:
        response = requests.Response()
        response.status_code = code
        response._content = body
        response.headers["content-type"] = kind
        return response

    assert rule_broken(answer(500, b'{"detail": "boom"}')) == "server error"
    assert rule_broken(answer(422, b'{"detail": []}')) is not None
    assert rule_broken(answer(400, b"<html>bad</html>", "text/html")) is not None
    assert rule_broken(answer(422, json.dumps(
        {"detail": [{"loc": ["body", "age"], "msg": "Input should be finite"}]}).encode())) is None
    assert rule_broken(answer(413, b'{"error": {"title": "t", "detail": "too long"}}')) is None
    assert SERVICES.is_dir()
