"""``python3 -m gradio_frontend``: serve the UI with uvicorn on the configured host/port."""

from __future__ import annotations

import uvicorn

from gradio_frontend.config import get_settings


def main() -> None:
    """Run the server (the image's command)."""
    settings = get_settings()
    uvicorn.run("gradio_frontend.main:app", host=settings.host, port=settings.port,
                log_level=settings.log_level, server_header=False, access_log=False)


if __name__ == "__main__":
    main()
