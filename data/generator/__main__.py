"""``python -m p2pdetect.data.generator``: the generator without the rest of p2pdetect installed."""

from __future__ import annotations

import argparse
import logging
import sys

from p2pdetect.data import GenerateError
from p2pdetect.data.generator.command import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2pdetect.data.generator", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except GenerateError as err:
        sys.stderr.write(f"p2pdetect: error: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
