"""deploy/local/stack.py's Kafka layout: one node as before, or a cluster of three with its own ports and folders."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from petition_common.config import REPO_ROOT


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "deploy" / "local"))  # its sibling keycloak.py
    spec = importlib.util.spec_from_file_location("local_stack", REPO_ROOT / "deploy" / "local" / "stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "local_stack", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    monkeypatch.setenv("PETITIONS_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_PORT", "19192")
    monkeypatch.setenv("KAFKA_CONTROLLER_PORT", "19193")
    monkeypatch.delenv("KAFKA_CLUSTER", raising=False)
    return module


def _config(stack, node) -> dict[str, str]:
    """The node's server.properties as kafka_command writes it (its data folder marked formatted, so
    that no JVM is started to format it)."""
    lay = stack.layout()
    data = lay.kafka_data(node.name)
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("")
    stack.kafka_command(lay, node)
    lines = (lay.run / f"{node.name}-server.properties").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line)


def test_one_node_is_the_single_broker_it_always_was(stack):
    (node,) = stack.kafka_nodes()
    assert (node.name, node.port, node.controller_port) == ("kafka", 19192, 19193)
    assert stack.bootstrap_servers() == "127.0.0.1:19192"
    assert stack.layout().kafka_data("kafka").name == "kafka"
    cfg = _config(stack, node)
    assert cfg["controller.quorum.voters"] == "1@127.0.0.1:19193"
    assert cfg["offsets.topic.replication.factor"] == "1" and cfg["min.insync.replicas"] == "1"


def test_a_cluster_is_three_nodes_on_their_own_ports_and_folders_with_the_same_security(stack, monkeypatch):
    single = _config(stack, stack.kafka_nodes()[0])
    monkeypatch.setenv("KAFKA_CLUSTER", "3")
    nodes = stack.kafka_nodes()
    assert [(n.name, n.node_id, n.port, n.controller_port) for n in nodes] == [
        ("kafka-1", 1, 19192, 19193),
        ("kafka-2", 2, 19194, 19195),
        ("kafka-3", 3, 19196, 19197),
    ]
    assert stack.bootstrap_servers() == "127.0.0.1:19192,127.0.0.1:19194,127.0.0.1:19196"
    assert stack.expand("kafka") == ["kafka-1", "kafka-2", "kafka-3"]
    assert stack.expand(None) == ["ferretdb", "kafka-1", "kafka-2", "kafka-3", "keycloak"]
    configs = [_config(stack, n) for n in nodes]
    for node, cfg in zip(nodes, configs, strict=True):
        assert cfg["node.id"] == str(node.node_id)
        assert cfg["controller.quorum.voters"] == "1@127.0.0.1:19193,2@127.0.0.1:19195,3@127.0.0.1:19197"
        assert (
            cfg["listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        )
        assert cfg["log.dirs"].endswith(f"/data/{node.name}")
        assert cfg["offsets.topic.replication.factor"] == "3" and cfg["min.insync.replicas"] == "2"
        assert cfg["transaction.state.log.min.isr"] == "2" and cfg["default.replication.factor"] == "3"
        for key in (k for k in single if "sasl" in k or k in ("authorizer.class.name", "super.users")):
            assert cfg[key] == single[key], key  # one admin password, the same SASL and ACL settings
        assert cfg["allow.everyone.if.no.acl.found"] == "false"


def test_only_one_or_three_nodes(stack, monkeypatch):
    monkeypatch.setenv("KAFKA_CLUSTER", "2")
    with pytest.raises(SystemExit):
        stack.kafka_nodes()
