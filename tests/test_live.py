"""Live scoring on a loopback interface inside a private network namespace (root only):
idle flows expire with no traffic, SIGTERM flushes every active flow, encrypted BitTorrent
is flagged and HTTPS is not, and the summary balances."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT as REPO, needs_root
from serve_support import build_stand_in_bundle, read_verdicts

pytestmark = needs_root  # (the stand-in model is trained on the committed samples: no corpus needed)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def netns():
    """A private namespace with lo up, MTU 1500 and no segmentation offload; always removed."""
    name = f"p2pd-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "mtu", "1500")
        _ip("-n", name, "link", "set", "lo", "up")
        for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
            subprocess.run(["ip", "-n", name, "addr", "add", f"{a}/8", "dev", "lo"], capture_output=True)
        subprocess.run(["ip", "netns", "exec", name, "ethtool", "-K", "lo", "tso", "off", "gso", "off",
                        "gro", "off"], capture_output=True)
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _in_ns(ns: str, *cmd: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], cwd=REPO, **kw)


def _start_scorer(ns: str, model: str, out: Path, *extra: str) -> subprocess.Popen:
    proc = _in_ns(ns, sys.executable, "-m", "p2pdetect", "score", "--interface", "lo", "--model", model,
                  "-o", str(out), "--max-wait", "0.1", *extra, stderr=subprocess.PIPE, text=True)
    # the output file is opened after the meter has started: wait for it (start-up takes seconds,
    # more on a loaded machine), then give the meter a moment to be capturing
    deadline = time.time() + 60
    while not out.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.5)
    assert proc.poll() is None, proc.stderr.read()
    return proc


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def _balanced(summary: str, verdicts: list[dict]) -> None:
    n = sum(v.get("stage") == "final" for v in verdicts)
    assert f"{n:,} flows metered = {n:,} final verdicts" in summary, summary


UDP_SENDER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.2", 40000))
    for i in range(int(sys.argv[1])):
        s.sendto(b"x" * 100, ("127.0.0.3", int(sys.argv[2]) if len(sys.argv) > 2 else 40001))
        time.sleep(0.01)
""")


def test_idle_flow_expires_without_traffic_and_sigterm_flushes(netns, tmp_path):
    from p2pdetect.features import ExtractConfig

    model = tmp_path / "model"
    build_stand_in_bundle(model, ExtractConfig(idle_timeout=2))
    out = tmp_path / "v.jsonl"
    scorer = _start_scorer(netns, str(model), out, "--early-seconds", "0", "--metrics-port", "19091")
    try:
        # to a service port (syslog): an ordinary flow, whose final verdict is not held (HostEvidence hold_s)
        _in_ns(netns, sys.executable, "-c", UDP_SENDER, "5", "514").wait(timeout=30)
        # nothing else happens on the interface: only the scorer's own clock can expire it
        deadline = time.time() + 8
        final = []
        while time.time() < deadline and not final:
            time.sleep(0.25)
            final = [v for v in read_verdicts(out.read_text()) if v.get("stage") == "final"
                     and v["src_port"] == 40000 and v["dst_port"] == 514]
        assert final and final[0]["packets"] == 5, "idle flow not expired within idle timeout + 6 s"
        scrape = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                                 "import urllib.request; print(urllib.request.urlopen("
                                 "'http://127.0.0.1:19091/metrics', timeout=5).read().decode())"],
                                capture_output=True, text=True, timeout=30).stdout
        metrics = dict(line.rsplit(" ", 1) for line in scrape.splitlines() if line and line[0] != "#")
        assert float(metrics["p2pdetect_flows_total"]) >= 1
        assert float(metrics["p2pdetect_packets_total"]) >= 5
        assert 'p2pdetect_verdicts_total{stage="final",verdict="other"}' in metrics or \
            'p2pdetect_verdicts_total{stage="final",verdict="p2p"}' in metrics
        # a second flow still active when SIGTERM arrives is flushed, scored and written
        _in_ns(netns, sys.executable, "-c", UDP_SENDER.replace("40000", "40010"), "3").wait(timeout=30)
        summary = _stop(scorer)
    finally:
        if scorer.poll() is None:
            scorer.kill()
    verdicts = read_verdicts(out.read_text())
    assert any(v.get("stage") == "final" and v["src_port"] == 40010 and v["packets"] == 3 for v in verdicts)
    _balanced(summary, verdicts)


#: Sends 100-byte UDP datagrams (142-byte frames on lo) for a few seconds while scraping the
#: scorer's metrics every 0.2 s; prints one JSON line per scrape: seconds since the first
#: datagram, datagrams sent, and the metrics.
SEND_AND_SCRAPE = textwrap.dedent("""
    import json, socket, sys, threading, time, urllib.request
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    sent, t0 = [0], time.time()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.3", 40021))  # a listener: no ICMP port-unreachable replies
    def send():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.2", 40020))
        while time.time() - t0 < seconds:
            s.sendto(b"x" * 100, ("127.0.0.3", 40021))
            sent[0] += 1
            time.sleep(0.01)
    sender = threading.Thread(target=send)
    sender.start()
    while sender.is_alive():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        m = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and l[0] != "#")
        print(json.dumps({"t": time.time() - t0, "sent": sent[0], **{k: float(v) for k, v in m.items()
              if k in ("p2pdetect_packets_total", "p2pdetect_bytes_total", "p2pdetect_active_flows",
                       "p2pdetect_flows_total")}}), flush=True)
        time.sleep(0.2)
    print(json.dumps({"done": sent[0]}), flush=True)
""")


