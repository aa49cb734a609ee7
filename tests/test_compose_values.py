"""Compose publishing: ports bind to 127.0.0.1 in development, a value opens them wider, and the
default S3 credentials never reach a non-loopback address without a value saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployer.errors import ValuesError
from deployer.render import render
from deployer.values import load_values


def _host_ips(sets: list[str]) -> set[str]:
    doc = yaml.safe_load(render(load_values(sets=sets), "compose").text)
    return {port["host_ip"] for svc in doc["services"].values() for port in svc.get("ports", [])}


def test_development_binds_loopback_only() -> None:
    assert _host_ips([]) == {"127.0.0.1"}


def test_a_value_opens_the_ports_wider() -> None:
    sets = ["compose.bind_address=0.0.0.0", "s3.access_key=laptop",
            "s3.secret_key=a-real-laptop-secret"]
    assert _host_ips(sets) == {"0.0.0.0"}


def test_swarm_file_has_no_host_address() -> None:
    doc = yaml.safe_load(render(load_values(), "swarm").text)
    assert all("host_ip" not in p for s in doc["services"].values() for p in s.get("ports", []))


def test_default_credentials_on_the_network_are_refused_naming_the_key(tmp_path: Path) -> None:
    values = tmp_path / "laptop.yaml"
    values.write_text("compose:\n  bind_address: 0.0.0.0\n")
    with pytest.raises(ValuesError) as info:
        load_values([values])
    message = info.value.render()
    assert f"{values}:2" in message and "compose.bind_address" in message
    assert "minioadmin/minioadmin" in message and "0.0.0.0" in message
    assert "compose.publish_default_credentials=true" in message  # the explicit way out
    assert "s3.secret_key" in message  # the real fix


def test_staging_defaults_to_every_interface_so_it_names_the_environment() -> None:
    with pytest.raises(ValuesError) as info:
        load_values(sets=["stack.environment=staging"])
    assert "stack.environment" in info.value.render()


@pytest.mark.parametrize("sets", [
    ["compose.bind_address=0.0.0.0", "compose.publish_default_credentials=true"],
    ["compose.bind_address=0.0.0.0", "services.minio.publish=false"],
    ["compose.bind_address=::1"],
])
def test_explicit_acceptance_or_no_exposure_loads(sets: list[str]) -> None:
    load_values(sets=sets)


def test_a_bind_address_must_be_an_ip() -> None:
    with pytest.raises(ValuesError, match="not an IP address"):
        load_values(sets=["compose.bind_address=localhost"])
