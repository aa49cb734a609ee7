"""Runs the Gemini-protocol test server (tests/services/fake_gemini.py) as a container's main
process, on all interfaces of that container, so a deployed stack can reach it by name.

    docker run -d --network STACK_mlops-network --name NAME -e FAKE_GEMINI_KEY=... \
        -v tests:/t:ro BASE python3 /t/e2e_gemini_server.py PORT

Standard library only (it runs on the bare offline base image). The expected key comes from
the environment, never argv. SIGTERM stops it at once.
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent / "services"))

from fake_gemini import FakeGemini, _handler  # noqa: E402 (after the path set-up)


def main(argv: list[str]) -> int:
    """Serve until SIGTERM/SIGINT."""
    port = int(argv[0]) if argv else 8080
    httpd = ThreadingHTTPServer(("0.0.0.0", port), _handler(FakeGemini(
        api_key=os.environ["FAKE_GEMINI_KEY"])))
    httpd.daemon_threads = True

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    print(f"fake Gemini listening on :{port}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
