"""docker-compose.yml and the Dockerfile against the code they run, without Docker.

Nothing here starts a container: the point is that a renamed CLI option, a settings
field that no longer exists, or a service that lost its GPU reservation fails here,
in the ordinary test run, instead of on the first `docker compose up` of a deployment.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from commands.cli import main
from tunepool.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_PATH = ROOT / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "Dockerfile"

REQUIRED_SERVICES = {
    "redis",
    "postgres",
    "minio",
    "minio-init",
    "migrate",
    "api",
    "gpu-worker",
    "cpu-worker",
    "inference",
    "control",
    "beat",
    "flower",
}
# The command each project service must run; a change here is a deliberate decision.
EXPECTED_COMMANDS = {
    "migrate": ["tunepool", "db", "upgrade"],
    "gpu-worker": ["tunepool", "worker"],
    "cpu-worker": ["tunepool", "worker", "--slots", "2"],
    "inference": ["tunepool", "serve"],
    "control": ["tunepool", "control"],
    "beat": ["tunepool", "beat"],
    "flower": ["tunepool", "flower", "--port", "5555"],
}
# Values that must never have a default in the file: compose must refuse to start.
SECRETS = {
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "TUNEPOOL_S3_SECRET_KEY",
    "TUNEPOOL_FLOWER_PASSWORD",
}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def _load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_PATH.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


COMPOSE = _load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def _command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command")
    assert cmd is not None, f"{service}: no command (the image's CMD is only --help)"
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def _environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _interpolate(value: str) -> str:
    """Resolve compose interpolation as a deployment with every secret set would."""

    def one(match: re.Match[str]) -> str:
        if match["op"] in ("-", ":-"):
            return match["arg"]
        return f"secret-{match['name'].lower()}"

    return _INTERPOLATION.sub(one, value)


def _project_services() -> list[str]:
    """Services that run the tunepool image (they are the ones with a build)."""
    return sorted(name for name, svc in SERVICES.items() if "build" in svc)


def _dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical = ""
    for raw in DOCKERFILE_PATH.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, rest = logical.partition(" ")
        yield keyword.upper(), rest.strip()
        logical = ""


def _dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions by stage name (``FROM image AS name``)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in _dockerfile_instructions():
        if keyword == "FROM":
            image, _, name = args.partition(" AS ")
            current = stages.setdefault(name.strip(), [("FROM", image.strip())])
            continue
        current.append((keyword, args))
    return stages


# The API's image and every other project service's: the Dockerfile's two targets.
API_TARGET, WORKER_TARGET = "api", "worker"
API_IMAGE_SERVICES = {"api", "migrate"}


def _resolve_click_command(argv: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """Walk the click groups along argv: (command, its path, its own arguments)."""
    cmd: click.Command = main
    path: list[str] = []
    rest = list(argv)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        assert sub is not None, f"`tunepool {' '.join([*path, rest[0]])}` is not a command"
        path.append(rest.pop(0))
        cmd = sub
    return cmd, path, rest


# -- services ---------------------------------------------------------------------


def test_every_required_service_exists() -> None:
    missing = REQUIRED_SERVICES - set(SERVICES)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_project_services_are_the_expected_ones() -> None:
    # Infrastructure comes from its own images; everything of ours from the Dockerfile.
    assert set(_project_services()) == {
        "migrate",
        "api",
        "gpu-worker",
        "cpu-worker",
        "inference",
        "control",
        "beat",
        "flower",
    }
    for name in ("redis", "postgres", "minio", "minio-init"):
        assert "build" not in SERVICES[name], name
    assert SERVICES["redis"]["image"] == "redis:7"
    assert SERVICES["postgres"]["image"] == "postgres:16"
    assert SERVICES["minio"]["image"].startswith("minio/minio")
    assert SERVICES["minio-init"]["image"].startswith("minio/mc")


def test_one_image_per_target_and_one_build_for_each() -> None:
    # The API (and the migration) from the `api` target; every other service but the GPU
    # worker from one `worker` image; the GPU worker's differs only in its torch build.
    stages = _dockerfile_stages()
    groups = {
        API_TARGET: sorted(API_IMAGE_SERVICES),
        WORKER_TARGET: [
            s for s in _project_services() if s not in API_IMAGE_SERVICES | {"gpu-worker"}
        ],
    }
    images = {}
    for target, services in groups.items():
        names = {SERVICES[s].get("image") for s in services}
        builds = {yaml.safe_dump(SERVICES[s]["build"], sort_keys=True) for s in services}
        assert len(names) == 1 and None not in names, f"{target}: images {names}"
        assert len(builds) == 1, f"{target}: services build their image differently"
        build = SERVICES[services[0]]["build"]
        assert build["target"] == target and target in stages
        assert (ROOT / build.get("context", ".")).resolve() == ROOT
        assert (ROOT / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE_PATH
        images[target] = names.pop()
    assert images[API_TARGET] != images[WORKER_TARGET]
    assert "args" not in SERVICES["api"]["build"]  # no torch to choose a build of
    gpu = SERVICES["gpu-worker"]
    assert gpu["image"] not in images.values()
    worker_build = SERVICES[groups[WORKER_TARGET][0]]["build"]
    assert {k: v for k, v in gpu["build"].items() if k != "args"} == {
        k: v for k, v in worker_build.items() if k != "args"
    }
    assert set(gpu["build"]["args"]) == {"TORCH_FLAVOR"}


@pytest.mark.parametrize("service", sorted(EXPECTED_COMMANDS))
def test_service_runs_the_expected_command(service: str) -> None:
    assert _command(service) == EXPECTED_COMMANDS[service]


def test_every_project_service_uses_a_known_entry_point() -> None:
    for service in _project_services():
        assert _command(service)[0] in {"tunepool", "gunicorn"}, service


_TUNEPOOL_COMMANDS = [
    s for s in sorted(SERVICES) if "build" in SERVICES[s] and _command(s)[0] == "tunepool"
]


@pytest.mark.parametrize("service", _TUNEPOOL_COMMANDS)
def test_tunepool_command_exists_with_its_options(service: str) -> None:
    argv = _command(service)[1:]
    # --help after the real arguments: click rejects an unknown subcommand or option
    # (exit 2) before the eager --help answers, and --help never runs the command.
    result = CliRunner().invoke(main, [*argv, "--help"])
    assert result.exit_code == 0, f"{service}: `tunepool {' '.join(argv)}`: {result.output}"
    # --help stops before values are converted; parsing without it also checks the
    # values (e.g. that --slots takes an int), still without running the command.
    cmd, path, rest = _resolve_click_command(argv)
    cmd.make_context(" ".join(["tunepool", *path]), rest)


def test_tunepool_command_check_catches_a_wrong_option() -> None:
    # The check above must be able to fail: an option that does not exist is exit 2.
    result = CliRunner().invoke(main, ["worker", "--gpus", "2", "--help"])
    assert result.exit_code != 0


def test_api_runs_gunicorn_on_the_wsgi_app() -> None:
    argv = _command("api")
    assert argv[0] == "gunicorn"
    target = argv[-1]
    module, _, attr = target.partition(":")
    assert (module, attr) == ("api.wsgi", "app"), target
    # Importing api.wsgi builds the app; locate it and read its source instead.
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"{module} is not importable"
    tree = ast.parse(Path(spec.origin).read_text())
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert attr in assigned, f"{spec.origin} defines no top-level {attr!r}"
    # Stock gunicorn: its own threaded worker class, no hooks or classes of ours.
    assert argv[argv.index("-k") + 1] == "gthread"
    assert "-c" not in argv
    # On all interfaces (a container's loopback is unreachable); the worker count is
    # gunicorn's own WEB_CONCURRENCY, set by the service's environment.
    assert argv[argv.index("-b") + 1] == "0.0.0.0:8000"
    assert "WEB_CONCURRENCY" in SERVICES["api"]["environment"]


def test_api_port_and_health_check_agree() -> None:
    api = SERVICES["api"]
    assert any(str(p).endswith(":8000") for p in api["ports"]), api["ports"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(api["healthcheck"]["test"])


# -- settings ---------------------------------------------------------------------


def _tunepool_variables() -> set[str]:
    text = COMPOSE_PATH.read_text() + "\n" + DOCKERFILE_PATH.read_text()
    return set(re.findall(r"\bTUNEPOOL_[A-Z0-9_]+\b", text))


def test_settings_read_tunepool_prefix_case_insensitively() -> None:
    # The mapping below relies on these two facts of the Settings class.
    assert Settings.model_config.get("env_prefix") == "TUNEPOOL_"
    assert not Settings.model_config.get("case_sensitive", False)


def test_every_tunepool_variable_is_a_settings_field() -> None:
    fields = set(Settings.model_fields)
    variables = _tunepool_variables()
    # The file must really be read (guards against an empty regex match passing).
    assert {"TUNEPOOL_DATABASE_URL", "TUNEPOOL_WORKER_NAME"} <= variables
    unknown = {v for v in variables if v.removeprefix("TUNEPOOL_").lower() not in fields}
    assert not unknown, f"not fields of tunepool.settings.Settings: {sorted(unknown)}"


@pytest.mark.parametrize("service", _project_services())
def test_service_environment_builds_valid_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.objects.factory import open_store
    from storage.objects.s3 import S3Store

    for key in [k for k in os.environ if k.upper().startswith("TUNEPOOL_")]:
        monkeypatch.delenv(key)
    env = {k: _interpolate(v) for k, v in _environment(service).items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert str(settings.home) == "/var/lib/tunepool"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in settings.database_url
    assert settings.redis_url.startswith("redis://redis:6379/")
    assert settings.flower_password and settings.s3_secret_key and settings.s3_access_key
    # The URL must be one the object store factory accepts (it builds without connecting).
    store = open_store(
        settings.resolved_object_store_url, settings.s3_access_key, settings.s3_secret_key
    )
    assert isinstance(store, S3Store)
    assert (store.bucket, store.endpoint) == ("tunepool", "minio:9000")


def test_minio_init_creates_the_bucket_the_services_use() -> None:
    url = _environment("api")["TUNEPOOL_OBJECT_STORE_URL"]
    bucket = re.match(r"s3://([^?/]+)", url)
    assert bucket is not None, url
    script = " ".join(str(part) for part in SERVICES["minio-init"]["command"])
    assert re.search(rf"mc mb --ignore-existing local/{re.escape(bucket.group(1))}(\s|$)", script)


def test_secrets_have_no_default() -> None:
    text = COMPOSE_PATH.read_text()
    for match in _INTERPOLATION.finditer(text):
        if match["name"] in SECRETS:
            assert match["op"] in ("?", ":?"), f"{match[0]}: a secret must be required"
    used = {m["name"] for m in _INTERPOLATION.finditer(text)}
    assert used >= SECRETS, f"secrets not interpolated: {sorted(SECRETS - used)}"


# -- redis, workers, flower, ordering ---------------------------------------------


def _flag_values(argv: list[str]) -> dict[str, str]:
    return {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


def test_redis_persists_with_aof_and_never_evicts() -> None:
    flags = _flag_values(_command("redis"))
    assert flags.get("--appendonly") == "yes"
    assert flags.get("--appendfsync") == "everysec"
    assert flags.get("--maxmemory-policy") == "noeviction"
    assert any(str(v).endswith(":/data") for v in SERVICES["redis"]["volumes"])


def test_gpu_worker_reserves_nvidia_devices() -> None:
    devices = SERVICES["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia"
        and d.get("count") == "all"
        and "gpu" in d.get("capabilities", [])
        for d in devices
    ), devices
    assert "deploy" not in SERVICES["cpu-worker"], "the CPU worker must not hold GPUs"


def test_workers_have_stable_distinct_names() -> None:
    workers = [s for s in _project_services() if _command(s)[:2] == ["tunepool", "worker"]]
    assert sorted(workers) == ["cpu-worker", "gpu-worker"]
    names = [_environment(s).get("TUNEPOOL_WORKER_NAME", "") for s in workers]
    for service, name in zip(workers, names, strict=True):
        # Literal: the name is the worker's queue, so it must survive a restart.
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name), f"{service}: {name!r}"
    assert len(set(names)) == len(names), names


def test_flower_has_basic_auth_and_its_port_published() -> None:
    env = _environment("flower")
    assert env["TUNEPOOL_FLOWER_USER"]
    assert re.fullmatch(r"\$\{TUNEPOOL_FLOWER_PASSWORD:\?[^}]+\}", env["TUNEPOOL_FLOWER_PASSWORD"])
    port = _flag_values(_command("flower"))["--port"]
    assert any(str(p).endswith(f":{port}:{port}") for p in SERVICES["flower"]["ports"])


def _depends(service: str) -> dict[str, str]:
    deps = SERVICES[service].get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def test_startup_order() -> None:
    assert _depends("migrate") == {"postgres": "service_healthy"}
    assert _depends("minio-init") == {"minio": "service_healthy"}
    # A serving worker needs Redis and the bucket, never SQL.
    assert _depends("inference") == {
        "redis": "service_healthy",
        "minio-init": "service_completed_successfully",
    }
    for service in ("api", "gpu-worker", "cpu-worker", "control", "beat"):
        deps = _depends(service)
        assert deps.get("migrate") == "service_completed_successfully", service
        assert deps.get("minio-init") == "service_completed_successfully", service
        assert deps.get("redis") == "service_healthy", service
    assert _depends("flower").get("redis") == "service_healthy"


def test_conditions_are_satisfiable() -> None:
    # service_healthy needs a health check; a one-shot that restarts never "completes".
    for service in SERVICES:
        for dep, condition in _depends(service).items():
            assert dep in SERVICES, f"{service} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck"
            if condition == "service_completed_successfully":
                assert SERVICES[dep].get("restart", "no") == "no", dep


# -- Dockerfile -------------------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_dockerfile_builds_both_targets_from_one_base_as_a_non_root_user() -> None:
    stages = _dockerfile_stages()
    assert list(stages) == ["base", API_TARGET, WORKER_TARGET]  # worker: the default
    assert stages["base"][0] == ("FROM", "python:3.11-slim")
    assert stages[API_TARGET][0] == stages[WORKER_TARGET][0] == ("FROM", "base")
    envs = " ".join(args for kw, args in stages["base"] if kw == "ENV")
    assert "TUNEPOOL_HOME=/var/lib/tunepool" in envs
    for target in (API_TARGET, WORKER_TARGET):
        users = [args for kw, args in stages[target] if kw == "USER"]
        assert users and users[-1] not in {"root", "0"}, (target, users)
        # Health checks live per service in compose.
        assert "HEALTHCHECK" not in {kw for kw, _ in stages[target]}


def test_the_api_image_installs_no_worker_extra_and_the_worker_image_does() -> None:
    stages = _dockerfile_stages()
    api_runs = " ".join(args for kw, args in stages[API_TARGET] if kw == "RUN")
    worker_runs = " ".join(args for kw, args in stages[WORKER_TARGET] if kw == "RUN")
    assert re.search(r"\bpip install \.(\s|$)", api_runs), api_runs
    assert "torch" not in api_runs and "[worker]" not in api_runs
    assert re.search(r"""\bpip install "?\.\[worker\]"?(\s|$)""", worker_runs), worker_runs
    # The base install holds none of what runs models; the `worker` extra does, and
    # `dev` (what `make setup` installs) still gives everything.
    project = _pyproject()["project"]
    heavy = {"torch", "transformers", "peft", "safetensors", "seqeval", "gguf", "tokenizers"}
    base = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert not base & heavy, base & heavy
    extras = project["optional-dependencies"]
    worker = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in extras["worker"]}
    assert heavy <= worker, heavy - worker
    assert "tunepool[worker]" in extras["dev"]


def test_dockerfile_copies_every_package_of_the_distribution() -> None:
    include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    for target, instructions in _dockerfile_stages().items():
        if target == "base":
            continue
        copies = " ".join(args for kw, args in instructions if kw == "COPY")
        missing = {p for p in packages if not re.search(rf"(^|\s){p}\s", copies)}
        assert not missing, f"the {target} target does not COPY {sorted(missing)}"
        assert "pyproject.toml" in copies


def test_dockerfile_torch_pin_matches_pyproject() -> None:
    worker_extra = _pyproject()["project"]["optional-dependencies"]["worker"]
    pins = [d for d in worker_extra if d.startswith("torch")]
    assert len(pins) == 1 and "==" in pins[0], pins
    version = pins[0].split("==", 1)[1].strip()
    stage = _dockerfile_stages()[WORKER_TARGET]
    args = dict(a.split("=", 1) for kw, a in stage if kw == "ARG" and "=" in a)
    assert args.get("TORCH_VERSION") == version
    # CPU by default; the GPU worker's image asks for a CUDA flavour of the index.
    assert args.get("TORCH_FLAVOR") == "cpu"
    assert args.get("TORCH_INDEX_URL", "").endswith("/${TORCH_FLAVOR}")
    assert SERVICES["cpu-worker"]["build"]["args"]["TORCH_FLAVOR"] == "cpu"
    gpu_flavor = str(SERVICES["gpu-worker"]["build"]["args"]["TORCH_FLAVOR"])
    assert re.search(r"cu1\d\d", gpu_flavor), gpu_flavor


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".tunepool"} <= ignored
