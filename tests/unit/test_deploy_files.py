"""The ops files agree with what the tests run against."""

from __future__ import annotations

import yaml

from petition_common.config import DEFAULT_PORTS, REPO_ROOT
from petition_common.topics import READS, WRITES


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_kafka_version_the_local_stack_runs():
    pom = (REPO_ROOT / "deploy" / "local" / "pom.xml").read_text()
    local = pom.split("<kafka.version>")[1].split("</kafka.version>")[0]
    assert _compose()["services"]["kafka"]["image"] == f"apache/kafka:{local}"


def test_compose_has_every_service_on_its_contract_port():
    services = _compose()["services"]
    for name, port in DEFAULT_PORTS.items():
        env = services[name]["environment"]
        assert env["SERVICE"] == name
        assert env["PORT"] == str(port) == env[f"{name.upper()}_PORT"]
        assert services[name]["ports"] == [f"{port}:{port}"]
    assert services["prometheus"]["ports"] == ["9090:9090"]
    assert services["grafana"]["ports"] == ["3000:3000"]
    # the broker and the database are reached only on the compose network (abuse probe: both were open)
    assert "ports" not in services["mongo"] and "ports" not in services["kafka"]


def test_no_credential_ships_and_compose_takes_them_from_secrets():
    dockerfile = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    assert "rm -f ./config/staff-tokens.yaml" in dockerfile.split("COPY config ./config")[1].split("COPY")[0]
    compose = _compose()
    assert "staff_tokens" not in compose.get("secrets", {})  # static tokens are for development only
    keycloak = compose["services"]["keycloak"]
    assert keycloak["environment"]["KC_BOOTSTRAP_ADMIN_PASSWORD"].startswith("${KEYCLOAK_ADMIN_PASSWORD:?")
    for name in DEFAULT_PORTS:
        service = compose["services"][name]
        env = service["environment"]
        assert env["PETITIONS_ENV"] == "production"
        assert "STAFF_TOKENS_FILE" not in env and env["OIDC_ISSUER"].endswith("/realms/county}")
        assert env["SECRET_KEYS"].startswith("${SECRET_KEYS:?")  # compose refuses to start without it
        # intake alone holds citizens' contact details, encrypted with keys from their own secret
        assert service.get("secrets") == (["contact_keys"] if name == "intake" else None)
    assert compose["services"]["intake"]["environment"]["CONTACT_KEYS_FILE"] == "/run/secrets/contact_keys"


def test_compose_kafka_authenticates_every_client_and_each_service_is_its_own_user():
    compose = _compose()
    kafka = compose["services"]["kafka"]["environment"]
    assert "PLAINTEXT://" not in kafka["KAFKA_LISTENERS"].replace("SASL_PLAINTEXT://", "")
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    setup = compose["services"]["kafka-setup"]
    assert setup["command"][-2:] == ["petition_devtools.kafka_access", "provision"]
    for name in WRITES:  # the services on the bus (the web pages only call the services' HTTP APIs)
        service = compose["services"][name]
        env = service["environment"]
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT" and env["KAFKA_USERNAME"] == name
        assert env["KAFKA_PASSWORD"].startswith(f"${{KAFKA_{name.upper()}_PASSWORD:?")
        assert f"KAFKA_{name.upper()}_PASSWORD" in setup["environment"]
        assert service["depends_on"]["kafka-setup"] == {"condition": "service_completed_successfully"}


def test_the_acl_table_is_the_contracts_who_sends_and_receives_what():
    asyncapi = yaml.safe_load((REPO_ROOT / "contract" / "asyncapi.yaml").read_text())
    channels = {key: ch["address"].removeprefix("{prefix}") for key, ch in asyncapi["channels"].items()}
    sends, receives = {}, {}
    for op in asyncapi["operations"].values():
        topic = channels[op["channel"]["$ref"].removeprefix("#/channels/")]
        (sends if op["action"] == "send" else receives).setdefault(op["x-service"], set()).add(topic)
    assert set(WRITES) == {"intake", "routing", "sla", "stats"} == set(sends) - {"any consumer"}
    for service in WRITES:
        assert set(WRITES[service]) == sends[service] | {"petitions.deadletter.v1"}, service
        assert set(READS[service]) == receives[service], service


