"""llm-connector as a real process (uvicorn) against a local server speaking Gemini's REST API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fake_gemini import FakeGeminiServer, Reply
from svcutil import ServiceProcess, free_port

KEY = "AIzaTEST-key-7f3c9a1b2d4e6f80-never-shown"
MODEL = "gemini-test-model"

StartConnector = Callable[..., ServiceProcess]


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer(free_port(), api_key=KEY) as server:
        yield server


@pytest.fixture
def start_connector(tmp_path: Path, gemini: FakeGeminiServer) -> Iterator[StartConnector]:
    """Starts llm-connector processes with the given env (defaults: the fake, the right key)."""
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        full = {"GOOGLE_API_BASE_URL": gemini.url, "GOOGLE_MODEL": MODEL,
                "RETRY_ATTEMPTS": "1", "LOG_LEVEL": "debug", **env}
        full = {k: v for k, v in full.items() if v != "<unset>"}
        proc = ServiceProcess("llm-connector", free_port(), full, tmp_path)
        started.append(proc)
        return proc.start()

    gemini.take()
    yield start
    for proc in started:
        proc.stop()
        assert KEY not in proc.logs(), "the API key appeared in the service log"


def test_chat_goes_to_gemini_with_model_key_and_prompt(
    start_connector: StartConnector, gemini: FakeGeminiServer
) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY)
    resp = httpx.post(svc.url + "/chat", json={
        "prompt": "What is MLOps?", "system": "Answer briefly.",
        "temperature": 0.2, "max_output_tokens": 64,
    }, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["text"] == ("Gemini fake heard 1 user turn(s); last: ?spOLM si tahW"
                            " | system: Answer briefly.")
    assert body["model"] == MODEL
    # The fake counts words: the usage must be the upstream's usageMetadata, passed through.
    words = len(body["text"].split())
    assert body["usage"] == {"prompt_tokens": 3, "output_tokens": words, "total_tokens": 3 + words}
    assert body["finish_reason"] == "STOP"
    [req] = gemini.take()
    assert req.path == f"/v1/models/{MODEL}:generateContent"
    assert req.headers["x-goog-api-key"] == KEY
    assert req.user_texts() == ["What is MLOps?"]
    assert req.body["systemInstruction"]["parts"][0]["text"] == "Answer briefly."
    assert req.body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 64}
    assert KEY not in resp.text


def test_generate_alias_and_history(start_connector: StartConnector,
                                    gemini: FakeGeminiServer) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY)
    resp = httpx.post(svc.url + "/generate", json={
        "prompt": "and then?",
        "history": [{"role": "user", "text": "hi"}, {"role": "model", "text": "hello"}],
    }, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"].startswith("Gemini fake heard 2 user turn(s); last: ?neht dna")
    [req] = gemini.take()
    assert [c["role"] for c in req.body["contents"]] == ["user", "model", "user"]


def test_key_from_file_as_swarm_passes_it(start_connector: StartConnector,
                                          gemini: FakeGeminiServer, tmp_path: Path) -> None:
    secret = tmp_path / "google_api_key"
    secret.write_text(KEY + "\n")  # secrets often end with a newline
    svc = start_connector(GOOGLE_API_KEY_FILE=str(secret))
    health = httpx.get(svc.url + "/health").json()
    assert health["api_key_configured"] is True
    assert health["api_key_source"] == "file"
    assert KEY not in str(health)
    resp = httpx.post(svc.url + "/chat", json={"prompt": "ping"}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert gemini.take()[0].headers["x-goog-api-key"] == KEY


def test_env_key_wins_over_file_and_blank_env_means_unset(
    start_connector: StartConnector, gemini: FakeGeminiServer, tmp_path: Path
) -> None:
    secret = tmp_path / "google_api_key"
    secret.write_text(KEY)
    # Compose renders GOOGLE_API_KEY="${GOOGLE_API_KEY:-}": blank must fall through to the file.
    svc = start_connector(GOOGLE_API_KEY="  ", GOOGLE_API_KEY_FILE=str(secret))
    assert httpx.get(svc.url + "/health").json()["api_key_source"] == "file"
    assert httpx.post(svc.url + "/chat", json={"prompt": "x"}, timeout=30).status_code == 200


def test_missing_key_is_503_with_the_fix_and_health_stays_200(
    start_connector: StartConnector, gemini: FakeGeminiServer
) -> None:
    svc = start_connector(GOOGLE_API_KEY="<unset>")
    health = httpx.get(svc.url + "/health")
    assert health.status_code == 200
    assert health.json()["api_key_configured"] is False
    assert health.json()["api_key_source"] is None
    resp = httpx.post(svc.url + "/chat", json={"prompt": "hello"}, timeout=30)
    assert resp.status_code == 503
    err = resp.json()["error"]
    assert err["title"] == "Gemini API key not configured"
    assert "GOOGLE_API_KEY" in err["fix"] and "google_api_key" in err["fix"]
    assert gemini.take() == []  # nothing was sent upstream


def test_unreadable_key_file_is_named(start_connector: StartConnector, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "google_api_key"
    svc = start_connector(GOOGLE_API_KEY_FILE=str(missing))
    health = httpx.get(svc.url + "/health").json()
    assert health["api_key_configured"] is False
    assert str(missing) in health["problem"]
    resp = httpx.post(svc.url + "/chat", json={"prompt": "hello"}, timeout=30)
    assert resp.status_code == 503
    assert str(missing) in resp.json()["error"]["detail"]
    assert str(missing) in svc.logs()


def test_wrong_key_is_502_with_upstream_message_and_no_key_echo(
    start_connector: StartConnector, gemini: FakeGeminiServer
) -> None:
    wrong = "AIzaWRONG-0123456789abcdef"
    svc = start_connector(GOOGLE_API_KEY=wrong)
    resp = httpx.post(svc.url + "/chat", json={"prompt": "hello"}, timeout=30)
    assert resp.status_code == 502
    err = resp.json()["error"]
    assert err["upstream_status"] == 400
    assert "API key not valid" in err["detail"]
    assert "API key" in err["fix"]
    assert wrong not in resp.text
    assert wrong not in svc.logs()
    assert gemini.take()[0].headers["x-goog-api-key"] == wrong


def test_upstream_5xx_is_502_and_message_is_redacted(
    start_connector: StartConnector, gemini: FakeGeminiServer
) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY)
    gemini.push(Reply(status=500, message=f"backend exploded near {KEY}", google_status="INTERNAL"))
    resp = httpx.post(svc.url + "/chat", json={"prompt": "hello"}, timeout=30)
    assert resp.status_code == 502
    err = resp.json()["error"]
    assert err["upstream_status"] == 500
    assert "backend exploded near [redacted]" in err["detail"]
    assert KEY not in resp.text


def test_unknown_model_is_502_naming_the_fix(start_connector: StartConnector,
                                             gemini: FakeGeminiServer) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY)
    gemini.push(Reply(status=404, message="models/gemini-test-model is not found",
                      google_status="NOT_FOUND"))
    resp = httpx.post(svc.url + "/chat", json={"prompt": "hello"}, timeout=30)
    assert resp.status_code == 502
    assert "GOOGLE_MODEL" in resp.json()["error"]["fix"]


def test_transient_503_is_retried(start_connector: StartConnector,
                                  gemini: FakeGeminiServer) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY, RETRY_ATTEMPTS="2", RETRY_INITIAL_DELAY_S="0")
    gemini.push(Reply(status=503, message="overloaded", google_status="UNAVAILABLE"))
    resp = httpx.post(svc.url + "/chat", json={"prompt": "again"}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert len(gemini.take()) == 2


def test_slow_upstream_is_504(start_connector: StartConnector, gemini: FakeGeminiServer) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY, REQUEST_TIMEOUT_S="1")
    gemini.push(Reply(delay_s=4))
    resp = httpx.post(svc.url + "/chat", json={"prompt": "slow"}, timeout=30)
    assert resp.status_code == 504
    assert "within 1s" in resp.json()["error"]["detail"]


def test_unreachable_upstream_is_502(start_connector: StartConnector) -> None:
    closed = free_port()  # nothing listens there
    svc = start_connector(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=f"http://127.0.0.1:{closed}")
    resp = httpx.post(svc.url + "/chat", json={"prompt": "hello"}, timeout=30)
    assert resp.status_code == 502
    assert "could not be reached" in resp.json()["error"]["detail"]


def test_bad_requests(start_connector: StartConnector, gemini: FakeGeminiServer) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY, MAX_PROMPT_CHARS="10")
    assert httpx.post(svc.url + "/chat", json={"prompt": ""}).status_code == 422
    assert httpx.post(svc.url + "/chat", json={"prompt": "x", "temperature": 9}).status_code == 422
    assert httpx.post(svc.url + "/chat", json={"prompt": "x", "bogus": 1}).status_code == 422
    resp = httpx.post(svc.url + "/chat", json={"prompt": "x" * 11})
    assert resp.status_code == 413
    assert "MAX_PROMPT_CHARS" in resp.json()["error"]["fix"]
    assert gemini.take() == []


def test_blank_key_file_is_not_configured(start_connector: StartConnector,
                                          gemini: FakeGeminiServer, tmp_path: Path) -> None:
    """`deployer push --allow-missing-secret google_api_key` deploys the secret blank."""
    secret = tmp_path / "google_api_key"
    secret.write_text("\n")
    svc = start_connector(GOOGLE_API_KEY_FILE=str(secret))
    health = httpx.get(svc.url + "/health")
    assert health.status_code == 200 and health.json()["api_key_configured"] is False
    assert httpx.post(svc.url + "/chat", json={"prompt": "hi"}, timeout=30).status_code == 503
    assert gemini.take() == []


def test_chat_stream_sends_pieces_then_done(start_connector: StartConnector,
                                            gemini: FakeGeminiServer) -> None:
    import json

    svc = start_connector(GOOGLE_API_KEY=KEY)
    with httpx.stream("POST", svc.url + "/chat/stream", timeout=30, json={
            "prompt": "Stream it", "system": "Be brief.", "temperature": 0.7}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in resp.iter_lines() if line.strip()]
    deltas = [e["delta"] for e in events if "delta" in e]
    assert len(deltas) >= 2  # the answer came in pieces, as Gemini streamed it
    assert "".join(deltas) == ("Gemini fake heard 1 user turn(s); last: ti maertS"
                               " | system: Be brief.")
    done = events[-1]
    assert done["done"] is True and done["model"] == MODEL and done["finish_reason"] == "STOP"
    assert done["usage"]["prompt_tokens"] == 2
    [req] = gemini.take()
    assert req.streaming and req.path.startswith(f"/v1/models/{MODEL}:streamGenerateContent")
    assert req.body["generationConfig"] == {"temperature": 0.7}


def test_chat_stream_errors_before_the_answer_keep_their_status(
    start_connector: StartConnector, gemini: FakeGeminiServer
) -> None:
    svc = start_connector(GOOGLE_API_KEY=KEY)
    gemini.push(Reply(status=429, message="Quota exceeded", google_status="RESOURCE_EXHAUSTED"))
    resp = httpx.post(svc.url + "/chat/stream", json={"prompt": "x"}, timeout=30)
    assert resp.status_code == 502
    assert "Quota exceeded" in resp.json()["error"]["detail"]
    no_key = start_connector(GOOGLE_API_KEY="<unset>")
    resp = httpx.post(no_key.url + "/chat/stream", json={"prompt": "x"}, timeout=30)
    assert resp.status_code == 503 and "fix" in resp.json()["error"]
    bad = httpx.post(svc.url + "/chat/stream", json={"prompt": ""}, timeout=30)
    assert bad.status_code == 422
