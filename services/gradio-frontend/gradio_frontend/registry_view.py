"""What the Models and Status tabs show: MLflow's registered models, versions, aliases, metrics
and recent runs (its REST API, read-only), and every backend's /health.

Every failure becomes a short message in the tab (never an exception out of a handler): a
backend that is down or unconfigured must not break the page.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from gradio_frontend.clients import BackendError, _describe_error

MAX_MODELS = 20
MAX_VERSIONS = 5  # newest first, per model
MAX_RUNS = 10


async def _get(service: str, client: httpx.AsyncClient, url: str, *,
               params: Mapping[str, Any] | None = None,
               json: Mapping[str, Any] | None = None) -> Any:
    try:
        if json is not None:
            resp = await client.post(url, json=dict(json))
        else:
            resp = await client.get(url, params=dict(params or {}))
    except httpx.TimeoutException:
        raise BackendError(service, f"no answer from {url} in time") from None
    except httpx.ConnectError:
        raise BackendError(service, f"not reachable at {url}. Is the service running? "
                           "(check `deployer status`)") from None
    except httpx.HTTPError as exc:
        raise BackendError(service, f"request to {url} failed: {type(exc).__name__}") from None
    if resp.status_code >= 400:
        raise BackendError(service, _describe_error(resp))
    try:
        return resp.json()
    except ValueError:
        raise BackendError(service, f"{url} answered with a body that is not JSON") from None


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "?"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _metrics(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return "none logged"
    return ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in sorted(metrics.items()))


def _cell(text: str) -> str:
    return html.escape(text).replace("|", "\\|")


async def models_markdown(mlflow_url: str, ui_url: str, timeout_s: float) -> str:
    """Markdown of the registry: per model its aliases and newest versions (with the metrics of
    each version's run), then the most recent runs, and a link to the MLflow UI."""
    api = f"{mlflow_url}/api/2.0/mlflow"
    link = f"[Open the MLflow UI]({ui_url})"
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        models = (await _get("MLflow", client, f"{api}/registered-models/search",
                             params={"max_results": MAX_MODELS,
                                     "order_by": "last_updated_timestamp DESC"}
                             )).get("registered_models") or []
        out = [link, "", f"## Registered models (the {MAX_MODELS} last updated)"]
        if not models:
            out.append("No model is registered yet.")
        run_ids: set[str] = set()
        per_model: list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = []
        for model in models:
            name = str(model.get("name", "?"))
            found = await _get("MLflow", client, f"{api}/model-versions/search",
                               params={"filter": f"name='{name}'", "max_results": 100})
            versions = sorted(found.get("model_versions") or [],
                              key=lambda v: int(v.get("version", 0)), reverse=True)[:MAX_VERSIONS]
            run_ids.update(str(v["run_id"]) for v in versions if v.get("run_id"))
            per_model.append((model, versions))
        runs = await asyncio.gather(*(_get("MLflow", client, f"{api}/runs/get",
                                           params={"run_id": r}) for r in sorted(run_ids)),
                                    return_exceptions=True)
        metrics_of: dict[str, dict[str, float]] = {}
        for run_id, run in zip(sorted(run_ids), runs, strict=True):
            if isinstance(run, Mapping):
                data = (run.get("run") or {}).get("data") or {}
                metrics_of[run_id] = {str(m["key"]): float(m["value"])
                                      for m in data.get("metrics") or [] if "key" in m}
        for model, versions in per_model:
            name = str(model.get("name", "?"))
            aliases = {str(a.get("version")): str(a.get("alias"))
                       for a in model.get("aliases") or []}
            alias_text = ", ".join(f"@{a} → v{v}" for v, a in sorted(aliases.items())) or "none"
            out += ["", f"### {_cell(name)}", f"Aliases: {_cell(alias_text)}", "",
                    "| version | alias | created | run | metrics |",
                    "|---|---|---|---|---|"]
            for v in versions:
                ver, run_id = str(v.get("version", "?")), str(v.get("run_id") or "")
                out.append(f"| {_cell(ver)} | {_cell(aliases.get(ver, ''))} | "
                           f"{_when(v.get('creation_timestamp'))} | {_cell(run_id[:8])} | "
                           f"{_metrics(metrics_of.get(run_id, {}))} |")
        out += ["", "## Recent runs"]
        exps = (await _get("MLflow", client, f"{api}/experiments/search",
                           json={"max_results": 100})).get("experiments") or []
        ids = [str(e["experiment_id"]) for e in exps if "experiment_id" in e]
        recent: list[Mapping[str, Any]] = []
        if ids:
            recent = (await _get("MLflow", client, f"{api}/runs/search", json={
                "experiment_ids": ids, "max_results": MAX_RUNS,
                "order_by": ["attributes.start_time DESC"]})).get("runs") or []
        names = {str(e.get("experiment_id")): str(e.get("name", "")) for e in exps}
        if not recent:
            out.append("No runs yet.")
        else:
            out += ["| started | experiment | run | status | metrics |", "|---|---|---|---|---|"]
            for run in recent:
                info, data = run.get("info") or {}, run.get("data") or {}
                metrics = {str(m["key"]): float(m["value"]) for m in data.get("metrics") or []
                           if "key" in m}
                out.append(f"| {_when(info.get('start_time'))} | "
                           f"{_cell(names.get(str(info.get('experiment_id')), '?'))} | "
                           f"{_cell(str(info.get('run_name') or info.get('run_id', ''))[:40])} | "
                           f"{_cell(str(info.get('status', '')))} | {_metrics(metrics)} |")
    return "\n".join(out)


@dataclass(frozen=True)
class Backend:
    """One service the page depends on, and where its health endpoint is."""

    name: str
    url: str


async def _health_row(client: httpx.AsyncClient, backend: Backend) -> list[str]:
    url = f"{backend.url}/health"
    try:
        resp = await client.get(url)
    except httpx.HTTPError as exc:
        why = "not reachable" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
        return [backend.name, "🔴 down", f"{why} at {url}", ""]
    try:
        body: Any = resp.json()
    except ValueError:
        body = {"detail": resp.text.strip()[:200]}
    if not isinstance(body, Mapping):
        body = {}
    status = str(body.get("status") or ("ok" if resp.status_code == 200 else ""))
    if body.get("api_key_configured") is False:  # the llm-connector runs, but has no key
        status = "no API key"
    model = body.get("model")
    served = (f"{model.get('name')} version {model.get('version')}"
              if isinstance(model, Mapping) else str(model or ""))
    icon = "🟢" if resp.status_code == 200 and status in ("ok", "ready") else (
        "🟡" if resp.status_code == 200 else "🔴")
    detail = str(body.get("detail") or body.get("problem") or body.get("fix")
                 or f"HTTP {resp.status_code}")
    return [backend.name, f"{icon} {status or resp.status_code}", detail[:300], served]


async def health_rows(backends: list[Backend], timeout_s: float) -> list[list[str]]:
    """[service, status, detail, served model] per backend, probed concurrently."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return list(await asyncio.gather(*(_health_row(client, b) for b in backends)))