def test_metrics_current_while_flows_are_active_and_own_scrapes_not_scored(netns, tmp_path):
    """Packet and byte counters follow traffic within about a second, long before any flow
    ends (idle timeout 120 s, early verdicts off); the scrapes (TCP to the metrics port on
    the captured lo) are neither metered nor scored."""
    model = tmp_path / "model"
    build_stand_in_bundle(model)
    out = tmp_path / "v.jsonl"
    port = "19100"
    scorer = _start_scorer(netns, str(model), out, "--early-packets", "0", "--early-seconds", "0",
                           "--metrics-port", port)
    try:
        run = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SEND_AND_SCRAPE, port, "4"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        *scrapes, done = [json.loads(line) for line in run.stdout.splitlines()]
        time.sleep(1.5)  # the last datagrams reach the meter
        summary = _stop(scorer)
    finally:
        if scorer.poll() is None:
            scorer.kill()
    first = next(s for s in scrapes if s["p2pdetect_packets_total"] > 0)
    assert first["t"] < 2.5, f"packets_total still 0 {first['t']:.1f} s into the traffic"
    late = [s for s in scrapes if s["t"] >= 2.0]
    assert late and all(s["p2pdetect_flows_total"] == 0 and s["p2pdetect_active_flows"] >= 1 for s in late)
    # current: within ~1.5 s of what was sent (ring blocks retire every 1 s on a quiet link)
    assert all(s["p2pdetect_packets_total"] >= s["sent"] - 150 for s in late), late
    # only the datagrams were metered, not the scrapes on the same interface
    assert all(s["p2pdetect_bytes_total"] == 142 * s["p2pdetect_packets_total"] for s in scrapes), scrapes
    verdicts = read_verdicts(out.read_text())
    assert not [v for v in verdicts if int(port) in (v["src_port"], v["dst_port"])]
    final = [v for v in verdicts if v.get("stage") == "final" and v["src_port"] == 40020]
    assert len(final) == 1 and final[0]["packets"] == done["done"], (final, done)
    _balanced(summary, verdicts)


#: The same exchanges over IPv4 or IPv6 on lo: 20 UDP datagrams of 300 bytes each way, 5 of
#: 20 bytes, and a 200 kB TCP download; prints the packets sent per flow kind.
SAME_OVER = textwrap.dedent("""
    import socket, sys, threading
    fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
    host = "::1" if sys.argv[1] == "6" else "127.0.0.1"
    a, b = socket.socket(fam, socket.SOCK_DGRAM), socket.socket(fam, socket.SOCK_DGRAM)
    a.bind((host, 40030)); b.bind((host, 40031))
    for size in [300] * 20 + [20] * 5:
        a.sendto(b"x" * size, (host, 40031)); data, peer = b.recvfrom(2000); b.sendto(data, peer); a.recv(2000)
    srv = socket.socket(fam, socket.SOCK_STREAM); srv.bind((host, 40032)); srv.listen()
    def serve():
        c, _ = srv.accept(); c.recv(10); c.sendall(b"z" * 200_000); c.close()
    t = threading.Thread(target=serve); t.start()
    c = socket.create_connection((host, 40032)); c.sendall(b"GET"); n = 0
    while (d := c.recv(65536)):
        n += len(d)
    t.join(); assert n == 200_000
""")


@pytest.mark.parametrize("family", ["4", "6"])
def test_live_ipv6_beyond_the_snap_length_is_lost_and_counted(netns, tmp_path, family):
    """Measures what docs/scoring.md ("Live capture") states, until the snap-length decision is
    made: at 128 bytes, IPv4 is metered whole; IPv6 keeps only packets of at most 128 bytes
    (nfstream meters IPv6 only when captured whole), and the summary counts the others."""
    model = tmp_path / "model"
    build_stand_in_bundle(model)
    out = tmp_path / "v.jsonl"
    scorer = _start_scorer(netns, str(model), out, "--early-packets", "0", "--early-seconds", "0")
    try:
        run = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SAME_OVER, family],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        time.sleep(1.5)  # the ring's last block reaches the meter
        scorer.send_signal(signal.SIGTERM)
        err = scorer.stderr.read()
        assert scorer.wait(timeout=60) == 0, err
    finally:
        if scorer.poll() is None:
            scorer.kill()
    flows = {v["dst_port"] if v["dst_port"] in (40031, 40032) else v["src_port"]: v
             for v in read_verdicts(out.read_text()) if v.get("stage") == "final"}
    if family == "4":
        assert flows[40031]["packets"] == 50 and flows[40032]["bytes"] >= 200_000
        assert "ignored by the meter" not in err
    else:  # only the 20-byte datagrams (82 bytes on the wire) and the TCP segments without data
        assert flows[40031]["packets"] == 10
        assert flows[40032]["bytes"] < 200_000
        assert "packets ignored by the meter" in err, err


