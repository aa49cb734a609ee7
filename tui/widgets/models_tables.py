"""The Models view's two tables: what each model service serves now, and the registry's
versions of those models (the one each service serves marked)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable

from deployer.models import RegisteredModel, ServedModel


def metrics_text(metrics: Mapping[str, float]) -> str:
    """``accuracy=0.826, cv_accuracy_mean=0.845`` (sorted, 3 decimals)."""
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())) or "-"


class ServedTable(DataTable[str | Text]):
    """One row per model service."""

    COLUMNS = ("Service", "Model", "Version", "Alias", "Metrics")

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns(*self.COLUMNS)

    def show(self, served: Sequence[ServedModel]) -> None:
        self.clear()
        for s in served:
            if s.problem:
                self.add_row(s.service, "-", "-", "-", Text(s.problem, style="yellow"),
                             key=s.service)
            else:
                self.add_row(s.service, s.name, Text(s.version, style="bold"), s.alias,
                             metrics_text(s.metrics), key=s.service)


class VersionsTable(DataTable[str | Text]):
    """One row per registered version (``MODEL/VERSION`` keys); newest first per model."""

    COLUMNS = ("Model", "Version", "Aliases", "Served by", "Created", "Run", "Metrics")

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns(*self.COLUMNS)

    @property
    def selected(self) -> tuple[str, str] | None:
        """(model, version) of the row under the cursor."""
        if not self.row_count:
            return None
        key = str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        model, _, version = key.rpartition("/")
        return model, version

    def show(self, registry: Sequence[RegisteredModel], served: Sequence[ServedModel]) -> None:
        selected = self.selected
        serving = {(s.name, s.version): s.service for s in served if not s.problem}
        self.clear()
        for model in registry:
            for v in model.versions:
                by = serving.get((model.name, v.version), "")
                self.add_row(model.name, Text(v.version, style="bold" if by else ""),
                             ", ".join(v.aliases), Text(by, style="green"),
                             v.created.strftime("%Y-%m-%d %H:%M"), v.run_id[:12],
                             metrics_text(v.metrics), key=f"{model.name}/{v.version}")
        if selected is not None:
            keys = [f"{m.name}/{v.version}" for m in registry for v in m.versions]
            wanted = f"{selected[0]}/{selected[1]}"
            if wanted in keys:
                self.move_cursor(row=keys.index(wanted))
