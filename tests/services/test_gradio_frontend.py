"""The gradio-frontend in headless Chromium, over real HTTP backends on loopback.

The frontend and the llm-connector run as their real processes; the llm-connector talks to the
local Gemini-protocol server; the two model APIs are small stand-ins speaking their contracts
(tests/services/model_standins.py); the Models tab reads the bed's real MLflow. A second
frontend points at closed ports (backends down). Every tab leaves a screenshot in
.testbed/artifacts/ (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_gemini import FakeGeminiServer, Reply
from gradio_page import open_tab
from model_standins import (
    Passenger,
    cnn_app,
    image_scores,
    serve,
    sklearn_app,
    survival_probability,
)
from PIL import Image
from svcutil import ServiceProcess, free_port

KEY = "AIzaUI-test-key-5b7d1c"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".testbed" / "artifacts"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory,
          bed: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Fake Gemini, llm-connector, model stand-ins and the frontend, all on loopback."""
    logs = tmp_path_factory.mktemp("logs")
    sk_received: list[dict[str, Any]] = []
    cnn_received: list[dict[str, Any]] = []
    with FakeGeminiServer(free_port(), api_key=KEY) as gemini, \
         ServiceProcess("llm-connector", free_port(), {
             "GOOGLE_API_KEY": KEY, "GOOGLE_API_BASE_URL": gemini.url,
             "GOOGLE_MODEL": "gemini-ui-test", "RETRY_ATTEMPTS": "1"}, logs) as llm, \
         serve(sklearn_app(sk_received), free_port()) as sk_url, \
         serve(cnn_app(cnn_received), free_port()) as cnn_url, \
         ServiceProcess("gradio-frontend", free_port(), {
             "LLM_CONNECTOR_URL": llm.url, "SKLEARN_MODEL_URL": sk_url,
             "CNN_IMAGE_URL": cnn_url, "MLFLOW_URL": bed["mlflow"]["tracking_uri"],
             "MLFLOW_UI_URL": bed["mlflow"]["tracking_uri"], "STATUS_REFRESH_S": "2"},
             logs) as frontend:
        yield {"frontend": frontend, "gemini": gemini, "llm": llm,
               "sk_received": sk_received, "cnn_received": cnn_received}


