"""The `alabel` command line: its tree and help, settings, planned commands, serve, errors.

The server modules' `run` is the one thing replaced here: starting real servers is tested with
the servers. Everything else runs the real click tree through click's CliRunner, and one test
runs the installed console script.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from agentic_labeling import __version__
from agentic_labeling.cli import cli, main
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.planned import PlannedCommand
from agentic_labeling.cli.settings_options import SettingsSource, current_settings
from agentic_labeling.errors import FieldViolation, InvalidArgument, Unavailable, Unimplemented
from agentic_labeling.local_mesh import unused_port
from agentic_labeling.settings import Settings

COMMAND_GROUPS = [
    "serve",
    "triton",
    "up",
    "down",
    "label",
    "search",
    "objects",
    "validate",
    "categories",
    "tracks",
    "stats",
    "registry",
    "datasets",
    "train",
    "runs",
    "evaluate",
    "suggest",
    "models",
    "demo-video",
]
SERVER_MODULES = ("registry_server", "orchestrator_server")


def _walk(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _walk(command, (*path, name))


ALL_COMMANDS = [((), cli), *_walk(cli)]


def _ids(entries: Sequence[tuple[tuple[str, ...], click.Command]]) -> list[str]:
    return [" ".join(("alabel", *path)) for path, _ in entries]


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own ALABEL_* variables must not change what these tests see.
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(cli, list(args), env=env)


@dataclasses.dataclass
class ServerCall:
    settings: Settings
    port_file: Path | None


@pytest.fixture
def server_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[ServerCall]]:
    """Replace each server module's `run` with a recorder: starting real servers is tested in
    tests/servers; here only what the CLI hands them matters."""
    calls: dict[str, list[ServerCall]] = {}
    for name in SERVER_MODULES:
        module = importlib.import_module(f"agentic_labeling.servers.{name}")
        recorded = calls.setdefault(name, [])

        def fake_run(
            settings: Settings, *, port_file: Path | None = None, _into: list[ServerCall] = recorded
        ) -> None:
            _into.append(ServerCall(settings, port_file))

        monkeypatch.setattr(module, "run", fake_run, raising=False)
    return calls


@pytest.fixture
def failing_registry(monkeypatch: pytest.MonkeyPatch, server_calls: object) -> list[Exception]:
    """Make `run` of the registry server raise whatever the test puts in the returned list."""
    to_raise: list[Exception] = []
    module = sys.modules["agentic_labeling.servers.registry_server"]

    def failing_run(settings: Settings, *, port_file: Path | None = None) -> None:
        raise to_raise[0]

    monkeypatch.setattr(module, "run", failing_run)
    return to_raise


def _served_settings(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]], *flags: str, env: dict[str, str]
) -> Settings:
    result = invoke(runner, *flags, "serve", "registry", env=env)
    assert result.exit_code == 0, result.output
    [call] = server_calls["registry_server"]
    return call.settings


def _listed_commands(help_output: str) -> dict[str, str]:
    """The Commands section of a help page: name -> its one-line help."""
    section = help_output.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0]: line for line in section.splitlines()}


# --- the command tree and its help -------------------------------------------------------------


def test_root_help_lists_every_command_group(runner: CliRunner) -> None:
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert list(_listed_commands(result.output)) == COMMAND_GROUPS


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=_ids(ALL_COMMANDS))
def test_every_command_help_works_and_explains_it(
    runner: CliRunner, path: tuple[str, ...], command: click.Command
) -> None:
    result = invoke(runner, *path, "--help")
    assert result.exit_code == 0, result.output
    assert (command.help or "").strip(), f"{path} has no help text"
    first_line = " ".join((command.help or "").split("\n\n")[0].split())
    assert first_line in " ".join(result.output.split())  # compared without the wrapping


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=_ids(ALL_COMMANDS))
def test_every_option_has_help_text(path: tuple[str, ...], command: click.Command) -> None:
    undocumented = [
        p.name for p in command.params if isinstance(p, click.Option) and not (p.help or "").strip()
    ]
    assert undocumented == []


@pytest.fixture
def planned_group(monkeypatch: pytest.MonkeyPatch) -> PlannedCommand:
    """A group `later` whose one command, `later thing`, is planned (every command of this
    version is built, so the mechanism is shown on an example)."""
    command = PlannedCommand(
        "thing",
        plan="does a thing",
        help="Do a thing.",
        params=[click.Option(["--size"], required=True, help="How big.")],
    )
    group = AlabelGroup("later", commands={"thing": command}, help="Things for later.")
    monkeypatch.setitem(cli.commands, "later", group)
    return command


def test_root_help_marks_planned_commands_only(
    runner: CliRunner, planned_group: PlannedCommand
) -> None:
    listed = _listed_commands(invoke(runner, "--help").output)
    assert "(planned)" in listed["later"]  # a group whose commands are all planned
    assert [name for name, line in listed.items() if "(planned)" in line] == ["later"]


def test_planned_command_help_says_it_is_not_available_yet(
    runner: CliRunner, planned_group: PlannedCommand
) -> None:
    result = invoke(runner, "later", "thing", "--help")
    assert "Not available yet in this version (planned: does a thing)." in result.output


def test_version_prints_package_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert result.output == f"alabel, version {__version__}\n"


def test_main_runs_the_tree_as_alabel(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"alabel, version {__version__}\n"


@pytest.mark.parametrize(
    "path",
    [
        ("objects", "list"),
        ("search",),
        ("stats",),
        ("datasets", "list"),
        ("datasets", "get"),
        ("runs", "list"),
        ("evaluate",),
        ("suggest",),
    ],
)
def test_commands_read_by_scripts_offer_json(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert "--json" in [opt for p in command.params for opt in p.opts]


# --- settings -----------------------------------------------------------------------------------


def test_root_has_one_option_per_settings_field_showing_its_env_var(runner: CliRunner) -> None:
    help_text = " ".join(invoke(runner, "--help").output.split())  # undo the wrapping
    for field in dataclasses.fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        assert flag in [opt for p in cli.params for opt in p.opts]
        assert flag in help_text
        assert f"ALABEL_{field.name.upper()}" in help_text
        assert " ".join(str(field.metadata["help"]).split()) in help_text


def test_flag_setting_wins_over_environment(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]]
) -> None:
    settings = _served_settings(
        runner, server_calls, "--registry-port", "7001", env={"ALABEL_REGISTRY_PORT": "7002"}
    )
    assert settings.registry_port == 7001


def test_environment_setting_wins_over_default(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]], tmp_path: Path
) -> None:
    env = {"ALABEL_REGISTRY_PORT": "7002", "ALABEL_DATA_DIR": str(tmp_path)}
    settings = _served_settings(runner, server_calls, env=env)
    assert (settings.registry_port, settings.data_dir) == (7002, tmp_path)


def test_default_setting_applies_without_flag_or_environment(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]]
) -> None:
    settings = _served_settings(runner, server_calls, "--registry-port", "7001", env={})
    assert settings == Settings(registry_port=7001)


def test_bad_setting_flag_exits_2_with_message(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]]
) -> None:
    result = invoke(runner, "--registry-port", "abc", "serve", "registry")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: setting registry_port expects int, got 'abc'\n",
    )
    assert server_calls["registry_server"] == []


def test_bad_setting_environment_variable_exits_2_with_message(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]]
) -> None:
    result = invoke(runner, "serve", "registry", env={"ALABEL_REGISTRY_PORT": "70000"})
    assert result.exit_code == 2
    assert result.stderr == "error: setting registry_port must be between 0 and 65535, got 70000\n"


def test_help_works_whatever_the_settings(runner: CliRunner) -> None:
    result = invoke(runner, "serve", "registry", "--help", env={"ALABEL_REGISTRY_PORT": "abc"})
    assert result.exit_code == 0


def test_settings_are_built_once_per_invocation() -> None:
    source = SettingsSource(flags={"registry_port": "7001"}, environ={})
    assert source.settings() is source.settings()


def test_current_settings_needs_the_root_group() -> None:
    with click.Context(click.Command("alone")), pytest.raises(RuntimeError, match="root group"):
        current_settings()


# --- planned commands ---------------------------------------------------------------------------


def _minimal_args(command: click.Command, existing_dir: Path) -> list[str]:
    """Values for the required parameters only, so that parsing succeeds."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        if isinstance(param.type, click.Choice):
            value = str(param.type.choices[0])
        elif isinstance(param.type, click.Path):
            value = str(existing_dir)
        else:
            value = "a"
        args += [param.opts[0], value] if isinstance(param, click.Option) else [value]
    return args


