"""Command-line values: checked at the boundary (click's IntRange habit), and configuration
errors told in the command line's own words.

A configuration object (ExtractConfig, ScoreConfig, TrainConfig, GenerateConfig) says what is
wrong with one template naming its field: "The 'batch_size' parameter of ScoreConfig must be an
int in [1, 1000000]. Got 0 instead." That is right for code that builds the object, wrong for a
user who typed `--batch-size 0`. Each subcommand declares which option sets which field
(CONFIG_OPTIONS in its module); ``name_options`` rewrites the message to name the option:
"--batch-size must be an int in [1, 1000000]. Got 0 instead." The ranges stay declared once, in
the configuration classes.
"""

from __future__ import annotations

import argparse
import re
from typing import Mapping

#: the project's one error template for a bad parameter (features.config.check_param and the
#: generator's GenerateConfig)
_TEMPLATE = re.compile(r"^The '(?P<field>\w+)' parameter of (?P<owner>\w+) must be (?P<expected>.+)\. "
                       r"Got (?P<value>.+) instead\.$", re.DOTALL)


def name_options(message: str, options: Mapping[str, str]) -> str:
    """`message` with a configuration field named by its option ('Owner.field' -> '--option'
    in `options`); other messages unchanged."""
    m = _TEMPLATE.match(message)
    if m is None:
        return message
    option = options.get(f"{m['owner']}.{m['field']}")
    if option is None:
        return message
    return f"{option} must be {m['expected']}. Got {m['value']} instead."


def add_peers_in_progress(p: argparse.ArgumentParser, train: bool = False) -> None:
    """--peers-in-progress (ExtractConfig.peers_in_progress), for the commands that extract;
    train=True adds --no-peers-in-progress and leaves the default to the command (None)."""
    what = ("count an answered TCP connection in its hosts' peers from its --early-packets "
            "snapshot until it ends, not only once it ended (more P2P found, a few more false "
            "positives: docs/evaluation.md; the shipped model uses it")
    if train:
        p.add_argument("--peers-in-progress", action=argparse.BooleanOptionalAction, default=None,
                       help=what + "; default: on when train extracts the captures, as `make model` "
                                   "does; flow tables keep the setting they were extracted with)")
    else:
        p.add_argument("--peers-in-progress", action="store_true", help=what + "; off by default here)")


def jobs(text: str) -> int:
    """--jobs N: processes in parallel, -1 for one per core (joblib's convention); 0 means nothing."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if n == 0 or n < -1:
        raise argparse.ArgumentTypeError(f"must be -1 (one per core) or an int >= 1, got {n}")
    return n
