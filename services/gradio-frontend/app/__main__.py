"""``python3 -m app``: serve the UI with uvicorn on the configured host/port."""

from __future__ import annotations

import uvicorn

from app.config import get_settings


def main() -> None:
    """Run the server (the image's command)."""
    settings = get_settings()
    uvicorn.run("app.main:app", host=settings.host, port=settings.port,
                log_level=settings.log_level, server_header=False, access_log=False)


if __name__ == "__main__":
    main()
