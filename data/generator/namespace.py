"""Private network namespaces: a shaped, offload-free loopback, or the bare namespaces of a WAN.

Why: generated traffic must never touch a real network, and every packet on the capture
interface must come from a process we started, so labels can be assigned by construction.
A namespace is always removed, with every process inside it, even after errors or signals.
Names are ``p2pd-gen-<pid>`` (and ``p2pd-gen-<pid>-r`` for a WAN's router), so a later run can
remove those whose generator died.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from p2pdetect.data import GenerateError

log = logging.getLogger(__name__)

PREFIX = "p2pd-gen-"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def require_root() -> None:
    """Refuse politely when not root: namespaces, tc and packet capture all need it."""
    if os.geteuid() != 0:
        raise GenerateError(
            "generating captures needs root (network namespaces, tc and tcpdump); "
            "run it as root, e.g. 'sudo $(command -v p2pdetect) generate ...' (sudo does not search a venv)"
        )


def ns_pids(name: str) -> list[int]:
    """Process ids of every process running inside namespace ``name``."""
    res = _ip("netns", "pids", name, check=False)
    return [int(p) for p in res.stdout.split()] if res.returncode == 0 else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> None:
    """Delete namespaces left by earlier generator runs whose process has died (e.g. SIGKILL)."""
    res = _ip("netns", "list", check=False)
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        pid = name[len(PREFIX):].split("-")[0]
        if name.startswith(PREFIX) and pid.isdigit() and not _alive(int(pid)):
            log.warning("removing stale namespace %s", name)
            destroy(name)


def create_bare(name: str) -> None:
    """Create namespace ``name`` with lo up and IPv6 off (no router solicitations or MLD to label)."""
    res = _ip("netns", "add", name, check=False)
    if res.returncode != 0:
        raise GenerateError(f"cannot create network namespace {name}: {res.stderr.strip()}; is iproute2 installed?")
    run_in(name, ["ip", "link", "set", "lo", "up"])
    run_in(name, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
           check=False)


def create(name: str, rate_mbit: float) -> None:
    """Create namespace ``name``: lo up, MTU 1500, offloads off, ``tbf`` at ``rate_mbit``."""
    create_bare(name)
    run_in(name, ["ip", "link", "set", "lo", "mtu", "1500"])
    # Without these, the kernel hands tcpdump 64 KB super-packets that no wire carries.
    run_in(name, ["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"])
    run_in(name, ["ethtool", "-K", "lo", "tx-udp-segmentation", "off"], check=False)
    burst = max(32, int(rate_mbit * 1.25))  # kilobytes: ~10 ms of traffic at the rate, at least 32 KB
    run_in(
        name,
        ["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", f"{rate_mbit}mbit",
         "burst", f"{burst}kb", "latency", "50ms"],
    )
    log.info("namespace %s ready (lo mtu 1500, offloads off, tbf %s mbit)", name, rate_mbit)


def run_in(name: str, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` inside namespace ``name`` and wait for it."""
    res = subprocess.run(["ip", "netns", "exec", name, *cmd], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise GenerateError(
            f"'{' '.join(cmd)}' failed in namespace {name}: {res.stderr.strip() or res.stdout.strip()}"
        )
    return res


def popen_in(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` inside namespace ``name`` in its own process group, output to ``log_path``."""
    with open(log_path, "ab") as fh:
        return subprocess.Popen(
            ["ip", "netns", "exec", name, *cmd],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group ``proc`` leads (it was started with its own session)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def end(proc: subprocess.Popen[bytes], sig: int, timeout: float = 10.0) -> None:
    """Ask ``proc``'s group to finish with ``sig``; SIGKILL it if it has not within ``timeout`` s."""
    kill_group(proc, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, signal.SIGKILL)
        proc.wait()


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM ``proc`` alone (a client of this process's group), SIGKILL it if it has not ended
    within ``timeout`` s; `end` does the same for a process that leads its own group."""
    proc.terminate()   # a no-op once it has ended
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def destroy(name: str, timeout: float = 5.0) -> None:
    """Kill every process left in namespace ``name`` (TERM, then KILL) and delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = ns_pids(name)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        while pids and time.time() < deadline:
            time.sleep(0.1)
            pids = [p for p in ns_pids(name)]
        if not pids:
            break
    res = _ip("netns", "del", name, check=False)
    if res.returncode != 0 and "No such file" not in res.stderr:
        log.error("could not delete namespace %s: %s", name, res.stderr.strip())
