"""docker-compose.yml, Dockerfile, .env.example and .dockerignore, checked by parsing (no Docker
engine here): the services exist and are wired in order, every app command is one the CLI
accepts, every environment variable is one embedq reads, compose refuses to start without the
passwords and the API token, images are pinned, and each health check fits its command."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

import embedq
import embedq.cli
from embedq.healthcheck import probe_for
from embedq.runner import COMMANDS_RUNNING_SCHEDULES

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "listener", "webhook")
#: names of variables outside embedq that the compose file may use: the database's own
EXTERNAL_VARIABLE = re.compile(r"^(DATABASE_URL|POSTGRES_[A-Z0-9_]+)$")
#: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error} (but not $${...}, an escaped $)
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
#: compose must not start without these: no development default can reach production
REQUIRED = {"POSTGRES_PASSWORD", "POSTGRES_LISTENER_PASSWORD", "POSTGRES_WEBHOOK_PASSWORD", "EMBEDQ_API_TOKEN"}
HEALTHCHECK = ["CMD", "python", "-m", "embedq.healthcheck"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def cli_commands() -> dict[str, Any]:
    return typer.main.get_command(embedq.cli.app).commands


def command_args(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def strings(node: Any) -> list[str]:
    """Every string value in the parsed file (comments are gone; anchors are expanded)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def interpolations(compose: dict[str, Any]) -> list[tuple[str, str]]:
    return [found for value in strings(compose) for found in INTERPOLATION.findall(value)]


def read_variables() -> set[str]:
    """Every environment variable embedq reads: the names in settings.py (all of them come
    through Settings.from_env), plus any os.environ / getenv lookup elsewhere in the code."""
    names = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', (ROOT / "embedq" / "settings.py").read_text(encoding="utf-8")))
    for package in ("embedq", "listener", "webhook"):
        for source in (ROOT / package).rglob("*.py"):
            names |= set(
                re.findall(
                    r'(?:environ\.get|getenv|environ\[)\(?\s*"([A-Z][A-Z0-9_]+)"', source.read_text(encoding="utf-8")
                )
            )
    return names


# -- services -----------------------------------------------------------------------------------


def test_the_services_exist(services):
    assert {"db", "migrate", "listener", "webhook"} <= set(services)


def test_the_database_is_pgvector_with_a_readiness_check_and_a_named_volume(compose, services):
    db = services["db"]
    assert db["image"].startswith("pgvector/pgvector:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in (compose.get("volumes") or {})


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_are_built_from_the_dockerfile(services, name):
    build = services[name]["build"]
    assert build["context"] == "."
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert "entrypoint" not in services[name]  # the image's ENTRYPOINT ["embedq"] runs the command


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_commands_are_commands_the_cli_accepts(services, cli_commands, name):
    args = command_args(services[name])
    assert args, f"{name} has no command"
    assert args[0] in cli_commands, f"{name}: `embedq {args[0]}` is not a command ({sorted(cli_commands)})"
    command = cli_commands[args[0]]
    # click parses the options exactly as `embedq` would (unknown options, bad values, a missing
    # argument all raise); the command itself is not run.
    with command.make_context(f"embedq {args[0]}", list(args[1:])) as ctx:
        assert not ctx.args, f"{name}: unexpected extra arguments {ctx.args}"


def test_the_commands_are_the_ones_each_service_is_for(services):
    assert command_args(services["migrate"]) == ["migrate"]
    assert command_args(services["listener"])[0] == "listen"
    assert "--drain" not in command_args(services["listener"])  # a service, not a one-shot
    webhook = command_args(services["webhook"])
    assert webhook[0] == "serve"
    assert webhook[webhook.index("--host") + 1] == "0.0.0.0"
    assert webhook[webhook.index("--port") + 1] == "8000"


def test_a_service_runs_the_schedules(services):
    """Daily maintenance and the weekly retry (dead jobs of transient causes included) run in
    compose: a long-running service runs a command that runs them."""
    running = [
        name
        for name, service in services.items()
        if name in APP_SERVICES
        and command_args(service)[0] in COMMANDS_RUNNING_SCHEDULES
        and "--drain" not in command_args(service)
        and str(service.get("restart")) != "no"
    ]
    assert running, "no compose service runs the schedules (`embedq listen` or `embedq up`)"


def test_the_commands_said_to_run_the_schedules_do(monkeypatch):
    """COMMANDS_RUNNING_SCHEDULES is what the runner does: `listen` starts them beside the listener."""
    import asyncio

    import embedq.runner as runner
    from embedq.settings import Settings

    started: list[str] = []

    async def schedules(dsn, settings, stop):
        started.append("schedules")
        await stop.wait()

    class Listener:
        def __init__(self, *args, **kwargs):
            self.stopped = asyncio.Event()

        def stop(self):
            self.stopped.set()

        async def run(self, drain=False):
            await asyncio.sleep(0)
            return "totals"

    async def embedder(settings):
        return object()

    monkeypatch.setattr(runner, "run_schedules", schedules)
    monkeypatch.setattr(runner, "Listener", Listener)
    monkeypatch.setattr(runner, "_ready_embedder", embedder)
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u@h/db"})
    assert asyncio.run(runner.run_listener(settings)) == "totals"
    assert started == ["schedules"]
    assert asyncio.run(runner.run_listener(settings, drain=True)) == "totals"
    assert started == ["schedules"]  # --drain is a one-shot: no schedules
    assert set(runner.COMMANDS_RUNNING_SCHEDULES) == {"listen", "up"}


def test_the_cli_rejects_what_it_should(cli_commands):
    """The make_context check above is a real check: it fails on options the CLI lacks.
    (typer ships its own copy of click: its errors are TyperExceptions.)"""
    with pytest.raises(typer.TyperException, match="--bogus"):
        cli_commands["serve"].make_context("embedq serve", ["--bogus"])
    with pytest.raises(typer.BadParameter):
        cli_commands["serve"].make_context("embedq serve", ["--port", "not-a-port"])


def test_migrate_runs_once_after_the_database_is_healthy(services):
    migrate = services["migrate"]
    assert str(migrate["restart"]) == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["listener", "webhook"])