def test_a_planned_command_exits_3_saying_what_it_will_do(
    runner: CliRunner, tmp_path: Path, planned_group: PlannedCommand
) -> None:
    command = planned_group
    result = invoke(runner, "later", "thing", *_minimal_args(command, tmp_path))
    name = "alabel later thing"
    assert result.exit_code == 3, result.output
    assert result.stderr == (
        f"{name}: not available yet in this version"
        f" (planned: {command.plan}; see `{name} --help`)\n"
    )
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a traceback


def test_unknown_option_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "label", str(tmp_path), "--classes", "a", "--no-such-option")
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert "--no-such-option" in result.stderr


def test_missing_required_option_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "label", str(tmp_path))
    assert result.exit_code == 2
    assert "Missing option '--classes'" in result.stderr


@pytest.mark.parametrize("classes", ["a,,b", "a,", "car,Car"])
def test_class_list_rejects_blank_and_repeated_names(
    runner: CliRunner, tmp_path: Path, classes: str
) -> None:
    result = invoke(runner, "label", str(tmp_path), "--classes", classes)
    assert result.exit_code == 2
    assert "Invalid value for '--classes'" in result.stderr


@pytest.mark.parametrize(
    "split", ["0.5,0.5", "0.5,0.4,x", "0.5,0.6,-0.1", "0.5,0.4,0.2", "nan,0.5,0.5"]
)
def test_split_must_be_three_fractions_adding_up_to_one(runner: CliRunner, split: str) -> None:
    result = invoke(runner, "datasets", "create", "street", "--classes", "car", "--split", split)
    assert result.exit_code == 2
    assert "Invalid value for '--split'" in result.stderr


