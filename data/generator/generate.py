"""Run scenarios: namespace up, capture on, apps on, then everything torn down and the result proven.

Outputs per scenario, written only once the capture has passed its checks (temporary names,
then rename): ``<scenario>.pcap``, ``<scenario>.labels.csv`` and ``<scenario>.json``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import capture, clients, hard_negatives, labels, namespace, scenarios, topology, verify
from p2pdetect.data.generator.config import MAX_FRAME, GenerateConfig

log = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[2]
_TOOLS = {"ip": "iproute2", "tc": "iproute2", "ethtool": "ethtool", "tcpdump": "tcpdump", "openssl": "openssl"}


class _Interrupted(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so that every ``finally`` cleans up."""


def _check_tools() -> None:
    missing = sorted({pkg for tool, pkg in _TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise GenerateError(f"missing system packages: {' '.join(missing)}; run 'apt-get install {' '.join(missing)}'")


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception (SIGINT already is one) for the duration."""

    def handler(signum: int, frame: Any) -> None:
        raise _Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Let cleanup finish even if the user presses Ctrl-C again."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _make_cert(workdir: Path) -> tuple[str, str]:
    """A throw-away self-signed certificate for the TLS servers of this run."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=www.example.test"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def missing_requirement(plan: scenarios.Plan) -> str | None:
    """What to install before ``plan`` can run (optional apps: SSH, QUIC), or None."""
    kinds = {a.params["kind"] for a in plan.apps}
    sshd = "ssh" in kinds or any(a.params.get("sshd") for a in plan.apps)  # evasion: SOCKS tunnels through sshd
    if sshd and not Path("/usr/sbin/sshd").exists():
        return f"scenario {plan.scenario} runs an SSH server; run 'apt-get install openssh-server' first"
    if "quic" in kinds and importlib.util.find_spec("aioquic") is None:
        return f"scenario {plan.scenario} runs QUIC clients; run 'pip install aioquic' first"
    need = clients.missing(plan.implementations())
    if need:
        return f"scenario {plan.scenario} runs {', '.join(plan.implementations())}; {need}"
    need = hard_negatives.missing(plan.apps)
    if need:
        return f"scenario {plan.scenario} runs {', '.join(sorted(kinds))}; {need}"
    return None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "kernel": platform.release()}
    try:
        import libtorrent

        out["libtorrent"] = libtorrent.__version__
    except ImportError:
        pass
    import ssl

    out["openssl"] = ssl.OPENSSL_VERSION
    try:
        import nfstream

        out["nfstream"] = nfstream.__version__
    except ImportError:
        pass
    res = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True)
    out["tcpdump"] = (res.stdout or res.stderr).splitlines()[0] if (res.stdout or res.stderr) else "?"
    return out


def _stop_workers(procs: list[tuple[scenarios.AppSpec, subprocess.Popen[bytes]]], grace: float) -> None:
    deadline = time.time() + grace
    while time.time() < deadline and any(p.poll() is None for _, p in procs):
        time.sleep(0.1)
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        alive = [p for _, p in procs if p.poll() is None]
        for p in alive:
            namespace.kill_group(p, sig)
        end = time.time() + wait
        while time.time() < end and any(p.poll() is None for p in alive):
            time.sleep(0.05)


def _tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