@pytest.fixture(scope="module")
def down_frontend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A frontend whose three backends are not running (closed loopback ports)."""
    logs = tmp_path_factory.mktemp("logs-down")
    closed = [free_port() for _ in range(4)]
    with ServiceProcess("gradio-frontend", free_port(), {
        "LLM_CONNECTOR_URL": f"http://127.0.0.1:{closed[0]}",
        "SKLEARN_MODEL_URL": f"http://127.0.0.1:{closed[1]}",
        "CNN_IMAGE_URL": f"http://127.0.0.1:{closed[2]}",
        "MLFLOW_URL": f"http://127.0.0.1:{closed[3]}",
    }, logs) as frontend:
        yield frontend


def _open_tab(page: Any, name: str) -> None:
    open_tab(page, name, on_stuck=lambda: _shot(page, f"stuck-{name}"))


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"frontend-{name}.png"), full_page=True)


def test_health_route(stack: dict[str, Any]) -> None:
    resp = httpx.get(stack["frontend"].url + "/health")
    assert resp.status_code == 200
    assert resp.json()["backends"]["llm_connector"] == stack["llm"].url


def test_chat_answer_appears(stack: dict[str, Any], page: Any) -> None:
    gemini: FakeGeminiServer = stack["gemini"]
    gemini.take()
    page.goto(stack["frontend"].url + "/")
    _open_tab(page, "Chat")
    page.locator("#chat-input textarea").fill("Which port does MLflow use?")
    page.locator("#chat-send").click()
    expected = "last: " + "Which port does MLflow use?"[::-1]
    page.locator("#chatbot").get_by_text(expected, exact=False).wait_for()
    page.locator("#chat-status").get_by_text("gemini-ui-test").wait_for()
    # A follow-up carries the conversation so far.
    page.locator("#chat-input textarea").fill("And the UI?")
    page.locator("#chat-send").click()
    page.locator("#chatbot").get_by_text("heard 2 user turn(s); last: ?IU eht dnA").wait_for()
    _shot(page, "chat")
    first, second = gemini.take()
    assert first.user_texts() == ["Which port does MLflow use?"]
    assert [c["role"] for c in second.body["contents"]] == ["user", "model", "user"]
    assert second.headers["x-goog-api-key"] == KEY
    # Streamed: the page asks the llm-connector's /chat/stream, which calls
    # :streamGenerateContent (server-sent events, the answer in pieces).
    assert first.streaming and second.streaming
    assert "streamGenerateContent" in first.path


def test_chat_streams_with_system_prompt_and_temperature(stack: dict[str, Any],
                                                         page: Any) -> None:
    gemini: FakeGeminiServer = stack["gemini"]
    gemini.take()
    page.goto(stack["frontend"].url + "/")
    _open_tab(page, "Chat")
    page.get_by_text("Settings").click()
    page.locator("#chat-system textarea").fill("Answer like a pirate.")
    page.locator("#chat-temperature input[type=number]").fill("0.3")
    page.locator("#chat-temperature input[type=number]").press("Enter")
    page.locator("#chat-input textarea").fill("Ahoy")
    page.locator("#chat-send").click()
    # The fake's answer ends with the system text: the last piece arrived and was appended.
    page.locator("#chatbot").get_by_text("system: Answer like a pirate.", exact=False).wait_for()
    page.locator("#chat-status").get_by_text("gemini-ui-test").wait_for()
    _shot(page, "chat-stream")
    (request,) = gemini.take()
    assert request.streaming
    assert request.body["systemInstruction"]["parts"][0]["text"] == "Answer like a pirate."
    assert request.body["generationConfig"]["temperature"] == pytest.approx(0.3)


def test_titanic_form_shows_probability(stack: dict[str, Any], page: Any) -> None:
    page.goto(stack["frontend"].url + "/")
    _open_tab(page, "Titanic")
    page.locator("#titanic-class").get_by_text("1st class").click()
    page.locator("#titanic-sex").get_by_text("female").click()
    page.locator("#titanic-age input").fill("29")
    page.locator("#titanic-sibsp input").fill("1")
    page.locator("#titanic-parch input").fill("2")
    page.locator("#titanic-fare input").fill("151.55")
    page.locator("#titanic-port input").click()
    page.get_by_role("option", name="Cherbourg").click()
    page.locator("#titanic-predict").click()
    result = page.locator("#titanic-result")
    result.get_by_text("survival probability").wait_for()
    _shot(page, "titanic")
    sent = {"pclass": 1, "sex": "female", "age": 29.0, "sibsp": 1, "parch": 2,
            "fare": 151.55, "embarked": "C"}
    assert stack["sk_received"][-1] == {**sent, "name": None}  # the form sends no name
    prob = survival_probability(Passenger(**sent))
    text = result.inner_text()
    assert f"{prob:.1%}" in text
    assert ("Survived" if prob >= 0.5 else "Did not survive") in text
    assert "answered by titanic-rf version standin" in text


def test_image_upload_shows_label(stack: dict[str, Any], page: Any, tmp_path: Path) -> None:
    png = tmp_path / "blue.png"
    Image.new("RGB", (48, 40), (20, 40, 230)).save(png)
    expected = image_scores(png.read_bytes())
    page.goto(stack["frontend"].url + "/")
    _open_tab(page, "Image")
    page.locator("#image-input input[type=file]").set_input_files(str(png))
    page.locator("#image-input img").first.wait_for()
    page.locator("#image-classify").click()
    result = page.locator("#image-result")
    result.get_by_text("Prediction:").wait_for()
    _shot(page, "image")
    label, prob = expected[0]
    assert f"{label} ({prob:.1%})" in result.inner_text()
    assert "answered by cifar10-cnn version standin" in result.inner_text()
    assert "softmax over the stand-in's colour scores" in result.inner_text()
    # the top-k widget lists the runner-up classes too
    page.locator("#image-topk").get_by_text(expected[1][0]).wait_for()
    got = stack["cnn_received"][-1]
    assert got["size"] == png.stat().st_size
    assert got["content_type"] == "image/png"
    assert got["top_k"] == 5  # as many as the Label widget shows


def test_backends_down_read_as_messages(down_frontend: ServiceProcess, page: Any,
                                        tmp_path: Path) -> None:
    page.goto(down_frontend.url + "/")
    _open_tab(page, "Chat")
    page.locator("#chat-input textarea").fill("hello?")
    page.locator("#chat-send").click()
    status = page.locator("#chat-status")
    status.get_by_text("not reachable").wait_for()
    assert "LLM connector" in status.inner_text()
    # the prompt is kept so it can be sent again
    assert page.locator("#chat-input textarea").input_value() == "hello?"

    _open_tab(page, "Titanic")
    page.locator("#titanic-predict").click()
    titanic = page.locator("#titanic-result")
    titanic.get_by_text("not reachable").wait_for()
    assert "Titanic model" in titanic.inner_text()

    png = tmp_path / "x.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png)
    _open_tab(page, "Image")
    page.locator("#image-input input[type=file]").set_input_files(str(png))
    page.locator("#image-input img").first.wait_for()
    page.locator("#image-classify").click()
    image = page.locator("#image-result")
    image.get_by_text("not reachable").wait_for()
    _shot(page, "down")

    _open_tab(page, "Models")
    models = page.locator("#models-view")
    models.get_by_text("not reachable").wait_for()
    assert "MLflow" in models.inner_text() and "other tabs still work" in models.inner_text()
    _shot(page, "down-models")
    _open_tab(page, "Status")
    table = page.locator("#status-table")
    for name in ("llm-connector", "sklearn-model", "cnn-image", "mlflow-server"):
        table.get_by_text(name, exact=True).filter(visible=True).first.wait_for()
    assert table.inner_text().count("down") >= 4
    _shot(page, "down-status")
    for text in (status.inner_text(), titanic.inner_text(), image.inner_text()):
        assert "Traceback" not in text and re.search(r"127\.0\.0\.1:\d+", text)
    assert "Traceback" not in page.content()


def test_backend_error_detail_is_shown(stack: dict[str, Any], page: Any) -> None:
    """An answer with an error (not an outage): the backend's own detail and fix reach the user."""
    stack["gemini"].push(Reply(status=429, message="Quota exceeded for today",
                               google_status="RESOURCE_EXHAUSTED"))
    page.goto(stack["frontend"].url + "/")
    _open_tab(page, "Chat")
    page.locator("#chat-input textarea").fill("one more")
    page.locator("#chat-send").click()
    status = page.locator("#chat-status")
    status.get_by_text("Quota exceeded for today").wait_for()
    text = status.inner_text()
    assert "HTTP 502" in text and "retry later" in text
    assert KEY not in page.content()


