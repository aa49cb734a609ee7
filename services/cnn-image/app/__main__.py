"""``python -m app``: serve the API with uvicorn (HOST/PORT/LOG_LEVEL from the environment)."""

from __future__ import annotations

import logging
import os

import uvicorn


def main() -> None:
    """Run the server in this process (PID 1's child under ``init: true``)."""
    level = os.environ.get("LOG_LEVEL", "info").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run("app.main:create_app", factory=True, host=os.environ.get("HOST", "0.0.0.0"),
                port=int(os.environ.get("PORT", "8002")), log_level=level.lower(),
                access_log=False)


if __name__ == "__main__":
    main()
