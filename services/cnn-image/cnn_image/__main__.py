"""``python -m cnn_image``: serve the API with uvicorn (HOST/PORT/LOG_LEVEL from the
environment)."""

from __future__ import annotations

from mlops_serving.serve import serve


def main() -> None:
    """Run the server in this process."""
    serve("cnn_image.main:create_app", default_port=8002)


if __name__ == "__main__":
    main()
