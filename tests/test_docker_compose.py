"""docker-compose.yml agrees with the code: settings, ports, addresses, commands and images.

There is no Docker engine here (nor in CI), so the deployment is validated, not run: the file
is parsed with the `${NAME:-default}` interpolation Compose applies, every `ALABEL_*`
variable goes through the real `load_settings`, every command through the real click CLI,
Triton's flags are compared with the launcher's own `triton_command`, and the Dockerfiles it
builds are read. The health check script the images run is run here against real servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import importlib.metadata
import re
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from click.testing import CliRunner

from agentic_labeling.cli import cli
from agentic_labeling.local_mesh import unused_port
from agentic_labeling.servers.bootstrap import start_server
from agentic_labeling.settings import ENV_PREFIX, Settings, load_settings
from agentic_labeling.triton_server import TritonLaunch, triton_command

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
HEALTHCHECK = REPO_ROOT / "docker" / "healthcheck.py"
SERVICES = {"triton", "postgres", "qdrant", "registry", "orchestrator"}
OUR_SERVERS = ("registry", "orchestrator")
BUILT_HERE = ("triton", "registry", "orchestrator")

# --- reading the file as Compose would -----------------------------------------------------

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))")


def _substitute(text: str) -> str:
    def one(found: re.Match[str]) -> str:
        if found.group("escaped"):
            return "$"
        braced = found.group("braced")
        if braced is None or ":-" not in braced:
            # Without a default, `docker compose up` needs the variable set: every one has one.
            raise AssertionError(f"{found.group(0)} in docker-compose.yml has no default")
        name, _, default = braced.partition(":-")
        assert re.fullmatch(r"[A-Za-z_]\w*", name), found.group(0)
        assert not name.startswith(ENV_PREFIX), f"{name}: ALABEL_* names are the servers' settings"
        return default

    return _VARIABLE.sub(one, text)


def interpolate(value: Any) -> Any:
    """`value` with `${NAME:-default}` as `default` and `$$` as `$`, like Compose with no .env."""
    if isinstance(value, str):
        return _substitute(value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    interpolated: dict[str, Any] = interpolate(loaded)
    return interpolated


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    for name, value in raw.items():
        # Compose refuses booleans and nulls here; numbers it turns into text.
        assert isinstance(value, str | int | float), name
        assert not isinstance(value, bool), name
    return {name: str(value) for name, value in raw.items()}


def settings_of(service: Mapping[str, Any]) -> Settings:
    return load_settings(environ=environment(service))


def command(service: Mapping[str, Any]) -> list[str]:
    words = service["command"]
    assert isinstance(words, list), "list form: no shell between Docker and the server"
    return [str(w) for w in words]


def flag(words: list[str], name: str) -> str:
    [value] = [w.split("=", 1)[1] for w in words if w.startswith(f"--{name}=")]
    return value


def published(service: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port), from the short `ip:host:container` form."""
    ports: dict[int, tuple[str, int]] = {}
    for entry in service.get("ports", []):
        host_ip, host_port, container_port = str(entry).split(":")
        ports[int(container_port)] = (host_ip, int(host_port))
    return ports


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Mount target -> source, from the short `source:target[:mode]` form."""
    found = {}
    for entry in service.get("volumes", []):
        source, target, *_ = str(entry).split(":")
        found[target] = source
    return found


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts, duration
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def health_test(service: Mapping[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list)
    assert test[0] == "CMD", "exec form: no shell unless asked for"
    return [str(w) for w in test[1:]]


# --- the file ------------------------------------------------------------------------------


def test_compose_file_declares_the_five_services_of_the_mesh(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == SERVICES


def test_every_variable_has_a_default_so_up_needs_no_env_file() -> None:
    interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))  # raises on ${NAME} without :-


def test_every_service_has_an_image_or_build_and_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert service["healthcheck"]["test"], name
        assert seconds(service["healthcheck"]["timeout"]) > 0, name


def test_services_built_here_state_their_command_and_stock_stores_keep_theirs(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in BUILT_HERE:
        assert command(services[name]), name
    for name in ("postgres", "qdrant"):
        image = services[name]["image"]
        assert "build" not in services[name]
        assert ":" in image, f"{name}: pin the image"
        assert not image.endswith(":latest"), f"{name}: pin the image"


# --- settings -----------------------------------------------------------------------------


def test_every_alabel_variable_is_a_setting_with_a_value_load_settings_accepts(
    services: dict[str, dict[str, Any]],
) -> None:
    fields = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    used = set()
    for name, service in services.items():
        variables = {v for v in environment(service) if v.startswith(ENV_PREFIX)}
        assert variables <= fields, f"{name}: {sorted(variables - fields)} are no settings"
        settings_of(service)  # raises InvalidArgument on a value the servers would refuse
        used |= variables
    assert len(used) >= 15


def test_our_servers_listen_on_every_interface_of_their_container(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in OUR_SERVERS:
        assert settings_of(services[name]).host == "0.0.0.0", name


def test_published_ports_are_the_ports_the_servers_listen_on(
    services: dict[str, dict[str, Any]],
) -> None:
    registry = settings_of(services["registry"])
    orchestrator = settings_of(services["orchestrator"])
    triton = command(services["triton"])

    expected = {
        "registry": {registry.registry_port, registry.registry_metrics_port},
        "orchestrator": {orchestrator.orchestrator_port, orchestrator.orchestrator_metrics_port},
        "triton": {int(flag(triton, p)) for p in ("grpc-port", "http-port", "metrics-port")},
    }
    for name, ports in expected.items():
        mapping = published(services[name])
        assert set(mapping) == ports, name
        assert all(host == ("127.0.0.1", port) for port, host in mapping.items()), name
    assert -1 not in expected["registry"] | expected["orchestrator"]  # metrics are on
    for name in ("postgres", "qdrant"):
        assert published(services[name]) == {}, f"{name} stays inside the compose network"


def test_orchestrator_reaches_the_registry_and_triton_where_they_listen(
    services: dict[str, dict[str, Any]],
) -> None:
    orchestrator = settings_of(services["orchestrator"])
    registry_port = settings_of(services["registry"]).registry_port
    triton_grpc_port = flag(command(services["triton"]), "grpc-port")

    assert orchestrator.registry_url == f"registry:{registry_port}"
    assert orchestrator.triton_url == f"triton:{triton_grpc_port}"


def test_registry_reaches_postgres_and_qdrant_with_their_credentials(
    services: dict[str, dict[str, Any]],
) -> None:
    registry = settings_of(services["registry"])
    postgres = environment(services["postgres"])
    dsn = urlsplit(registry.postgres_dsn)
    qdrant = urlsplit(registry.qdrant_url)

    assert (dsn.scheme, dsn.hostname, dsn.port) == ("postgresql", "postgres", 5432)
    assert (dsn.username, dsn.password, dsn.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    assert (qdrant.scheme, qdrant.hostname, qdrant.port) == ("http", "qdrant", 6333)


def test_embeddings_are_as_long_as_the_served_dinov2_base_makes_them(
    services: dict[str, dict[str, Any]],
) -> None:
    assert settings_of(services["registry"]).embedding_dimension == 768


def test_triton_and_our_servers_refuse_images_above_one_pixel_limit(
    services: dict[str, dict[str, Any]],
) -> None:
    limits = {
        name: environment(services[name]).get(f"{ENV_PREFIX}MAX_IMAGE_PIXELS")
        for name in ("triton", *OUR_SERVERS)
    }

    assert None not in limits.values(), f"each sets {ENV_PREFIX}MAX_IMAGE_PIXELS: {limits}"
    assert len(set(limits.values())) == 1, limits


def test_healthchecks_probe_the_ports_the_services_listen_on(
    services: dict[str, dict[str, Any]],
) -> None:
    registry = settings_of(services["registry"])
    orchestrator = settings_of(services["orchestrator"])
    http_port = flag(command(services["triton"]), "http-port")
    postgres = environment(services["postgres"])

    assert health_test(services["registry"]) == [
        "alabel-healthcheck",
        f"grpc://127.0.0.1:{registry.registry_port}",
    ]
    assert health_test(services["orchestrator"]) == [
        "alabel-healthcheck",
        f"grpc://127.0.0.1:{orchestrator.orchestrator_port}",
    ]
    assert health_test(services["triton"]) == [
        "alabel-healthcheck",
        f"http://127.0.0.1:{http_port}/v2/health/ready",
    ]
    pg_isready = health_test(services["postgres"])
    assert pg_isready[0] == "pg_isready"
    assert f"--username={postgres['POSTGRES_USER']}" in pg_isready
    assert f"--dbname={postgres['POSTGRES_DB']}" in pg_isready
    # Over TCP: during its first start Postgres listens on the socket file only.
    assert "--host=127.0.0.1" in pg_isready
    qdrant = health_test(services["qdrant"])
    assert qdrant[:2] == ["bash", "-c"]
    assert "/dev/tcp/127.0.0.1/6333" in qdrant[2]
    assert "GET /readyz " in qdrant[2]
    assert '"$status" = 200' in qdrant[2]  # `$$` in the file: Compose leaves one `$` to bash


def test_services_wait_for_the_ones_they_call_to_be_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    waits = {name: service.get("depends_on", {}) for name, service in services.items()}

    assert {name: set(deps) for name, deps in waits.items() if deps} == {
        "registry": {"postgres", "qdrant"},
        "orchestrator": {"registry", "triton"},
    }
    for deps in waits.values():
        assert all(dep["condition"] == "service_healthy" for dep in deps.values())


def test_stop_grace_outlasts_each_servers_own_grace(services: dict[str, dict[str, Any]]) -> None:
    for name in OUR_SERVERS:
        own = settings_of(services[name]).shutdown_grace_s
        assert seconds(services[name]["stop_grace_period"]) > own, name
    triton_exit = float(flag(command(services["triton"]), "exit-timeout-secs"))
    assert seconds(services["triton"]["stop_grace_period"]) > triton_exit


def test_data_lives_on_declared_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    registry = settings_of(services["registry"])
    named = {
        source
        for service in services.values()
        for source in mounts(service).values()
        if not source.startswith((".", "/"))
    }

    assert mounts(services["registry"])[str(registry.data_dir)] == "masks"
    assert mounts(services["postgres"])["/var/lib/postgresql/data"] == "postgres"
    assert mounts(services["qdrant"])["/qdrant/storage"] == "qdrant"
    assert named == set(compose["volumes"])


# --- commands -------------------------------------------------------------------------------


def resolve_command(words: list[str]) -> click.Command:
    context = click.Context(cli)
    found: click.Command = cli
    for word in words:
        assert isinstance(found, click.Group), f"{found.name} has no subcommands"
        sub = found.get_command(context, word)
        assert sub is not None, f"`alabel {' '.join(words)}`: no command {word!r}"
        found = sub
    return found


def test_every_server_command_is_a_real_alabel_command(
    services: dict[str, dict[str, Any]],
) -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in OUR_SERVERS:
        words = command(services[name])

        resolved = resolve_command(words[1:])
        result = CliRunner().invoke(cli, [*words[1:], "--help"], env=environment(services[name]))

        assert words[0] in scripts, f"{name}: {words[0]} is not a console script"
        assert resolved.name == name
        assert result.exit_code == 0, result.output


def test_triton_runs_with_the_flags_of_our_launcher(services: dict[str, dict[str, Any]]) -> None:
    triton = services["triton"]
    words = command(triton)
    repository = flag(words, "model-repository")
    launch = TritonLaunch(model_repository=Path(repository), host="0.0.0.0")

    expected = triton_command(launch, Path("tritonserver"), Path("/opt/tritonserver/backends"))

    assert words == expected
    assert mounts(triton)[repository] == "./model_repository"
    assert (REPO_ROOT / "model_repository").is_dir()


def test_triton_gets_the_gpus_shared_memory_and_the_weights(
    services: dict[str, dict[str, Any]],
) -> None:
    triton = services["triton"]
    [device] = triton["deploy"]["resources"]["reservations"]["devices"]
    models_dir = settings_of(triton).models_dir
    size = re.fullmatch(r"(\d+)(mb|gb)", triton["shm_size"])

    assert (device["driver"], device["capabilities"]) == ("nvidia", ["gpu"])
    assert size is not None
    assert int(size.group(1)) * {"mb": 1, "gb": 1024}[size.group(2)] >= 1024
    assert models_dir is not None
    assert str(models_dir) in mounts(triton)


# --- images ---------------------------------------------------------------------------------


def dockerfile_of(service: Mapping[str, Any]) -> Path:
    build = service["build"]
    context = (REPO_ROOT / build["context"]).resolve()
    assert context == REPO_ROOT
    dockerfile: Path = context / build["dockerfile"]
    return dockerfile


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "COPY":
            words = [w for w in rest.split() if not w.startswith("--")]
            sources.extend(words[:-1])
    return sources


def dockerignore_allows(dockerfile: Path) -> set[str]:
    lines = Path(f"{dockerfile}.dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "an allowlist: nothing reaches the build unless named"
    return {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}


def test_dockerfiles_exist_and_copy_what_the_repository_has(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in BUILT_HERE:
        dockerfile = dockerfile_of(services[name])
        allowed = dockerignore_allows(dockerfile)

        sources = copy_sources(dockerfile)

        assert sources, name
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: {source} is missing"
            assert source.rstrip("/") in allowed, f"{dockerfile.name}: {source} is ignored"
    assert "docker/healthcheck.py" in copy_sources(dockerfile_of(services["registry"]))


def test_registry_and_orchestrator_run_one_image_from_python_3_11(
    services: dict[str, dict[str, Any]],
) -> None:
    registry, orchestrator = services["registry"], services["orchestrator"]
    bases = [rest for keyword, rest in instructions(dockerfile_of(registry)) if keyword == "FROM"]

    assert registry["build"] == orchestrator["build"]
    assert registry["image"] == orchestrator["image"]
    assert bases == ["python:3.11-slim"]


def test_triton_image_is_the_ngc_release_compose_asks_for(
    services: dict[str, dict[str, Any]],
) -> None:
    triton = services["triton"]
    steps = instructions(dockerfile_of(triton))
    [default] = [
        rest.split("=", 1)[1] for k, rest in steps if k == "ARG" and "TRITON_VERSION" in rest
    ]

    assert [rest for k, rest in steps if k == "FROM"] == [
        "nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3"
    ]
    assert triton["build"]["args"]["TRITON_VERSION"] == default
    assert triton["image"].endswith(f":{default}")
    year, month = (int(part) for part in default.split("."))
    assert (year, month) >= (24, 12), "earlier releases have Python 3.10; the package needs 3.11+"


def pip_installs(dockerfile: Path) -> list[str]:
    """What each `pip install` of the Dockerfile installs, as written (`'.[models]'`)."""
    found = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "RUN":
            for command in re.findall(r"pip install ([^&;|]+)", rest):
                found.extend(w for w in command.split() if not w.startswith("-"))
    return found


def installed_extras(dockerfile: Path) -> set[str]:
    """The extras of the package the Dockerfile installs; it installs nothing else."""
    [target] = pip_installs(dockerfile)
    found = re.fullmatch(r"'?\.\[([\w,-]+)\]'?", target)
    assert found is not None, f"{dockerfile.name}: installs {target}, not the package with extras"
    return set(found.group(1).split(","))


def test_each_image_installs_the_extras_of_the_servers_it_runs(
    services: dict[str, dict[str, Any]],
) -> None:
    optional = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    alabel = dockerfile_of(services["registry"])
    served = {command(services[name])[2] for name in OUR_SERVERS}  # alabel serve NAME

    assert served == {"registry", "orchestrator"}
    assert installed_extras(alabel) == served
    assert installed_extras(dockerfile_of(services["triton"])) == {"models"}
    assert {"registry", "orchestrator", "models"} <= set(optional)


def requirements_of(extras: set[str]) -> str:
    """pyproject.toml's requirements of these extras, with those of the extras they name
    (`agentic-labeling[cli]`), as one text."""
    optional = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    todo, seen, lines = set(extras), set(), []
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for line in optional[extra]:
            lines.append(line)
            named = re.match(r"agentic-labeling\[([\w,-]+)\]", line)
            todo |= set(named.group(1).split(",")) - seen if named else set()
    return " ".join(lines)


def test_only_the_triton_image_installs_torch(services: dict[str, dict[str, Any]]) -> None:
    alabel = requirements_of(installed_extras(dockerfile_of(services["registry"])))
    triton = requirements_of(installed_extras(dockerfile_of(services["triton"])))

    assert re.search(r"(?<![\w-])torch==", triton)
    assert not re.search(r"torch|transformers", alabel)
    assert not re.search(r"psycopg|pgserver|qdrant", triton)


def test_qdrant_server_is_compatible_with_our_qdrant_client(
    services: dict[str, dict[str, Any]],
) -> None:
    server = re.fullmatch(r"qdrant/qdrant:v(\d+)\.(\d+)\.\d+", services["qdrant"]["image"])
    client = importlib.metadata.version("qdrant-client").split(".")

    assert server is not None
    assert server.group(1) == client[0]
    assert abs(int(server.group(2)) - int(client[1])) <= 1


# --- the health check the images run -----------------------------------------------------------


async def healthcheck(*args: str) -> tuple[int, str]:
    # Not blocking the loop: the gRPC server under test answers from this same loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_healthcheck_passes_while_a_server_serves_and_fails_once_it_stopped() -> None:
    settings = Settings(host="127.0.0.1", log_format="text")
    running = await start_server(settings, name="health", port=0, services=[])
    target = f"grpc://{running.address}"

    serving = await healthcheck(target)
    await running.stop(0)
    stopped = await healthcheck(target)

    assert serving == (0, "")
    assert stopped[0] == 1
    assert "UNAVAILABLE" in stopped[1]


class _Readiness(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ready" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def readiness_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Readiness)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_healthcheck_over_http_passes_on_200_only(readiness_url: str) -> None:
    ready = await healthcheck(f"{readiness_url}/ready")
    not_ready = await healthcheck(f"{readiness_url}/v2/health/ready")

    assert ready == (0, "")
    assert not_ready[0] == 1
    assert "503" in not_ready[1]


async def test_healthcheck_of_nothing_listening_or_a_bad_target_fails() -> None:
    refused = await healthcheck(f"http://127.0.0.1:{unused_port()}/v2/health/ready")
    usage = await healthcheck("tcp://127.0.0.1:1")

    assert refused[0] == 1
    assert "Connection refused" in refused[1]
    assert usage[0] == 1
    assert "usage: alabel-healthcheck" in usage[1]
