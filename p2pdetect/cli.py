"""The `p2pdetect` command line: one subcommand module per job, user errors as one line + exit 2.

Conventions (docs/cli.md, "Command line"): options are never abbreviated (`--early-packet`
is refused, not read as `--early-packets`); `p2pdetect` alone prints the usage and exits 2, a
usage error like any other (click 8.2 does the same; `--help` exits 0); every error is one
line starting `p2pdetect: error: `, and a usage error ends by pointing to the (sub)command's
`--help`; `-v` goes before or after the subcommand; a reader that closes the pipe
(`p2pdetect demo | head`) ends the command quietly with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import select
import sys
import threading

from p2pdetect import __version__
from p2pdetect.errors import P2PDetectError, UsageError
from p2pdetect.options import name_options
from p2pdetect.signals import Interrupted, stop_signals

#: Subcommands, in the order `--help` lists them; each is p2pdetect/cmd_<name>.py.
COMMANDS = ["demo", "extract", "generate", "train", "evaluate", "score", "inspect"]
PROG = "p2pdetect"
VERBOSE_HELP = "log debug detail on stderr"


class _Parser(argparse.ArgumentParser):
    """argparse with the project's conventions: no abbreviated options, and usage errors as
    one line (exit 2) that points to this (sub)command's help."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message}; see '{self.prog} --help'\n")


class _SubcommandParser(_Parser):
    """A subcommand refuses the arguments it does not know itself, so the error names its help
    (argparse would hand them up to the top-level parser, which names its own)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Detect peer-to-peer traffic (including encrypted BitTorrent) from flow statistics.",
        epilog=f"'{PROG} COMMAND --help' describes a command.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_SubcommandParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"p2pdetect.cmd_{name}")
        except ModuleNotFoundError as err:
            if err.name == f"p2pdetect.cmd_{name}":
                continue  # not built yet
            raise
        module.add_parser(sub)
        # `p2pdetect score -v …` as well as `p2pdetect -v score …` (SUPPRESS: absent, it leaves
        # the top-level value alone)
        sub.choices[name].add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                       help=VERBOSE_HELP)
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [P2PDetectError]
    try:
        from p2pdetect.data import GenerateError  # the generator has no dependency on us
        types.append(GenerateError)
    except ImportError:
        pass
    return tuple(types)


#: Subcommands that handle their own signals and child processes (data.generator).
OWN_SIGNALS = {"generate"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # a usage error that deserves the whole usage (click 8.2's no_args_is_help)
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command in OWN_SIGNALS or threading.current_thread() is not threading.main_thread():
        return _run(args)
    try:
        with stop_signals():
            return _run(args)
    except Interrupted as err:  # unwound: unfinished outputs removed, every child ended
        print(f"{PROG}: interrupted by {err}", file=sys.stderr)
        return err.exit_status


class _Formatter(logging.Formatter):
    """'p2pdetect: message' for progress, 'p2pdetect: warning: …' / 'p2pdetect: error: …' for
    the rest; with -v every line names its level ('p2pdetect: debug: …')."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.verbose or record.levelno >= logging.WARNING:
            return f"{PROG}: {record.levelname.lower()}: {text}"
        return f"{PROG}: {text}"


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(verbose))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.captureWarnings(True)


def _run(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader gone shows here, not in the interpreter's last flush
        return status
    except _user_error_types() as err:
        message = name_options(str(err), getattr(sys.modules[args.func.__module__], "CONFIG_OPTIONS", {}))
        if isinstance(err, UsageError):
            message += f"; see '{PROG} {args.command} --help'"
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # another pipe broke: a bug, not the user's doing
        # the reader of our standard output went away (`| head`): it has what it wanted
        _drop_stdout()
        return 0


def _stdout_reader_gone() -> bool:
    """True when standard output is a pipe whose reader has closed it (Linux: POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so what is still buffered goes nowhere quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
