"""Composition root: parse the command line, load the settings, build the parts and wire them.

Start-up in named steps (`main` -> `run_gui` -> `Agent.start`). The parts live in this package,
one idea a module:

- `commands`: `tapi-agent sign-out` and `tapi-agent diagnose` (no tray);
- `connect`: the sign-in provider, the private runtime directory, the session lock;
- `agent`: the running agent, wiring the units below to the pops and the tray;
- `session_flow` (sign-in, sign-out, identity), `missed_flow` (poll, persist, mark seen,
  delete), `contacts` (look-up and its cache), `journal_flow` (queue, post, retry),
  `recent_calls` (what Recent calls shows),
  `demo_backend` (the embedded mock), `desktop` (settings, log folder, links, autostart),
  `bridge` (the worker-to-GUI signals).

`ui` and `net` never import each other: everything that crosses between them goes through here.
Heavy imports (Qt, the HTTP client, the protocol models) happen inside functions, with
`TYPE_CHECKING` imports for their types, so `--version` and `diagnose` start fast and mypy
still checks the wiring.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tapi_agent import __version__
from tapi_agent.app.agent import Agent, launch_command
from tapi_agent.app.commands import agent_running, run_diagnose, run_sign_out
from tapi_agent.app.connect import make_connect, process_lock, runtime_dir
from tapi_agent.config import Paths, Settings, default_registry, load_settings

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from tapi_agent.ui.single_instance import SingleInstance
    from tapi_agent.ui.tray import Tray

# The names the app had before it became a package (tests, benchmarks, the frozen entry use some).
_agent_running = agent_running
_launch_command = launch_command
_process_lock = process_lock
_runtime_dir = runtime_dir

__all__ = ["Agent", "build_parser", "load_app_settings", "main", "make_connect", "run_diagnose",
           "run_gui", "run_sign_out"]

log = logging.getLogger("tapi_agent.app")


# ---------------------------------------------------------------------------- command line


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes; `suppress` leaves an absent one unset (for subcommands)."""
    default = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False, argument_default=default)
    common.add_argument("--server", metavar="URL", help="backend origin (default from settings)")
    common.add_argument("--config", metavar="FILE", type=Path,
                        help="user settings file to use instead of the default one")
    common.add_argument("--log-json", metavar="PATH",
                        help="write structured log events as JSON lines to PATH ('-' = stdout)")
    common.add_argument("--log-level", metavar="LEVEL",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                        help="DEBUG, INFO, WARNING or ERROR")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The `tapi-agent` command line (DESIGN.md section 8 fixes these names).

    The common options go before or after the subcommand: the subcommands' copies default to
    SUPPRESS, so a value given before the subcommand is not reset to None by the subparser
    (after it, the later one wins)."""
    common = _common_options(suppress=False)
    parser = argparse.ArgumentParser(
        prog="tapi-agent", parents=[common],
        description="Screen pops for calls pushed through Reapit's Notifications API.",
    )
    parser.add_argument("--version", action="version", version=f"tapi-agent {__version__}")
    # Run entries (the MSI's and the user's) start the agent with this: it then goes on only when
    # app.autostart is on (tapi_agent/autostart.py). Not for people, so not in --help.
    parser.add_argument("--at-sign-in", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub_common = _common_options(suppress=True)
    demo = sub.add_parser("demo", parents=[sub_common],
                          help="start an embedded mock backend and play calls (no set-up needed)")
    demo.add_argument("--negotiator", default="JAS", help="demo negotiator id (default JAS)")
    demo.add_argument("--calls", type=int, default=0,
                      help="stop playing after this many calls (default: play forever)")
    demo.add_argument("--gap", type=float, default=1.0, metavar="SECONDS",
                      help="speed of the demo: seconds between call steps (default 1.0)")
    diag = sub.add_parser("diagnose", parents=[sub_common],
                          help="check config, DNS, TCP, TLS, token and the websocket; exit 0 if OK")
    diag.add_argument("--timeout", type=float, default=5.0, help="seconds per step (default 5)")
    sub.add_parser("sign-out", parents=[sub_common],
                   help="sign the running agent out (or end the saved session when none runs)")
    return parser


def load_app_settings(args: argparse.Namespace, paths: Paths) -> Settings:
    """Every settings layer, with the command line on top."""
    cli: dict[str, Any] = {}
    if args.server:
        cli["server.url"] = args.server
    if args.log_level:
        cli["log.level"] = args.log_level
    return load_settings(
        machine_file=paths.machine_config,
        user_file=args.config or paths.user_config,
        registry=default_registry(),
        cli=cli,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tapi-agent`."""
    first = list(sys.argv[1:] if argv is None else argv)[:1]
    if first == ["--verify-id-token"]:
        # Hidden: the frozen app's ID token check child (net/id_token_child.py), before
        # argparse or Qt; it reads its request on stdin.
        from tapi_agent.net.id_token_child import main as verify_id_token_child

        return verify_id_token_child()
    if first == ["--token-store"]:
        # Hidden: the frozen app's credential store child (net/token_child.py), the same way.
        from tapi_agent.net.token_child import main as token_store_child

        return token_store_child()
    args = build_parser().parse_args(argv)
    paths = Paths.default()
    settings = load_app_settings(args, paths)
    if args.command == "diagnose":
        return run_diagnose(args, settings)
    if args.command == "sign-out":
        return run_sign_out(settings)
    if args.command == "demo" and not _mock_available():
        print("tapi-agent demo needs the mock backend, which this installation leaves out.\n"
              "Install it with: pip install 'tapi-agent[mock]'", file=sys.stderr)
        return 2
    return run_gui(args, settings, paths)