def run_scenario(name: str, config: GenerateConfig) -> dict[str, Any]:
    """Generate one scenario into ``config.out_dir``; returns the summary also written as JSON."""
    plan = scenarios.build(name, config.seed, config.duration, config.scale)
    missing = missing_requirement(plan)
    if missing:
        raise GenerateError(missing)
    net = topology.for_config(plan, config.network, config.seed, config.path())  # None: loopback
    plan = net.plan if net else plan
    net_stats = None
    out = config.out_dir
    ns = f"{namespace.PREFIX}{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{ns}-"))
    tmp_pcap = out / f".{name}.pcap.tmp"
    procs: list[tuple[scenarios.AppSpec, subprocess.Popen[bytes]]] = []
    failures: list[str] = []
    started = datetime.now(timezone.utc)
    env = dict(os.environ, PYTHONPATH=str(_REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = False
    log.info("scenario %s seed %d: %d apps, tbf %s mbit, %d s", name, config.seed, len(plan.apps), plan.rate_mbit,
             config.duration)
    try:
        with _signals_raise():
            if net is None:
                namespace.create(ns, plan.rate_mbit)
                cap_ns, iface = ns, "lo"
            else:
                line = topology.up(net, ns, workdir, env, plan.rate_mbit, config.seed)
                cap_ns, iface = topology.router_ns(ns), topology.UP_DEV
            tls = any(a.params.get("tls") for a in plan.apps)
            cert, key = _make_cert(workdir) if tls else (None, None)
            cap = capture.start(cap_ns, tmp_pcap, workdir / "tcpdump.log", iface=iface, hosts=plan.vantage())
            t0 = time.time() + 1.5
            until = t0 + config.duration
            for i, app in enumerate(plan.apps):
                params = dict(app.params, t0=t0, until=until, workdir=str(workdir / f"app{i}"),
                              certfile=cert, keyfile=key)
                pfile = workdir / f"app{i}.json"
                pfile.write_text(json.dumps(params))
                proc = namespace.popen_in(ns, [sys.executable, "-m", "p2pdetect.data.generator.worker", str(pfile)],
                                          workdir / f"app{i}.log", env=env)
                procs.append((app, proc))
            while time.time() < until and any(p.poll() is None for _, p in procs):
                time.sleep(0.2)
            _stop_workers(procs, grace=4.0)
            for i, (app, p) in enumerate(procs):
                if p.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
                    failures.append(f"{app.name} exited {p.returncode}: {_tail(workdir / f'app{i}.log')}")
            time.sleep(net.drain_s() if net else 0.5)  # let the last FIN/ACKs reach the capture
            dropped = capture.stop(cap, workdir / "tcpdump.log")
            net_stats = topology.stop(line, workdir) if net else None
            ok = True
    except (KeyboardInterrupt, _Interrupted) as err:
        raise GenerateError(f"interrupted ({str(err) or 'SIGINT'}); the namespace and its processes were removed, "
                            "no outputs were written") from err
    finally:
        with _signals_ignored():
            for _, p in procs:
                namespace.kill_group(p, signal.SIGKILL)
            namespace.destroy(ns)
            namespace.destroy(topology.router_ns(ns))
            shutil.rmtree(workdir, ignore_errors=True)
            if not ok:
                tmp_pcap.unlink(missing_ok=True)
    for f in failures:
        log.warning("worker failed: %s", f)
    network = net.summary(net_stats) if net else {"network": "loopback"}
    return _finish(name, config, plan, tmp_pcap, started, dropped, failures, network)


def _finish(name: str, config: GenerateConfig, plan: scenarios.Plan, tmp_pcap: Path, started: datetime,
            dropped: int, failures: list[str], network: dict[str, Any]) -> dict[str, Any]:
    """Check the capture, join labels, then publish pcap, labels and summary under final names."""
    out = config.out_dir
    try:
        scan = capture.scan(tmp_pcap, MAX_FRAME)
        if scan.oversized:
            raise GenerateError(
                f"{scan.oversized} packets exceed {MAX_FRAME} bytes (largest {scan.max_frame}): segmentation "
                "offload leaked into the capture; check that 'ethtool -K lo tso off gso off gro off' works here"
            )
        if scan.packets == 0:
            raise GenerateError(f"scenario {name} captured no packets; see the log above for worker failures")
        rows = plan.rows()
        joined = verify.join_flows(tmp_pcap, rows)
        if joined["unlabelled_share"] > config.max_unlabelled_share:
            raise GenerateError(
                f"scenario {name}: {joined['unlabelled_share']:.2%} of flows lack exactly one label "
                f"(limit {config.max_unlabelled_share:.2%}); this is a generator bug, please report it"
            )
    except BaseException:
        tmp_pcap.unlink(missing_ok=True)
        raise
    summary = {
        "scenario": name,
        "seed": config.seed,
        "duration_s": config.duration,
        "scale": config.scale,
        "started_utc": started.isoformat(timespec="seconds"),
        "pcap": f"{name}.pcap",
        "labels": f"{name}.labels.csv",
        "tbf_rate_mbit": plan.rate_mbit,
        **network,
        "snaplen": capture.SNAPLEN,
        "versions": {**_versions(), **clients.versions(plan.implementations())},
        "implementations": clients.implementations_in(joined["apps"]),
        "packets": scan.packets,
        "max_frame_bytes": scan.max_frame,
        "dropped_by_kernel": dropped,
        "worker_failures": failures,
        **joined,
        "plan": [{"app": a.name, "label": a.label,
                  **{k: v for k, v in a.params.items() if k not in ("seed",)}} for a in plan.apps],
    }
    labels.write_csv(plan.rows(), out / f"{name}.labels.csv")
    tmp_json = out / f".{name}.json.tmp"
    tmp_json.write_text(json.dumps(summary, indent=1, sort_keys=False) + "\n")
    os.replace(tmp_pcap, out / f"{name}.pcap")
    os.replace(tmp_json, out / f"{name}.json")
    log.info("%s: %d packets, %d flows, unlabelled %.3f%%, apps %s", name, scan.packets, joined["flows"],
             100 * joined["unlabelled_share"], {k: v["flows"] for k, v in joined["apps"].items()})
    return summary


def generate(config: GenerateConfig) -> list[dict[str, Any]]:
    """Run every scenario of ``config`` in turn; returns their summaries."""
    namespace.require_root()
    _check_tools()
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenerateError(f"cannot create output directory {config.out_dir}: {err.strerror}") from err
    namespace.remove_stale()
    names = list(config.scenarios())
    if config.scenario == "all":  # 'all' means all that can run here; say what is skipped and why
        if config.network != "loopback" or config.rtt_ms is not None:
            names = [n for n in names if n not in topology.LOOPBACK_ONLY]
        for name in list(names):
            missing = missing_requirement(scenarios.build(name, config.seed, config.duration, config.scale))
            if missing:
                log.warning("skipping: %s", missing)
                names.remove(name)
    return [run_scenario(name, config) for name in names]
