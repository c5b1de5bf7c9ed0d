"""The Dockerfile, Procfile, Kubernetes manifests and compose file agree with each other and with app.config."""

from __future__ import annotations

import base64
import configparser
import glob
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import SERVE_REQUIRED, VARS, ConfigError, Settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
KNOWN = {var.name for var in VARS}
HTTP_PORT, GRPC_PORT = 8088, 50061
# Variables for the Python runtime in the image, not settings of the service.
RUNTIME_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
}
GOOD_SECRETS = {
    "DATABASE_URL": "postgresql://support:pw@postgres-service:5432/support",
    "JWT_SECRET": "x" * 40,
    "DATA_ENCRYPTION_KEYS": "k1:" + base64.b64encode(bytes(32)).decode(),
}


def _load(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path}: expected one document"
    return docs[0]


def _container() -> dict[str, Any]:
    (container,) = _load(K8S / "deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return container


def _interpolate(value: str) -> str:
    """Compose's ${NAME:-default} with nothing set in the environment."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _compose_env() -> dict[str, str]:
    env = _load(DEPLOY / "docker-compose.yml")["services"]["support-service"]["environment"]
    assert isinstance(env, dict), "write the service's environment as a mapping"
    return {name: _interpolate(str(value)) for name, value in env.items()}


def _dockerfile() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    lines = [line for line in (REPO / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for instruction in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines():
        if not instruction.strip():
            continue
        keyword, _, args = instruction.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), args.strip()))
    return stages


def _env_names(args: str) -> list[str]:
    """Names set by an ENV instruction (``A=1 B=2`` form)."""
    return [word.split("=", 1)[0] for word in shlex.split(args)]


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.y*ml"))
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {
        "docker-compose.yml",
        "k8s/deployment.yaml",
        "k8s/service.yaml",
        "k8s/configmap.yaml",
        "k8s/secret.example.yaml",
    }
    for path in files:
        assert isinstance(_load(path), dict), path


def test_deployment_runs_three_replicas_with_probes_and_resources() -> None:
    deployment = _load(K8S / "deployment.yaml")
    assert (deployment["kind"], deployment["metadata"]["name"]) == ("Deployment", "support-service")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True

    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": HTTP_PORT, "grpc": GRPC_PORT}

    def probe(kind: str) -> tuple[str, int]:
        get = container[kind]["httpGet"]
        return get["path"], ports.get(get["port"], get["port"])

    assert probe("livenessProbe") == ("/health", HTTP_PORT)
    assert probe("readinessProbe") == ("/health/ready", HTTP_PORT)
    assert container["resources"] == {
        "requests": {"memory": "1Gi", "cpu": "500m"},
        "limits": {"memory": "2Gi", "cpu": "1000m"},
    }


def test_deployment_reads_the_secret_and_the_configmap() -> None:
    container = _container()
    assert container["envFrom"] == [{"configMapRef": {"name": "support-service-config"}}]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert {ref["name"] for ref in refs.values()} == {"support-service-secrets"}
    required = {name: ref["key"] for name, ref in refs.items() if not ref.get("optional")}
    assert required == {
        "DATABASE_URL": "database-url",
        "JWT_SECRET": "jwt-secret",
        "DATA_ENCRYPTION_KEYS": "data-encryption-keys",
    }
    secret = _load(K8S / "secret.example.yaml")
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "support-service-secrets")
    assert {ref["key"] for ref in refs.values()} == set(secret["stringData"])


def test_service_exposes_http_and_grpc() -> None:
    service = _load(K8S / "service.yaml")
    assert service["kind"] == "Service"
    labels = _load(K8S / "deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    ports = {
        p["name"]: (p["port"], container_ports.get(p["targetPort"], p["targetPort"])) for p in service["spec"]["ports"]
    }
    assert ports == {"http": (HTTP_PORT, HTTP_PORT), "grpc": (GRPC_PORT, GRPC_PORT)}


def test_configmap_points_at_the_cluster_services() -> None:
    configmap = _load(K8S / "configmap.yaml")
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "support-service-config")
    data = configmap["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    assert data["REDIS_HOST"] == "redis-service"
    assert data["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-service:9092"
    assert data["ELASTICSEARCH_HOST"] == "elasticsearch-service"
    assert data["CORS_ALLOWED_ORIGINS"]
    assert (data["SERVER_PORT"], data["GRPC_SERVER_PORT"]) == (str(HTTP_PORT), str(GRPC_PORT))
    secret_names = {e["name"] for e in _container()["env"]}
    assert not secret_names & set(data), "credentials belong in the Secret"


def test_every_environment_variable_in_the_deploy_files_is_a_setting() -> None:
    named: dict[str, set[str]] = {
        "deploy/k8s/configmap.yaml": set(_load(K8S / "configmap.yaml")["data"]),
        "deploy/k8s/deployment.yaml": {e["name"] for e in _container()["env"]},
        "deploy/docker-compose.yml": set(_compose_env()),
        "Dockerfile": {
            name for stage in _dockerfile() for keyword, args in stage if keyword == "ENV" for name in _env_names(args)
        }
        - RUNTIME_ENV,
    }
    unknown = {f"{where}: {name}" for where, names in named.items() for name in names - KNOWN}
    assert not unknown, f"not in app.config.VARS: {sorted(unknown)}"


def test_kubernetes_settings_parse_and_the_example_secret_fails_closed() -> None:
    data = _load(K8S / "configmap.yaml")["data"]
    example = _load(K8S / "secret.example.yaml")["stringData"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in _container()["env"]}
    from_example = {name: example[key] for name, key in refs.items()}
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**data, **from_example})
    assert {p.split(":")[0] for p in refused.value.problems} == {"JWT_SECRET", "DATA_ENCRYPTION_KEYS"}

    settings = Settings.from_env({**data, **from_example, **GOOD_SECRETS})
    assert (settings.server_port, settings.grpc_server_port) == (HTTP_PORT, GRPC_PORT)
    assert settings.redis_url == "redis://redis-service:6379/11"


def test_compose_runs_the_service_on_its_dependencies() -> None:
    compose = _load(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"].split(":")[1].startswith("7")
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    elastic = services["elasticsearch"]
    assert elastic["image"].rsplit(":", 1)[1].startswith("8.")
    assert elastic["environment"]["discovery.type"] == "single-node"
    assert elastic["environment"]["xpack.security.enabled"] == "false"

    app = services["support-service"]
    build = app["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"
    assert {int(p.split(":")[-1]) for p in app["ports"]} == {HTTP_PORT, GRPC_PORT}
    assert app["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("postgres", "redis", "kafka", "elasticsearch")
    }
    for name in app["depends_on"]:
        assert services[name]["healthcheck"]["test"], name

    env = _compose_env()
    assert env["REDIS_HOST"] == "redis" and env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    settings = Settings.from_env(env)  # every required setting present and valid
    assert settings.elasticsearch_host == "elasticsearch"
    db = services["postgres"]["environment"]
    assert settings.dsn == (
        f"postgresql://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@postgres:5432/{db['POSTGRES_DB']}"
    )
    assert set(SERVE_REQUIRED) <= set(env)


def test_dockerfile_builds_a_wheel_and_runs_it_unprivileged() -> None:
    builder, runtime = _dockerfile()
    assert builder[0][1].split()[-1] == "builder"
    assert runtime[0] == ("FROM", "python:3.11-slim")
    runtime_args = dict(runtime)  # the last of each instruction wins
    assert runtime_args["USER"].split(":")[0] not in ("root", "0")
    assert {int(p) for p in runtime_args["EXPOSE"].split()} == {HTTP_PORT, GRPC_PORT}
    assert runtime_args["CMD"] == '["support-service", "serve"]'
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime

    healthcheck = runtime_args["HEALTHCHECK"]
    assert f"http://127.0.0.1:{HTTP_PORT}/health'" in healthcheck
    exec_form = yaml.safe_load(healthcheck.split("CMD", 1)[1])  # a JSON array is YAML too
    assert exec_form[:2] == ["python", "-c"]
    compile(exec_form[2], "<HEALTHCHECK>", "exec")


def test_dockerfile_copies_every_package() -> None:
    builder = _dockerfile()[0]
    sources = [word for keyword, args in builder if keyword == "COPY" for word in args.split()[:-1]]
    for source in sources:
        if not glob.has_magic(source):
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    patterns = setup["options.packages.find"]["include"].replace(",", " ").split()
    packages = {p.rstrip("*") for p in patterns}
    present = {p for p in packages if (REPO / p).is_dir()}
    assert present <= set(sources), f"packages the wheel needs but the image misses: {present - set(sources)}"


def test_procfile_serves_and_migrates() -> None:
    entries = dict(line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip())
    assert {k: v.strip() for k, v in entries.items()} == {
        "web": "support-service serve",
        "release": "support-service migrate",
    }
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["support-service"] == "app.cli:main"