def test_compose_cluster_profile_is_three_brokers_a_replica_set_and_two_of_each_service():
    services = _compose()["services"]
    cluster = {name: s for name, s in services.items() if "cluster" in s.get("profiles", [])}
    brokers = {n: s for n, s in cluster.items() if s.get("image", "").startswith("apache/kafka:")}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    voters = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    single = services["kafka"]["environment"]
    for i, (name, broker) in enumerate(sorted(brokers.items()), start=1):
        env = broker["environment"]
        assert broker["image"] == services["kafka"]["image"]  # the version the local stack runs
        assert env["KAFKA_NODE_ID"] == i and env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"SASL_PLAINTEXT://{name}:9092"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2 and env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 2
        # the same security as the single broker: SASL everywhere, ACLs, nobody allowed without one
        for key in ("KAFKA_LISTENERS", "KAFKA_AUTHORIZER_CLASS_NAME", "KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"):
            assert env[key] == single[key], key
        assert broker["volumes"] == [f"{name}-data:/var/lib/kafka/data"] and "ports" not in broker
    assert len({b["environment"]["CLUSTER_ID"] for b in brokers.values()}) == 1

    members = {n: s for n, s in cluster.items() if s.get("image", "").startswith("mongo:") and n != "mongo-init"}
    assert sorted(members) == ["mongo-1", "mongo-2", "mongo-3"]
    for member in members.values():
        assert "--replSet rs0" in member["entrypoint"][-1] and "--keyFile" in member["entrypoint"][-1]
        assert "ports" not in member
    init = cluster["mongo-init"]
    assert set(init["depends_on"]) == set(members) and "rs.initiate" in init["command"][-1]
    for name in members:
        assert f'host: "{name}:27017"' in init["command"][-1]

    for name in DEFAULT_PORTS:
        service = cluster[f"{name}-cluster"]
        env = service["environment"]
        assert service["deploy"]["replicas"] == 2
        assert env["SERVICE"] == name and env["PETITIONS_ENV"] == "production"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert env["KAFKA_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert "@mongo-1:27017,mongo-2:27017,mongo-3:27017/?replicaSet=rs0&" in env["MONGO_URI"]
        if name in WRITES:  # its own Kafka user, as in the single-broker profile
            assert env["KAFKA_USERNAME"] == name == services[name]["environment"]["KAFKA_USERNAME"]
            assert service["depends_on"] == {
                "kafka-setup-cluster": {"condition": "service_completed_successfully"},
                "mongo-init": {"condition": "service_completed_successfully"},
                "keycloak": {"condition": "service_healthy"},
            }
        # nothing of the cluster waits for the single-node broker or database
        assert not {"kafka", "mongo", "kafka-setup"} & set(service["depends_on"])
    assert cluster["web-cluster"]["environment"]["WEB_INTAKE_URL"] == "http://intake-cluster:8081"
    setup = cluster["kafka-setup-cluster"]
    assert setup["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert set(setup["depends_on"]) == set(brokers)
    # the single-node platform is what `docker compose up` starts: no profile on its services
    for name in ("kafka", "mongo", "kafka-setup", *DEFAULT_PORTS):
        assert "profiles" not in services[name], name


def test_compose_runs_the_keycloak_version_the_local_stack_runs():
    local = (REPO_ROOT / "deploy" / "local" / "pom.xml").read_text().split("<keycloak.version>")[1].split("<")[0]
    assert _compose()["services"]["keycloak"]["image"] == f"quay.io/keycloak/keycloak:{local}"
