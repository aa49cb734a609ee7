"""The three-node test cluster is real: three engines in their own namespaces with their own
hostnames, one Swarm, sshd on every node, images on every node."""

from __future__ import annotations

from typing import Any

import paramiko
import pytest
from cluster_bed import cluster, node_api  # noqa: F401 - the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_three_nodes_one_swarm(cluster: dict[str, Any], bed: dict[str, Any]) -> None:  # noqa: F811
    api = node_api(cluster, "manager")
    try:
        nodes = {n["Description"]["Hostname"]: n for n in api.nodes()}
        assert set(nodes) == {"mlc-manager", "mlc-worker1", "mlc-worker2"}
        assert {h: n["Status"]["State"] for h, n in nodes.items()} == dict.fromkeys(nodes, "ready")
        assert nodes["mlc-manager"]["Spec"]["Role"] == "manager"
        assert nodes["mlc-worker1"]["Spec"]["Role"] == "worker"
        # Each node advertises its own bridge address.
        for name, facts in cluster["nodes"].items():
            assert nodes[facts["hostname"]]["Status"]["Addr"] == facts["host"], name
        cluster_id = api.info()["Swarm"]["Cluster"]["ID"]
    finally:
        api.close()
    for name in ("worker1", "worker2"):
        worker = node_api(cluster, name)
        try:
            info = worker.info()
            assert info["Swarm"]["LocalNodeState"] == "active"
            assert info["Name"] == cluster["nodes"][name]["hostname"]
            # Images are per engine: the bed loaded the stand-in image into every node.
            assert worker.inspect_image(bed["standin_image"])["Id"]
        finally:
            worker.close()
    assert cluster_id


@pytest.mark.parametrize("name", ["manager", "worker1", "worker2"])
def test_ssh_on_every_node_sees_its_own_engine(cluster: dict[str, Any], name: str) -> None:  # noqa: F811
    node = cluster["nodes"][name]
    client = paramiko.SSHClient()
    client.load_host_keys(cluster["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(node["host"], port=22, username="root", key_filename=node["key_file"],
                   allow_agent=False, look_for_keys=False, timeout=10)
    try:
        _, out, _ = client.exec_command("hostname; docker info --format '{{.Name}}'", timeout=30)
        assert out.read().decode().split() == [node["hostname"], node["hostname"]]
    finally:
        client.close()
