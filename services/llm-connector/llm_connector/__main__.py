"""``python3 -m llm_connector``: serve the API with uvicorn on the configured host/port."""

from __future__ import annotations

import uvicorn

from llm_connector.config import get_settings


def main() -> None:
    """Run the server (the image's command)."""
    settings = get_settings()
    uvicorn.run(
        "llm_connector.main:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
