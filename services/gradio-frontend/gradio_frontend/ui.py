"""The Gradio Blocks: one tab per backend (chat, Titanic, image). Handlers catch BackendError
and show its message in the tab's status line; nothing else is shown to the user on failure."""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr

from gradio_frontend import clients, registry_view
from gradio_frontend.clients import BackendError
from gradio_frontend.config import Settings

logger = logging.getLogger(__name__)

# Local fonts only: the default theme loads web fonts from an outside host.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])

CLASSES = [("1st class", 1), ("2nd class", 2), ("3rd class", 3)]
PORTS = [("Southampton", "S"), ("Cherbourg", "C"), ("Queenstown", "Q")]


def _problem(error: BackendError) -> str:
    # Backend text is shown as text, not markup.
    return f"⚠️ **{html.escape(error.service)}** — {html.escape(error.message)}"


def _text_of(content: Any) -> str:
    """The text of a Chatbot message content (a string, or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, list):
        return "".join(_text_of(part) for part in content)
    return ""


def history_pairs(history: list[Any]) -> list[tuple[str, str]]:
    """Chatbot messages as (role "user"|"model", text) for the llm-connector."""
    pairs: list[tuple[str, str]] = []
    for message in history or []:
        role = message.get("role") if isinstance(message, dict) else getattr(message, "role", "")
        content = (message.get("content") if isinstance(message, dict)
                   else getattr(message, "content", ""))
        text = _text_of(content).strip()
        if text and role in ("user", "assistant"):
            pairs.append(("user" if role == "user" else "model", text))
    return pairs


def build_ui(settings: Settings) -> gr.Blocks:
    """The whole page; handlers call the backends configured in ``settings``."""

    async def send(message: str, history: list[Any], system: str, temperature: float,
                   ) -> AsyncIterator[tuple[list[Any], str, str]]:
        """Streams the answer into the chat as it is generated."""
        message = (message or "").strip()
        history = list(history or [])
        if not message:
            yield history, "", "Type a message first."
            return
        asked = [*history, {"role": "user", "content": message}]
        try:
            async for answer in clients.chat_stream(
                    settings.llm_connector_url, message, history_pairs(history),
                    settings.llm_timeout_s, system=(system or "").strip() or None,
                    temperature=temperature):
                status = (f"Answered by `{html.escape(answer.model)}`." if answer.model
                          else "Answering…")
                yield [*asked, {"role": "assistant", "content": answer.text}], "", status
        except BackendError as exc:
            logger.warning("chat failed: %s", exc)
            yield history, message, _problem(exc)  # keep the text so it can be re-sent

    async def survive(pclass: int | None, sex: str | None, age: float | None,
                      sibsp: float | None, parch: float | None, fare: float | None,
                      embarked: str | None) -> str:
        if pclass is None or sex is None:
            return "Choose a ticket class and a sex."
        passenger = {
            "pclass": int(pclass), "sex": sex,
            "age": age, "sibsp": int(sibsp or 0), "parch": int(parch or 0),
            "fare": fare, "embarked": embarked,
        }
        try:
            result = await clients.predict_survival(settings.sklearn_model_url, passenger,
                                                    settings.model_timeout_s)
        except BackendError as exc:
            logger.warning("titanic prediction failed: %s", exc)
            return _problem(exc)
        verdict = "**Survived**" if result.survived else "**Did not survive**"
        by = f" (answered by `{html.escape(result.model)}`)" if result.model else ""
        return f"{verdict} — survival probability {result.probability:.1%}{by}"

    async def classify(path: str | None) -> tuple[dict[str, float] | None, str]:
        if not path:
            return None, "Upload an image first."
        try:
            result = await clients.classify_image(settings.cnn_image_url, Path(path),
                                                  settings.model_timeout_s)
        except BackendError as exc:
            logger.warning("image classification failed: %s", exc)
            return None, _problem(exc)
        share = f" ({result.probability:.1%})" if result.probability is not None else ""
        top = dict(result.top_k) or (
            {result.label: result.probability} if result.probability is not None else None)
        text = f"Prediction: **{html.escape(result.label)}**{share}"
        if result.model:
            text += f" — answered by `{html.escape(result.model)}`"
        if result.outputs:
            text += f"  \nProbabilities: {html.escape(result.outputs)}"
        return top, text

    async def models() -> str:
        try:
            return await registry_view.models_markdown(settings.mlflow_url,
                                                       settings.mlflow_ui_url,
                                                       settings.model_timeout_s)
        except BackendError as exc:
            logger.warning("models view failed: %s", exc)
            return (f"{_problem(exc)}\n\nThe models cannot be listed right now; the other "
                    f"tabs still work. [MLflow UI]({settings.mlflow_ui_url})")

    backends = [registry_view.Backend("llm-connector", settings.llm_connector_url),
                registry_view.Backend("sklearn-model", settings.sklearn_model_url),
                registry_view.Backend("cnn-image", settings.cnn_image_url),
                registry_view.Backend("mlflow-server", settings.mlflow_url)]

    async def status_table() -> list[list[str]]:
        return await registry_view.health_rows(backends, min(settings.model_timeout_s, 5.0))

    ui: gr.Blocks
    with gr.Blocks(title=settings.title, analytics_enabled=False) as ui:
        gr.Markdown(f"# {html.escape(settings.title)}")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chatbot = gr.Chatbot(label="Gemini", elem_id="chatbot", height=380,
                                     buttons=["copy"], feedback_options=None)
                with gr.Row():
                    prompt = gr.Textbox(placeholder="Ask anything…", show_label=False,
                                        elem_id="chat-input", scale=5, autofocus=True)
                    send_btn = gr.Button("Send", variant="primary", elem_id="chat-send",
                                         scale=1)
                chat_status = gr.Markdown(elem_id="chat-status")
                with gr.Accordion("Settings", open=False):
                    system_prompt = gr.Textbox(label="System prompt", lines=2,
                                               placeholder="e.g. Answer in one sentence.",
                                               elem_id="chat-system")
                    temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.1, label="Temperature",
                                            elem_id="chat-temperature")
                for trigger in (prompt.submit, send_btn.click):
                    trigger(send, [prompt, chatbot, system_prompt, temperature],
                            [chatbot, prompt, chat_status])

            with gr.Tab("Titanic", id="titanic"):
                gr.Markdown("Would this passenger have survived the Titanic?")
                with gr.Row():
                    pclass = gr.Radio(CLASSES, value=3, label="Ticket class",
                                      elem_id="titanic-class")
                    sex = gr.Radio(["female", "male"], value="male", label="Sex",
                                   elem_id="titanic-sex")
                    embarked = gr.Dropdown(PORTS, value="S", label="Port of embarkation",
                                           elem_id="titanic-port")
                with gr.Row():
                    age = gr.Number(value=30, minimum=0, maximum=120, label="Age (years)",
                                    elem_id="titanic-age")
                    sibsp = gr.Number(value=0, minimum=0, maximum=20, precision=0,
                                      label="Siblings / spouses aboard", elem_id="titanic-sibsp")
                    parch = gr.Number(value=0, minimum=0, maximum=20, precision=0,
                                      label="Parents / children aboard", elem_id="titanic-parch")
                    fare = gr.Number(value=8.05, minimum=0, label="Fare (£)",
                                     elem_id="titanic-fare")
                predict_btn = gr.Button("Predict survival", variant="primary",
                                        elem_id="titanic-predict")
                titanic_result = gr.Markdown(elem_id="titanic-result")
                predict_btn.click(survive, [pclass, sex, age, sibsp, parch, fare, embarked],
                                  titanic_result)

            with gr.Tab("Image", id="image"):
                gr.Markdown("Classify a picture (CIFAR-10 classes).")
                with gr.Row():
                    image = gr.Image(type="filepath", sources=["upload"], label="Image", height=260,
                                     elem_id="image-input")
                    top_k = gr.Label(num_top_classes=5, label="Top classes",
                                     elem_id="image-topk")
                classify_btn = gr.Button("Classify", variant="primary",
                                         elem_id="image-classify")
                image_result = gr.Markdown(elem_id="image-result")
                classify_btn.click(classify, image, [top_k, image_result])

            with gr.Tab("Models", id="models") as models_tab:
                models_refresh = gr.Button("Refresh", elem_id="models-refresh", size="sm")
                models_md = gr.Markdown("Loading the registry…", elem_id="models-view")
                models_tab.select(models, None, models_md)
                models_refresh.click(models, None, models_md)

            with gr.Tab("Status", id="status") as status_tab:
                gr.Markdown(f"Health of every backend, refreshed every "
                            f"{settings.status_refresh_s:g} s.")
                status_df = gr.Dataframe(headers=["service", "status", "detail", "serving"],
                                         interactive=False, elem_id="status-table",
                                         wrap=True)
                status_refresh = gr.Button("Refresh now", elem_id="status-refresh", size="sm")
                # Ticking only once the tab was opened: updates sent to a table never shown
                # yet were seen to leave it empty for good.
                timer = gr.Timer(settings.status_refresh_s, active=False)

                async def open_status() -> tuple[list[list[str]], gr.Timer]:
                    return await status_table(), gr.Timer(active=True)

                status_tab.select(open_status, None, [status_df, timer])
                status_refresh.click(status_table, None, status_df)
                timer.tick(status_table, None, status_df)
    return ui
