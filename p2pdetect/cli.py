"""The `p2pdetect` command line: one subcommand module per job, user errors as one line + exit 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import threading

from p2pdetect import __version__
from p2pdetect.errors import P2PDetectError
from p2pdetect.signals import Interrupted, stop_signals

#: Subcommands, in the order `--help` lists them; each is p2pdetect/cmd_<name>.py.
COMMANDS = ["demo", "extract", "generate", "train", "evaluate", "score", "inspect"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2), like every other user error here."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="p2pdetect",
        description="Detect peer-to-peer traffic (including encrypted BitTorrent) from flow statistics.")
    parser.add_argument("--version", action="version", version=f"p2pdetect {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"p2pdetect.cmd_{name}")
        except ModuleNotFoundError as err:
            if err.name == f"p2pdetect.cmd_{name}":
                continue  # not built yet
            raise
        module.add_parser(sub)
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
    args = parser.parse_args(argv)
    if args.command in OWN_SIGNALS or threading.current_thread() is not threading.main_thread():
        return _run(args)
    try:
        with stop_signals():
            return _run(args)
    except Interrupted as err:  # unwound: unfinished outputs removed, every child ended
        print(f"p2pdetect: interrupted by {err}", file=sys.stderr)
        return err.exit_status


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="p2pdetect: %(levelname)s: %(message)s" if args.verbose
                        else "p2pdetect: %(message)s", stream=sys.stderr)
    logging.captureWarnings(True)
    try:
        return int(args.func(args) or 0)
    except _user_error_types() as err:
        print(f"p2pdetect: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("p2pdetect: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error worth a traceback
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
