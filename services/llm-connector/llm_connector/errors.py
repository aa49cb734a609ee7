"""The connector's errors: each carries the HTTP status it maps to, a title and a fix."""

from __future__ import annotations


class ConnectorError(Exception):
    """Root of the errors the API turns into JSON ``{"error": {...}}`` responses."""

    status_code = 500
    title = "llm-connector error"

    def __init__(self, detail: str, *, fix: str | None = None,
                 upstream_status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix
        self.upstream_status = upstream_status

    def to_body(self) -> dict[str, object]:
        """The JSON body of the error response."""
        body: dict[str, object] = {"title": self.title, "detail": self.detail}
        if self.fix:
            body["fix"] = self.fix
        if self.upstream_status is not None:
            body["upstream_status"] = self.upstream_status
        return {"error": body}


class NotConfiguredError(ConnectorError):
    """No API key: the service runs (and is healthy) but cannot call Gemini."""

    status_code = 503
    title = "Gemini API key not configured"


class UpstreamError(ConnectorError):
    """Gemini answered with an error, an unusable answer, or could not be reached."""

    status_code = 502
    title = "Gemini API error"


class UpstreamTimeout(ConnectorError):
    """Gemini did not answer in time."""

    status_code = 504
    title = "Gemini API timeout"