@pytest.fixture(scope="module")
def registered_ui_model(bed: dict[str, Any]) -> dict[str, str]:
    """A run with a metric and a registered version of it at @champion, in the bed's MLflow
    (the newest registered model, so the Models tab lists it first)."""
    import uuid

    from mlflow.tracking import MlflowClient

    client = MlflowClient(bed["mlflow"]["tracking_uri"])
    name = f"t-ui-{uuid.uuid4().hex[:8]}"
    exp = client.create_experiment(name)
    run = client.create_run(exp, run_name=f"{name}-train")
    client.log_metric(run.info.run_id, "accuracy", 0.8123)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")
    return {"name": name, "run_id": run.info.run_id}


def test_models_tab_lists_the_registry(stack: dict[str, Any], page: Any, bed: dict[str, Any],
                                       registered_ui_model: dict[str, str]) -> None:
    page.goto(stack["frontend"].url + "/")
    _open_tab(page, "Models")
    view = page.locator("#models-view")
    view.get_by_text(registered_ui_model["name"]).first.wait_for()
    text = view.inner_text()
    assert "@champion → v1" in text
    assert "accuracy 0.812" in text  # the version's run metrics
    assert registered_ui_model["run_id"][:8] in text
    assert "Recent runs" in text and f"{registered_ui_model['name']}-train" in text
    link = view.get_by_role("link", name="Open the MLflow UI")
    assert link.get_attribute("href").rstrip("/") == bed["mlflow"]["tracking_uri"]
    _shot(page, "models")


def test_status_tab_shows_every_backend_and_refreshes(stack: dict[str, Any], page: Any) -> None:
    """Last in this module: it stops the llm-connector."""
    page.goto(stack["frontend"].url + "/")
    _open_tab(page, "Status")
    table = page.locator("#status-table")
    for name in ("llm-connector", "sklearn-model", "cnn-image", "mlflow-server"):
        table.get_by_text(name, exact=True).filter(visible=True).first.wait_for()
    text = table.inner_text()
    assert "🟢 ready" in text and "down" not in text
    assert "gemini-ui-test" in text  # the llm-connector's model
    _shot(page, "status")
    # The timer probes again: the llm-connector's process stopped -> down, without a click.
    stack["llm"].stop()
    table.get_by_text("🔴 down").filter(visible=True).first.wait_for(timeout=30_000)
    assert "🔴 down" in table.inner_text()