HTTPS_SERVER = textwrap.dedent("""
    import http.server, ssl, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"a" * int(self.path.strip("/") or 1000)
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.4", 8443), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()
""")

HTTPS_CLIENT = textwrap.dedent("""
    import ssl, urllib.request, random, time
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    rng = random.Random(1)
    for i in range(12):
        urllib.request.urlopen(f"https://127.0.0.4:8443/{rng.choice([2000, 20000, 200000])}",
                               context=ctx, timeout=10).read()
        time.sleep(0.2)
""")

SWARM = textwrap.dedent("""
    import random, sys, time
    from pathlib import Path
    from p2pdetect.data.generator.bittorrent import Peer, make_random_payload, make_torrent
    work = Path(sys.argv[1])
    content = work / "seed" / "content"
    make_random_payload(content, 8 << 20, 1, random.Random(1))
    torrent = make_torrent(content, 1 << 16)
    # two seeds and a leecher: P2P is a host trading with several peers (a lone pair of hosts
    # is, by behaviour, a client and its server; models.host_evidence, corroboration)
    seeds = [dict(ip=ip, port=port, up_rate=1_000_000, down_rate=0)
             for ip, port in (("127.0.0.2", 40001), ("127.0.0.5", 40003))]
    leech_spec = dict(ip="127.0.0.3", port=40002, up_rate=2_000_000, down_rate=0)
    peers = [Peer(spec, torrent, work / spec["ip"], "tcp") for spec in seeds]
    leech = Peer(leech_spec, torrent, work, "tcp")
    for p in peers:
        p.start(content)
    leech.start(None)
    deadline = time.time() + float(sys.argv[2])
    while time.time() < deadline and leech.progress() < 1.0:
        leech.connect(seeds)  # until the transfers run (a no-op once connected)
        time.sleep(0.5)
    time.sleep(1)
    print(leech.progress())
    leech.stop()
    for p in peers:
        p.stop()
""")


def _model_for_live(tmp_path: Path) -> tuple[str, bool]:
    """The shipped model when it is built (then the verdicts are asserted), else a stand-in."""
    from p2pdetect.models import DEFAULT_MODEL_DIR

    if (DEFAULT_MODEL_DIR / "model.txt").exists():
        return str(DEFAULT_MODEL_DIR), True
    model = tmp_path / "model"
    build_stand_in_bundle(model)
    return str(model), False


def test_live_bittorrent_flagged_and_https_not(netns, tmp_path):
    try:
        import libtorrent  # noqa: F401
        from p2pdetect.data.generator.bittorrent import run_swarm  # noqa: F401
    except ImportError as err:
        pytest.skip(f"needs libtorrent and data.generator.bittorrent ({err})")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    model, competent = _model_for_live(tmp_path)
    out = tmp_path / "v.jsonl"
    scorer = _start_scorer(netns, model, out)
    procs = []
    try:
        procs.append(_in_ns(netns, sys.executable, "-c", HTTPS_SERVER, str(cert), str(key)))
        time.sleep(0.5)
        procs.append(_in_ns(netns, sys.executable, "-c", SWARM, str(tmp_path / "swarm"), "25",
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        client = _in_ns(netns, sys.executable, "-c", HTTPS_CLIENT)
        assert client.wait(timeout=60) == 0
        progress = procs[1].communicate(timeout=60)[0].strip()
        summary = _stop(scorer)
    finally:
        for p in procs + [scorer]:
            if p.poll() is None:
                p.kill()
    verdicts = read_verdicts(out.read_text())
    _balanced(summary, verdicts)
    final = [v for v in verdicts if v.get("stage") == "final"]
    # BitTorrent connections that exchanged pieces (short duplicate connections that
    # libtorrent closes after the handshake are left out of the assertion)
    p2p = [v for v in final if v["protocol"] == 6 and {v["src_ip"], v["dst_ip"]} in ({"127.0.0.2", "127.0.0.3"},
                                                                                  {"127.0.0.5", "127.0.0.3"})
           and v["packets"] >= 50]
    https = [v for v in final if 8443 in (v["src_port"], v["dst_port"])]
    assert p2p, f"no BitTorrent flow metered (leecher progress {progress})"
    assert len(https) >= 10, "HTTPS flows missing"
    assert any(v.get("stage") == "early" for v in verdicts)
    if not competent:
        pytest.skip("the shipped model (models/default) is not built yet: scorer mechanics checked, "
                    "P2P/HTTPS verdicts not asserted with a stand-in model")
    detail = json.dumps([(v["packets"], v["score"]) for v in p2p + https])
    assert all(v["verdict"] == "p2p" for v in p2p), f"BitTorrent flows not flagged: {detail}"
    assert all(v["verdict"] == "other" for v in https), f"HTTPS flagged as P2P: {detail}"
