"""``python -m sklearn_model``: serve the API with uvicorn (HOST/PORT/LOG_LEVEL from the
environment)."""

from __future__ import annotations

from mlops_serving.serve import serve


def main() -> None:
    """Run the server in this process."""
    serve("sklearn_model.main:create_app", default_port=8001)


if __name__ == "__main__":
    main()
