"""A local Gemini REST server for tests: the real wire format, scripted answers, recorded requests.

It is the only fake in the service tests (the Gemini API cannot be reached from here). It
speaks what google-genai sends: ``POST /{version}/models/{model}:generateContent`` with the key
in the ``x-goog-api-key`` header and a JSON body with ``contents``; it answers with
``candidates[].content.parts[].text`` and ``usageMetadata``, or Google's error envelope
``{"error": {"code", "message", "status"}}``. ``:streamGenerateContent?alt=sse`` answers the
same text as server-sent events, one ``data: {GenerateContentResponse}`` per piece (the last
with the finish reason and usage), written one after another.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/(?P<version>v1[a-z0-9]*)/models/(?P<model>[^/:]+)"
                   r":(?P<method>generateContent|streamGenerateContent)$")
#: Pieces a streamed answer is cut into (server-sent events, as the real API with ?alt=sse).
STREAM_PIECES = 3


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    version: str | None
    model: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    streaming: bool = False  # :streamGenerateContent

    def user_texts(self) -> list[str]:
        """The text parts of the user turns, in order."""
        return [
            part.get("text", "")
            for content in self.body.get("contents", [])
            if content.get("role", "user") == "user"
            for part in content.get("parts", [])
        ]


@dataclass
class Reply:
    """A scripted reply: an error (status + message) or a delay before the normal answer."""

    status: int = 200
    message: str = ""
    google_status: str = ""
    delay_s: float = 0.0


@dataclass
class FakeGemini:
    """Server state: the expected key, the scripted replies and what was received."""

    api_key: str
    received: list[Received] = field(default_factory=list)
    script: deque[Reply] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_for(self, request: Received) -> tuple[int, dict[str, Any], float]:
        """Status, JSON body and delay for ``request``."""
        with self.lock:
            self.received.append(request)
            reply = self.script.popleft() if self.script else Reply()
        if request.version is None or request.model is None:
            return 404, _error(404, f"Unknown path {request.path}", "NOT_FOUND"), 0.0
        if request.headers.get("x-goog-api-key") != self.api_key:
            return 400, _error(400, "API key not valid. Please pass a valid API key.",
                               "INVALID_ARGUMENT"), 0.0
        if reply.status != 200:
            return reply.status, _error(reply.status, reply.message, reply.google_status), 0.0
        texts = request.user_texts()
        prompt = texts[-1] if texts else ""
        # The answer is derived from the request, so a test can tell it came from this prompt.
        answer = f"Gemini fake heard {len(texts)} user turn(s); last: {prompt[::-1]}"
        system = request.body.get("systemInstruction")
        if system:
            answer += " | system: " + " ".join(p.get("text", "") for p in system.get("parts", []))
        # Two parts: the client must join candidates[0].content.parts[].text.
        parts = [{"text": answer[:40]}, {"text": answer[40:]}]
        body = {
            "candidates": [{
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": 0,
            }],
            "usageMetadata": {
                "promptTokenCount": len(prompt.split()),
                "candidatesTokenCount": len(answer.split()),
                "totalTokenCount": len(prompt.split()) + len(answer.split()),
            },
            "modelVersion": request.model,
        }
        return 200, body, reply.delay_s


def _error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _handler(state: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_unparsable": raw.decode("utf-8", "replace")}
            match = _PATH.match(self.path.split("?", 1)[0])
            request = Received(
                method="POST",
                path=self.path,
                version=match["version"] if match else None,
                model=match["model"] if match else None,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                streaming=bool(match and match["method"] == "streamGenerateContent"),
            )
            status, payload, delay = state.answer_for(request)
            if delay:
                time.sleep(delay)
            if request.streaming and status == 200:
                self._stream(payload)
                return
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=UTF-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def _stream(self, payload: dict[str, Any]) -> None:
            candidate = payload["candidates"][0]
            text = "".join(p["text"] for p in candidate["content"]["parts"])
            size = -(-len(text) // STREAM_PIECES)
            pieces = [text[i:i + size] for i in range(0, len(text), size)] or [""]
            self.close_connection = True  # the end of the body is the end of the stream
            try:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for i, piece in enumerate(pieces):
                    last = i == len(pieces) - 1
                    chunk: dict[str, Any] = {
                        "candidates": [{"content": {"role": "model",
                                                    "parts": [{"text": piece}]},
                                        "index": 0, **({"finishReason": "STOP"} if last else {})}],
                        "modelVersion": payload["modelVersion"],
                        **({"usageMetadata": payload["usageMetadata"]} if last else {}),
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                    self.wfile.flush()
                    time.sleep(0.05)  # pieces arrive apart, as generated
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the tests assert on `received`

    return Handler


class FakeGeminiServer:
    """Runs FakeGemini on 127.0.0.1:``port`` in a daemon thread."""

    def __init__(self, port: int, api_key: str) -> None:
        self.state = FakeGemini(api_key=api_key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.state))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeGeminiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def push(self, *replies: Reply) -> None:
        """Scripts the next replies (then the default answer again)."""
        with self.state.lock:
            self.state.script.extend(replies)

    def take(self) -> list[Received]:
        """Returns and forgets the requests received so far."""
        with self.state.lock:
            got = list(self.state.received)
            self.state.received.clear()
            return got