def test_services_start_after_a_successful_migration(services, name):
    depends_on = services[name]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    for dependency in depends_on.values():
        assert dependency["condition"] == "service_completed_successfully"


def published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    published = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published.append((str(port.get("published")), str(port["target"])))
        else:
            *_, host_port, container_port = str(port).split(":")
            published.append((host_port, container_port.split("/")[0]))
    return published


def test_the_webhook_publishes_port_8000(services):
    assert ("8000", "8000") in published_ports(services["webhook"])
    assert [name for name, service in services.items() if service.get("ports")] == ["webhook"]


@pytest.mark.parametrize("name", ["listener", "webhook"])
def test_each_health_check_fits_the_command_it_runs(services, name):
    service = services[name]
    check = service["healthcheck"]
    assert not check.get("disable")
    assert check["test"] == HEALTHCHECK
    probe = probe_for(command_args(service), {k: v or "" for k, v in environment(service).items()})
    if name == "webhook":
        (published,) = published_ports(service)
        assert probe.url == f"http://127.0.0.1:{published[1]}/healthz"  # the port the command serves
    else:
        assert probe.url is None  # a listener serves no HTTP: healthy while it runs


def test_the_roles_service_applies_roles_sql_after_migrate(services):
    roles = services.get("roles")
    if roles is None:
        pytest.skip("no roles service")
    assert roles["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert any(str(v).startswith("./sql/roles.sql:") for v in roles["volumes"])
    assert str(roles["restart"]) == "no"


# -- environment ----------------------------------------------------------------------------------


def test_every_environment_variable_is_one_embedq_reads(compose, services):
    known = read_variables()
    assert {"DATABASE_URL", "EMBEDQ_PROVIDER", "QSTASH_TOKEN", "EMBEDQ_WEBHOOK_URL"} <= known
    named: dict[str, str] = {}
    for service_name, service in services.items():
        for variable in environment(service):
            named.setdefault(variable, f"services.{service_name}.environment")
    for variable, _ in interpolations(compose):
        named.setdefault(variable, "an interpolation")
    unknown = {v: where for v, where in named.items() if v not in known and not EXTERNAL_VARIABLE.match(v)}
    assert not unknown, f"variables embedq does not read: {unknown}"


def test_the_app_services_get_the_documented_settings(services):
    documented = {
        "DATABASE_URL",
        "EMBEDQ_PROVIDER",
        "EMBEDQ_MODEL",
        "EMBEDQ_DIMENSIONS",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "QSTASH_TOKEN",
        "QSTASH_URL",
        "QSTASH_CURRENT_SIGNING_KEY",
        "QSTASH_NEXT_SIGNING_KEY",
        "EMBEDQ_WEBHOOK_URL",
        "EMBEDQ_LOG_FORMAT",
    }
    for name in APP_SERVICES:
        env = environment(services[name])
        assert documented <= set(env), f"{name} lacks {documented - set(env)}"
        assert env["EMBEDQ_LOG_FORMAT"] == "json"
    webhook = environment(services["webhook"])
    assert {"EMBEDQ_HOST", "EMBEDQ_PORT"} <= set(webhook)


def test_each_service_connects_as_its_own_role(services):
    users = {}
    for name in APP_SERVICES:
        url = environment(services[name])["DATABASE_URL"]
        match = re.match(r"postgres(?:ql)?://([^:@/]+)", url)
        assert match, url
        users[name] = match.group(1)
    assert users["listener"] == "embedq_listener"
    assert users["webhook"] == "embedq_webhook"
    assert users["migrate"] == environment(services["db"])["POSTGRES_USER"]  # the owner


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one value: ${X:?message} fails when X is unset or empty."""

    def replace(match: re.Match[str]) -> str:
        name, modifier = match.groups()
        value = env.get(name, "")
        if modifier.startswith(":?"):
            if not value:
                raise ValueError(f"required variable {name} is missing a value: {modifier[2:]}")
            return value
        if modifier.startswith(":-"):
            return value or modifier[2:]
        assert not modifier, f"${{{name}{modifier}}}: use :- or :?"
        return value

    return INTERPOLATION.sub(replace, text).replace("$$", "$")


def interpolate_all(values: list[str], env: dict[str, str]) -> list[str]:
    return [interpolate(value, env) for value in values]


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_compose_refuses_to_start_without_the_passwords_and_the_api_token(compose):
    modifiers: dict[str, set[str]] = {}
    for variable, modifier in interpolations(compose):
        modifiers.setdefault(variable, set()).add(modifier[:2])
    assert set(modifiers) >= REQUIRED
    for variable in REQUIRED:
        assert modifiers[variable] == {":?"}, f"${{{variable}}} must be required everywhere it is used"
    for variable in set(modifiers) - REQUIRED:
        assert modifiers[variable] == {":-"}, f"${{{variable}}}: optional settings default to empty"

    values = strings(compose)
    filled = {name: f"{name.lower()}-value" for name in REQUIRED}
    for missing in sorted(REQUIRED):
        with pytest.raises(ValueError, match=f"required variable {missing} is missing"):
            interpolate_all(values, {**filled, missing: ""})
    resolved = interpolate_all(values, filled)
    assert "postgresql://embedq_webhook:postgres_webhook_password-value@db:5432/embedq" in resolved


def test_no_secret_has_a_default_value(compose):
    for variable, modifier in interpolations(compose):
        if re.search(r"PASSWORD|TOKEN|KEY", variable):
            assert modifier in (":-", "") or modifier.startswith(":?"), f"${{{variable}{modifier}}}"


def test_the_webhook_is_published_only_with_the_api_token(services):
    token = environment(services["webhook"])["EMBEDQ_API_TOKEN"]
    assert token is not None and token.startswith("${EMBEDQ_API_TOKEN:?")


def test_the_env_example_names_every_variable_compose_reads(compose):
    example = env_example()
    assert set(example) == {variable for variable, _ in interpolations(compose)}
    assert {name: example[name] for name in REQUIRED} == dict.fromkeys(REQUIRED, "")  # copied as is: refused
    with pytest.raises(ValueError, match="is missing a value"):
        interpolate_all(strings(compose), example)


def test_images_are_pinned_to_a_version(services):
    images = {name: service["image"] for name, service in services.items() if "image" in service}
    assert set(images) == {"db", "roles", "migrate", "listener", "webhook"}
    for name, image in images.items():
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
        if repository == "pgvector/pgvector":
            assert re.fullmatch(r"\d+\.\d+\.\d+-pg\d+", tag), f"{name}: {image} names no pgvector version"
        else:
            assert (repository, tag) == ("embedq", embedq.__version__), f"{name}: {image}"


# -- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_the_dockerfile_builds_on_a_pinned_python_slim_and_runs_embedq():
    instructions = dockerfile_instructions()
    bases = {arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"}
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", bases.pop())  # a patch release on a named Debian
    stage = final_stage()
    by_keyword: dict[str, list[str]] = {}
    for keyword, arguments in stage:
        by_keyword.setdefault(keyword, []).append(arguments)

    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == ["embedq"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "embedq" in scripts
    assert json.loads(by_keyword["CMD"][-1]) == ["up"]
    assert "8000" in {port.split("/")[0] for ports in by_keyword["EXPOSE"] for port in ports.split()}
    user = by_keyword["USER"][-1]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))


def test_the_dockerfile_installs_the_package_after_copying_it():
    stage = final_stage()
    copy_all = next(i for i, (k, a) in enumerate(stage) if k == "COPY" and a.split()[-2:] == [".", "."])
    install = next(i for i, (k, a) in enumerate(stage) if k == "RUN" and "pip install --no-deps ." in a)
    assert copy_all < install


def test_the_image_health_check_fits_its_default_command():
    stage = final_stage()
    (arguments,) = [a for k, a in stage if k == "HEALTHCHECK"]
    assert json.loads(arguments[arguments.index("CMD") + 3 :].strip()) == HEALTHCHECK[1:]
    env = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(arguments)))
    (default,) = [json.loads(a) for k, a in stage if k == "CMD"]
    assert probe_for(default, env).url == f"http://127.0.0.1:{env['EMBEDQ_PORT']}/healthz"
    assert probe_for(["listen"], env).url is None


def test_the_dockerignore_keeps_local_state_out_and_the_package_in():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".venv", ".embedq", ".git"):
        assert excluded in patterns
    needed = [
        "pyproject.toml",
        "README.md",
        "alembic.ini",
        "sql/roles.sql",
        "sql/queries.sql",
        "sql/schema/0001_embedq.sql",
        "alembic/env.py",
        "embedq/cli.py",
        "embedq/healthcheck.py",
        "listener/worker.py",
        "webhook/app.py",
        "webhook/dashboard.html",
    ]
    for path in needed:
        assert (ROOT / path).exists(), path
        for pattern in patterns:
            bare = pattern.lstrip("!").removeprefix("**/").rstrip("/")
            assert not (fnmatch.fnmatch(path, bare) or path.startswith(bare + "/")), f"{pattern} excludes {path}"
