"""Placement in the values (constraints, spread preferences, max replicas per node, node labels):
schema-checked with file:line errors, rendered into the Swarm file, accepted by `docker stack
config`; the default render is unchanged (golden files)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deployer.errors import ValuesError
from deployer.render import render
from deployer.values import load_values

REPO = Path(__file__).resolve().parent.parent
PLACED = """\
swarm:
  node_labels:
    mlc-worker1: {zone: a, mlops.storage: "true"}
    mlc-worker2: {zone: b}
services:
  sklearn-model:
    replicas: 3
    placement:
      constraints: ["node.role == worker", "node.labels.zone != c"]
      preferences: [{spread: node.labels.zone}]
      max_replicas_per_node: 1
"""


def _swarm_service(text: str, name: str) -> dict[str, object]:
    doc = yaml.safe_load(text)
    service: dict[str, object] = doc["services"][name]
    return service


def test_placement_renders_into_the_swarm_file(tmp_path: Path) -> None:
    path = tmp_path / "placed.yaml"
    path.write_text(PLACED)
    values = load_values([path])
    assert values.swarm.node_labels["mlc-worker1"] == {"zone": "a", "mlops.storage": "true"}
    rendered = render(values, "swarm", docker_check=False)
    placement = _swarm_service(rendered.text, "sklearn-model")["deploy"]["placement"]  # type: ignore[index]
    assert placement == {
        "constraints": ["node.role == worker", "node.labels.zone != c"],
        "preferences": [{"spread": "node.labels.zone"}],
        "max_replicas_per_node": 1,
    }
    # Services without placement render none.
    assert "placement" not in _swarm_service(rendered.text, "llm-connector")["deploy"]  # type: ignore[operator]
    if shutil.which("docker"):
        out = tmp_path / "swarm-stack.yml"
        out.write_text(rendered.text)
        proc = subprocess.run(["docker", "stack", "config", "-c", str(out)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        normalised = yaml.safe_load(proc.stdout)["services"]["sklearn-model"]["deploy"]
        assert normalised["placement"]["max_replicas_per_node"] == 1


def test_default_render_has_no_placement() -> None:
    # The golden files pin the whole default render; this pins why it did not change.
    for target in ("swarm", "compose"):
        text = render(load_values(), target, docker_check=False).text
        assert "preferences" not in text and "node_labels" not in text
    golden = (REPO / "tests" / "golden" / "default" / "swarm-stack.yml").read_text()
    assert "placement" not in golden


@pytest.mark.parametrize(
    ("snippet", "line", "key", "says"),
    [
        ("services:\n  minio:\n    placement:\n      constraints: ['node.role worker']\n",
         4, "services.minio.placement.constraints.0", "ATTRIBUTE == VALUE"),
        ("services:\n  minio:\n    placement:\n      constraints: ['node.colour == red']\n",
         4, "services.minio.placement.constraints.0", "node.labels.KEY"),
        ("services:\n  minio:\n    placement:\n      preferences: [{spread: zone}]\n",
         4, "services.minio.placement.preferences.0.spread", "node.labels.KEY"),
        ("services:\n  minio:\n    placement:\n      preferences: [{spreed: node.labels.a}]\n",
         4, "services.minio.placement.preferences.0", "spreed"),
        ("services:\n  minio:\n    placement:\n      max_replicas_per_node: 0\n",
         4, "services.minio.placement.max_replicas_per_node", "1"),
        ("swarm:\n  node_labels:\n    'bad name': {zone: a}\n",
         3, "swarm.node_labels", "bad name"),
        ("swarm:\n  node_labels:\n    w1: {'a b': x}\n",
         3, "swarm.node_labels.w1", "a b"),
    ],
)
def test_bad_placement_names_file_line_and_key(
    tmp_path: Path, snippet: str, line: int, key: str, says: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(snippet)
    with pytest.raises(ValuesError) as info:
        load_values([path])
    message = info.value.message
    assert f"{path}:{line}" in message, message
    assert key in message and says in message, message
