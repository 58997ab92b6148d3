"""Entry point of one app process inside the namespace: ``python -m p2pdetect.data.generator.worker PARAMS.json``.

Why a separate process per app instance: the orchestrator can start, stop and kill each one
(its process group) independently, and a crashing client cannot take the capture down with it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the app described by the JSON file ``argv[0]``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    params = json.loads(Path(argv[0]).read_text())
    kind = params["kind"]
    if kind == "bt-swarm":
        from p2pdetect.data.generator.bittorrent import run_swarm

        run_swarm(params)
    elif kind == "web":
        from p2pdetect.data.generator.web import run_web

        run_web(params)
    elif kind == "dns":
        from p2pdetect.data.generator.dns import run_dns

        run_dns(params)
    elif kind == "ssh":
        from p2pdetect.data.generator.ssh import run_ssh

        run_ssh(params)
    elif kind == "quic":
        from p2pdetect.data.generator.quic import run_quic

        run_quic(params)
    else:
        from importlib import import_module

        from p2pdetect.data.generator import ed2k_scenarios, evasion, hard_negatives, realistic, webtorrent_scenarios

        kinds = {**hard_negatives.KINDS, **realistic.KINDS, **evasion.KINDS, **webtorrent_scenarios.KINDS,
                 **ed2k_scenarios.KINDS}
        if kind not in kinds:
            raise SystemExit(f"unknown app kind {kind!r}")
        module, entry = kinds[kind]
        getattr(import_module(f"p2pdetect.data.generator.{module}"), entry)(params)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    for thread in threading.enumerate():   # what finalization would wait for, first
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    if threading.active_count() > 1:
        # Daemon threads still blocked in C (an HTTPS handler in SSL_read on a long-poll connection)
        # can crash the interpreter's finalization once OpenSSL's exit handler has freed what they
        # use (the likely cause of the one SIGSEGV of the parallel-downloads worker in CI, session
        # 29; it did not come back in three reruns). The app's work is over: flush and leave
        # without finalizing.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