def test_valid_split_parses(runner: CliRunner) -> None:
    result = invoke(
        runner,
        "--registry-url",
        f"127.0.0.1:{unused_port()}",
        "datasets",
        "create",
        "street",
        "--classes",
        "car",
        "--split",
        "0.7,0.2,0.1",
    )
    # Parsed: the command went on to call the registry, which is not running.
    assert result.exit_code == 1
    assert "is not reachable" in result.stderr


# --- serve --------------------------------------------------------------------------------------


def test_serve_registry_runs_registry_server_with_settings_and_port_file(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]], tmp_path: Path
) -> None:
    port_file = tmp_path / "registry.port"
    result = invoke(
        runner, "--registry-port", "0", "serve", "registry", "--port-file", str(port_file)
    )
    assert result.exit_code == 0, result.output
    assert server_calls["registry_server"] == [ServerCall(Settings(registry_port=0), port_file)]
    assert server_calls["orchestrator_server"] == []


def test_serve_orchestrator_runs_orchestrator_server_with_settings_and_port_file(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]], tmp_path: Path
) -> None:
    port_file = tmp_path / "orchestrator.port"
    result = invoke(
        runner, "--triton-url", "gpu:8001", "serve", "orchestrator", "--port-file", str(port_file)
    )
    assert result.exit_code == 0, result.output
    assert server_calls["orchestrator_server"] == [
        ServerCall(Settings(triton_url="gpu:8001"), port_file)
    ]
    assert server_calls["registry_server"] == []


def test_serve_without_port_file_passes_none(
    runner: CliRunner, server_calls: dict[str, list[ServerCall]]
) -> None:
    assert invoke(runner, "serve", "registry").exit_code == 0
    assert server_calls["registry_server"][0].port_file is None


# --- domain errors ------------------------------------------------------------------------------


def test_domain_error_exits_1_with_its_message_and_no_traceback(
    runner: CliRunner, failing_registry: list[Exception]
) -> None:
    failing_registry.append(Unavailable("Postgres at db:5432 cannot be reached"))
    result = invoke(runner, "serve", "registry")
    assert (result.exit_code, result.stderr) == (
        1,
        "error: Postgres at db:5432 cannot be reached\n",
    )


def test_invalid_argument_lists_its_field_violations(
    runner: CliRunner, failing_registry: list[Exception]
) -> None:
    failing_registry.append(
        InvalidArgument(
            "2 objects are invalid",
            violations=[
                FieldViolation("objects[0].bbox.width", "must be positive"),
                FieldViolation("objects[3].category", "unknown category 'kat'"),
            ],
        )
    )
    result = invoke(runner, "serve", "registry")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: 2 objects are invalid\n"
        "  objects[0].bbox.width: must be positive\n"
        "  objects[3].category: unknown category 'kat'\n"
    )


def test_method_not_built_on_the_server_exits_3(
    runner: CliRunner, failing_registry: list[Exception]
) -> None:
    failing_registry.append(Unimplemented("RegistryService.ReconcileStores"))
    result = invoke(runner, "serve", "registry")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: RegistryService.ReconcileStores is part of the API")


# --- the installed console script ---------------------------------------------------------------


def test_console_script_help_exits_0() -> None:
    # Why it is quick is test_cli_import_loads_no_server_grpc_or_model_code's job; a
    # wall-clock bound here would fail whenever the machine is busy. The timeout is a hang guard.
    script = Path(sys.executable).with_name("alabel")
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout


def test_cli_import_loads_no_server_grpc_or_model_code() -> None:
    probe = (
        "import sys, agentic_labeling.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'torch', 'rich',"
        " 'transformers', 'psycopg') or m.startswith('agentic_labeling.servers.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