def _mock_available() -> bool:
    """The demo's embedded backend is an extra (and is left out of the frozen app)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tapi_agent.mock.server") is not None and \
            importlib.util.find_spec("fastapi") is not None
    except ImportError:
        return False

# ---------------------------------------------------------------------------- GUI


def _qt_app() -> QApplication:
    """The one QApplication, set up for a tray app (no quit when the last window closes)."""
    from tapi_agent.ui.feature_scan import skip_feature_source_scan

    skip_feature_source_scan()  # before anything else is imported after Qt: see its docstring
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("TAPI Agent")
    app.setOrganizationName("TapiAgent")
    app.setApplicationVersion(__version__)
    app.setQuitOnLastWindowClosed(False)  # a tray app lives without windows
    return app


def run_gui(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    """Run the tray agent (or the demo) until Quit, in named steps."""
    _init_logging(args, settings, paths)
    if not _wanted_now(args, settings):
        return 0
    qt = _qt_app()
    instance = _claim_single_instance()
    if instance is None:
        return 0
    from tapi_agent import winsession

    session_hooks = winsession.install(qt)  # Windows: Restart Manager and session end

    # The tray icon first, so the user sees the agent at once; everything else (protocol
    # models, the HTTP client, websockets, the pops) is imported and built once the icon is docked.
    tray = _early_tray()
    holder: list[Agent] = []

    def build() -> None:
        agent = _build_agent(args, settings, paths, qt=qt, instance=instance, tray=tray)
        holder.append(agent)  # shut down after exec() even if start() fails
        _start_agent(agent, settings)

    if tray is None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, build)
    else:
        tray.when_docked(build)  # the rest only once the icon is in the tray: see when_docked
    code: int = qt.exec()
    for agent in holder:
        agent.shutdown()
    instance.release()
    del session_hooks
    return code


def _init_logging(args: argparse.Namespace, settings: Settings, paths: Paths) -> None:
    """Log files (and --log-json), with the settings' problems logged first."""
    from tapi_agent.logs import setup_logging

    setup_logging(log_dir=paths.log_dir, level=settings["log.level"], json_path=args.log_json)
    for err in settings.errors:
        log.warning("settings: %s", err)


def _wanted_now(args: argparse.Namespace, settings: Settings) -> bool:
    """False for a start at sign-in while app.autostart is off (the Run entries' --at-sign-in)."""
    from tapi_agent.autostart import should_run

    if should_run(getattr(args, "at_sign_in", False), settings["app.autostart"]):
        return True
    log.info("not starting at sign-in: app.autostart is off (%s)",
             settings.sources["app.autostart"])
    return False


def _claim_single_instance() -> SingleInstance | None:
    """This user's one agent; None when another runs (it was asked to show itself)."""
    from tapi_agent.ui.single_instance import SingleInstance, default_name

    instance = SingleInstance(default_name(runtime_dir()))
    if not instance.try_acquire():
        log.info("another TAPI Agent is running for this user; it was asked to show itself")
        return None
    return instance


def _build_agent(args: argparse.Namespace, settings: Settings, paths: Paths, *,
                 qt: QApplication, instance: SingleInstance, tray: Tray | None) -> Agent:
    """Build the agent and wire it to the single instance, the crash handler and Quit."""
    from tapi_agent.logs import install_crash_handler

    agent = Agent(settings, paths, demo=args.command == "demo", tray=tray,
                  demo_negotiator=getattr(args, "negotiator", "JAS"),
                  demo_calls=getattr(args, "calls", 0), demo_gap=getattr(args, "gap", 1.0))
    instance.activated.connect(agent.show_status)
    instance.sign_out_requested.connect(agent.sign_out)
    install_crash_handler(
        lambda text: agent.bridge.notice.emit("TAPI Agent hit a problem", text)
    )  # the handler may run in the worker thread: cross by signal
    qt.aboutToQuit.connect(agent.shutdown)
    return agent


def _start_agent(agent: Agent, settings: Settings) -> None:
    """Start it; settings that could not be applied are shown once it can show them."""
    agent.start()
    if settings.errors:  # logged above; the user must see them too (values redacted)
        agent.bridge.notice.emit("Settings not applied",
                                 "\n".join(str(err) for err in settings.errors))


def _early_tray() -> Tray | None:
    """The tray icon, shown as "connecting" before the rest of the agent is built; None when
    this desktop has no tray (the agent then shows its status window)."""
    from tapi_agent.core.connection import ConnectionStatus, ConnState
    from tapi_agent.ui.tray import Tray

    tray = Tray()
    if not tray.available:
        return None
    tray.set_status(ConnectionStatus(ConnState.CONNECTING, 0, None, "Starting"), None)
    return tray
