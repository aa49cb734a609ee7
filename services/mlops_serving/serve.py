"""``python -m <service>``: run a model service's app factory with uvicorn (HOST/PORT/LOG_LEVEL
from the environment)."""

from __future__ import annotations

import logging
import os

import uvicorn

from mlops_serving.quiet import quiet_libraries

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve(factory: str, default_port: int) -> None:
    """Run ``factory`` (``"pkg.main:create_app"``) in this process (PID 1's child under
    ``init: true``)."""
    quiet_libraries()
    level = os.environ.get("LOG_LEVEL", "info").upper()
    logging.basicConfig(level=level, format=LOG_FORMAT)
    uvicorn.run(factory, factory=True, host=os.environ.get("HOST", "0.0.0.0"),
                port=int(os.environ.get("PORT", str(default_port))), log_level=level.lower(),
                access_log=False)
