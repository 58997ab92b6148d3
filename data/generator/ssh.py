"""SSH: a real OpenSSH server in the namespace, interactive sessions typed at human speed, and scp.

Why: SSH is encrypted end to end like MSE, interactive sessions are long and chatty like idle
peer connections, and scp is a bulk encrypted transfer on a single connection: hard negatives.
Keys are generated per run; sshd runs in the foreground so its process group is ours to kill.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"
_COMMANDS = ("ls -la /usr/bin | head -40", "uptime", "df -h", "ps aux | head -30", "cat /etc/os-release",
             "free -m", "ip -s link", "dmesg | tail -20", "echo hello", "ls /etc", "find /usr/share/doc -maxdepth 1 | head -60",
             "top -b -n 1 | head -25", "journalctl -n 5 2>/dev/null; true", "cd /tmp && ls", "history | tail")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_server(workdir: Path, ip: str, port: int) -> subprocess.Popen[bytes]:
    """Start sshd on ``ip:port`` with a fresh host key; authorises ``workdir/client_key``."""
    workdir.mkdir(parents=True, exist_ok=True)
    _keygen(workdir / "host_key")
    _keygen(workdir / "client_key")
    shutil.copyfile(workdir / "client_key.pub", workdir / "authorized_keys")
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {ip}\nHostKey {workdir / 'host_key'}\n"
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}\nPidFile {workdir / 'sshd.pid'}\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUseDNS no\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)])
    time.sleep(0.5)
    return proc


def _ssh_base(workdir: Path, client_ip: str, port: int) -> list[str]:
    return ["-i", str(workdir / "client_key"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", f"BindAddress={client_ip}", "-o", "BatchMode=yes"]


def socks_tunnel(workdir: Path, client_ip: str, server: str, port: int, socks_port: int,
                 timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """``ssh -N -D 127.0.0.1:socks_port`` from ``client_ip`` to the server: a SOCKS proxy whose
    connections leave from the server. Returns once the proxy port accepts (or ``timeout`` passed)."""
    cmd = ["ssh", "-N", "-D", f"127.0.0.1:{socks_port}", *_ssh_base(workdir, client_ip, port),
           "-o", "ExitOnForwardFailure=yes", "-p", str(port), f"root@{server}"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", socks_port)) == 0:
                return proc
        time.sleep(0.1)
    log.warning("ssh tunnel of %s did not open its SOCKS port %d", client_ip, socks_port)
    return proc


def interactive(workdir: Path, client_ip: str, server: str, port: int, rng: random.Random, until: float) -> None:
    """A shell session: commands typed one key at a time with human gaps, output echoed back."""
    end = min(until - 1, time.time() + rng.uniform(20, 300))
    proc = subprocess.Popen(["ssh", "-tt", *_ssh_base(workdir, client_ip, port), "-p", str(port), f"root@{server}"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    try:
        time.sleep(1.0)
        while time.time() < end and proc.poll() is None:
            for ch in rng.choice(_COMMANDS) + "\n":
                proc.stdin.write(ch.encode())
                proc.stdin.flush()
                time.sleep(min(1.5, rng.lognormvariate(-2.2, 0.6)))
            time.sleep(min(max(0.0, end - time.time()), rng.expovariate(1 / 6.0)))
        proc.stdin.write(b"exit\n")
        proc.stdin.flush()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


def copy(workdir: Path, client_ip: str, server: str, port: int, rng: random.Random, scale: float) -> None:
    """One scp upload or download of a random file (lognormal size around 2 MB x scale)."""
    size = int(min(rng.lognormvariate(14.5, 1.0) * scale, 300e6))
    src = workdir / f"blob-{client_ip}-{rng.getrandbits(32)}.bin"
    with open(src, "wb") as fh:
        fh.write(os.urandom(size))
    base = ["scp", "-q", *_ssh_base(workdir, client_ip, port), "-P", str(port)]
    if rng.random() < 0.5:
        cmd = base + [str(src), f"root@{server}:{workdir}/up-{src.name}"]
    else:
        cmd = base + [f"root@{server}:{src}", str(workdir / f"down-{src.name}")]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    for p in (src, workdir / f"up-{src.name}", workdir / f"down-{src.name}"):
        p.unlink(missing_ok=True)


def rsync_tree(workdir: Path, client_ip: str, server: str, port: int, rng: random.Random, scale: float) -> None:
    """rsync over ssh of a folder of many files: the whole folder the first time, then the changed
    share of it (rsync's delta transfer), pushed to or pulled from the server."""
    tree = workdir / f"tree-{client_ip}"
    if not tree.exists():
        tree.mkdir(parents=True)
        for i in range(rng.randint(20, 200)):
            (tree / f"f{i:04d}.dat").write_bytes(os.urandom(int(min(rng.lognormvariate(10.5, 1.5) * scale, 20e6))))
    else:  # an edited folder: rewrite part of some files, add a few
        files = sorted(tree.iterdir())
        for f in rng.sample(files, k=max(1, len(files) // rng.randint(3, 20))):
            with open(f, "r+b") as fh:
                fh.seek(rng.randrange(max(1, f.stat().st_size)))
                fh.write(os.urandom(rng.randint(100, 200_000)))
        for i in range(rng.randint(0, 5)):
            (tree / f"n{rng.getrandbits(32):08x}.dat").write_bytes(os.urandom(int(rng.lognormvariate(10, 1.5))))
    remote = f"root@{server}:{workdir}/mirror-{client_ip}/"
    shell = " ".join(["ssh", *_ssh_base(workdir, client_ip, port), "-p", str(port)])
    pull = rng.random() < 0.3 and (workdir / f"mirror-{client_ip}").exists()
    cmd = ["rsync", "-a", "--delete", "-e", shell] + ([remote, f"{tree}/"] if pull else [f"{tree}/", remote])
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def run_ssh(params: dict[str, Any]) -> None:
    """params: ``server_ip``, ``port``, ``clients`` (list of {ip, mode ('shell'|'scp'|'rsync'), start}), ``scale``,
    ``seed``, ``until``, ``t0``, ``workdir``."""
    rng = random.Random(params["seed"])
    workdir = Path(params["workdir"])
    server = start_server(workdir, params["server_ip"], params["port"])
    until = params["until"]

    def main(spec: dict[str, Any], seed: int) -> None:
        r = random.Random(seed)
        delay = params["t0"] + spec["start"] - time.time()
        if delay > 0:
            time.sleep(delay)
        while time.time() < until - 2:
            try:
                if spec["mode"] == "shell":
                    interactive(workdir, spec["ip"], params["server_ip"], params["port"], r, until)
                elif spec["mode"] == "rsync":
                    rsync_tree(workdir, spec["ip"], params["server_ip"], params["port"], r, params.get("scale", 1.0))
                else:
                    copy(workdir, spec["ip"], params["server_ip"], params["port"], r, params.get("scale", 1.0))
            except (OSError, subprocess.SubprocessError) as err:
                log.info("ssh client %s: %s", spec["ip"], err)
            time.sleep(min(max(0.0, until - time.time()), r.uniform(1, 10)))

    ts = [threading.Thread(target=main, args=(c, rng.getrandbits(32)), daemon=True) for c in params["clients"]]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=max(0.0, until - time.time() + 3))
    server.terminate()
    try:
        server.wait(timeout=3)
    except subprocess.TimeoutExpired:
        server.kill()
