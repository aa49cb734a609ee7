"""A stand-in service for tests: an HTTP server with health endpoints and chatty logs.

Environment: PORT (default 8080), SERVICE_NAME, VERSION, FAIL_HEALTH=1 (health answers 503),
HEARTBEAT_SECONDS (print a line every N seconds, 0 = never), LOG_LINE (text of the heartbeat).
With ``--exit CODE`` it prints one line and exits (a stand-in for one-shot jobs).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEALTH_PATHS = {"/health", "/healthz", "/minio/health/live", "/minio/health/ready", "/status"}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path in HEALTH_PATHS:
            failing = os.environ.get("FAIL_HEALTH") == "1"
            self._send(503 if failing else 200, {"status": "failing" if failing else "ok"})
            return
        self._send(
            200,
            {
                "service": os.environ.get("SERVICE_NAME", "standin"),
                "version": os.environ.get("VERSION", "1"),
                "path": self.path,
            },
        )

    def _send(self, code: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(f"request {self.address_string()} {format % args}", flush=True)


def heartbeat(every: float, text: str) -> None:
    n = 0
    while True:
        n += 1
        print(f"{text} {n}", flush=True)
        time.sleep(every)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--exit":
        print(f"{os.environ.get('SERVICE_NAME', 'standin')} job done", flush=True)
        sys.exit(int(sys.argv[2]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("PORT", "8080"))
    every = float(os.environ.get("HEARTBEAT_SECONDS", "0"))
    if every > 0:
        text = os.environ.get("LOG_LINE", f"{os.environ.get('SERVICE_NAME', 'standin')} alive")
        threading.Thread(target=heartbeat, args=(every, text), daemon=True).start()
    print(f"{os.environ.get('SERVICE_NAME', 'standin')} listening on {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
