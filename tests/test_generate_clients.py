"""BitTorrent implementations besides libtorrent in the generator: BiglyBT and ctorrent swarm peers.

Label naming, the tracker and the plans run anywhere; the short real runs need root (network
namespaces, tcpdump) and the clients (``make setup`` installs them), and are skipped otherwise.
Each real run proves that payload crossed between implementations, every flow carries one label,
the summary names the implementations, and nothing (JVM, ctorrent, namespace) is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from p2pdetect.data.generator import GenerateConfig, clients, scenarios
from p2pdetect.data.generator.labels import LabelIndex, read_csv
from p2pdetect.data.generator.tracker import Tracker, parse_query, serve
from test_generate import REPO, _namespaces, _procs_mentioning

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="generating captures needs root (netns, tc, tcpdump)")
needs_clients = pytest.mark.skipif(clients.missing(["biglybt", "ctorrent"]) is not None,
                                   reason="BiglyBT or ctorrent is not installed (make setup)")


def test_app_names_say_which_implementations_met_and_how() -> None:
    lt_forced = {"impl": "libtorrent", "enc": "forced", "transport": "tcp"}
    lt_prefer = {"impl": "libtorrent", "enc": "prefer", "transport": "tcp"}
    bb = {"impl": "biglybt", "enc": "forced", "transport": "tcp"}
    ct = {"impl": "ctorrent", "enc": "plain", "transport": "tcp"}
    assert scenarios.pair_app(bb, lt_forced) == "biglybt+libtorrent-mse"
    assert scenarios.pair_app(ct, lt_prefer) == "ctorrent+libtorrent-plain"
    assert scenarios.pair_app(ct, bb) == "biglybt+ctorrent-refused"
    assert scenarios.pair_app(ct, ct) == "ctorrent-plain"
    assert scenarios.pair_app(lt_prefer, dict(bb, enc="prefer")) == "biglybt+libtorrent-prefer"
    assert scenarios.pair_app(lt_prefer, lt_forced) == "libtorrent-mse"
    assert scenarios.pair_app(dict(lt_forced, transport="utp"), dict(lt_forced, transport="utp")) == "libtorrent-utp"
    assert clients.implementations_of("biglybt+libtorrent-mse") == ["biglybt", "libtorrent"]
    assert clients.implementations_of("bittorrent-utp") == ["libtorrent"]  # captures labelled before the renames
    apps = {"ctorrent+libtorrent-plain": {"label": "p2p", "flows": 3}, "biglybt-tracker": {"label": "p2p", "flows": 0},
            "https-browse": {"label": "other", "flows": 9}}
    assert clients.implementations_in(apps) == ["ctorrent", "libtorrent"]


@pytest.mark.parametrize("scenario", ["p2p-biglybt", "p2p-ctorrent", "p2p-mixed-impl"])
def test_multi_implementation_plans_label_every_peer_tracker_and_ghost_pair(scenario: str) -> None:
    for seed in range(4):
        plan = scenarios.build(scenario, seed, 30, 1.0)
        [swarm] = plan.apps
        peers, trk = swarm.params["peers"], swarm.params["tracker"]
        index = LabelIndex(swarm.rows)
        ips = [p["ip"] for p in peers]
        for i, a in enumerate(peers):
            assert [r.app for r in index.match(a["ip"], 40000, trk["ip"], trk["port"], 6)] == [f"{a['impl']}-tracker"]
            for ghost, port in trk["ghosts"]:
                assert [r.app for r in index.match(a["ip"], 40000, ghost, port, 6)] == [f"{a['impl']}-unreachable"]
            for b in peers[i + 1:]:
                for proto in (6, 17, 1):
                    assert [r.app for r in index.match(b["ip"], b["port"], a["ip"], 50000, proto)] == [
                        scenarios.pair_app(a, b)]
        assert len(set(ips)) == len(ips) and any(p["seed"] for p in peers)
        assert set(plan.implementations()) <= set(clients.IMPLEMENTATIONS)
    mixed = scenarios.build("p2p-mixed-impl", 0, 30, 1.0)
    assert mixed.implementations() == ["biglybt", "ctorrent", "libtorrent"]


def test_tracker_answers_compact_peer_lists_with_ghosts_and_forgets_stopped_peers() -> None:
    tracker = Tracker(ghosts=[("127.13.0.200", 7000)], interval=20, seed=1)
    server = serve("127.0.0.1", 0, tracker)
    port = server.server_address[1]
    info_hash = bytes(range(200, 220))

    def announce(peer_port: int, event: str = "") -> bytes:
        q = f"info_hash={urllib.parse.quote(info_hash)}&port={peer_port}&compact=1&numwant=50"
        q += f"&event={event}" if event else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/announce?{q}", timeout=5) as res:
            return res.read()

    def peers(body: bytes) -> set[tuple[str, int]]:
        blob = body.split(b"5:peers", 1)[1]
        n, _, rest = blob.partition(b":")
        raw = rest[: int(n)]
        return {(socket.inet_ntoa(raw[i:i + 4]), struct.unpack(">H", raw[i + 4:i + 6])[0]) for i in range(0, len(raw), 6)}

    try:
        assert peers(announce(6001, "started")) == {("127.13.0.200", 7000)}
        assert peers(announce(6002, "started")) == {("127.13.0.200", 7000), ("127.0.0.1", 6001)}
        announce(6001, "stopped")
        assert peers(announce(6002)) == {("127.13.0.200", 7000)}
        assert b"8:intervali20e" in announce(6002)
    finally:
        server.shutdown()
    assert parse_query("info_hash=%00%FFa&port=1")[b"info_hash"] == [b"\x00\xffa"]


def _run(scenario: str, duration: int, seed: int, out: Path) -> dict:
    from p2pdetect.data.generator import generate

    [summary] = generate(GenerateConfig(scenario=scenario, duration=duration, seed=seed, scale=0.5, out_dir=out))
    assert summary["unlabelled_share"] == 0.0 and summary["worker_failures"] == []
    idx = LabelIndex(read_csv(out / f"{scenario}.labels.csv"))
    from nfstream import NFStreamer

    n = 0
    for f in NFStreamer(source=str(out / f"{scenario}.pcap")):
        assert len({(r.label, r.app) for r in idx.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)}) == 1
        n += 1
    assert n == summary["flows"] > 0
    assert json.loads((out / f"{scenario}.json").read_text())["implementations"] == summary["implementations"]
    ns = f"p2pd-gen-{os.getpid()}"
    assert ns not in _namespaces()
    assert _procs_mentioning(f"{ns}-") == []  # the JVMs' and ctorrents' command lines name the run's work dir
    return summary


@needs_root
@needs_clients
def test_ctorrent_swarm_moves_the_payload_in_plain_bittorrent(tmp_path: Path) -> None:
    s = _run("p2p-ctorrent", 12, 1, tmp_path)
    apps = s["apps"]
    assert s["implementations"] == ["ctorrent"] and s["versions"]["ctorrent"].startswith("dnh")
    # Leechers fetched the payload from the seeds: most of it crossed ctorrent-to-ctorrent connections.
    assert apps["ctorrent-plain"]["bytes"] > 0.8 * s["plan"][0]["size"]
    assert apps["ctorrent-plain"]["ndpi"].get("tcp/BitTorrent", 0) >= 2  # plain handshakes: nDPI knows them
    assert apps["ctorrent-tracker"]["flows"] >= 2 and apps["ctorrent-unreachable"]["flows"] >= 1


@needs_root
@needs_clients
def test_mixed_swarm_trades_across_biglybt_ctorrent_and_libtorrent(tmp_path: Path) -> None:
    s = _run("p2p-mixed-impl", 25, 1, tmp_path)
    apps = s["apps"]
    assert s["implementations"] == ["biglybt", "ctorrent", "libtorrent"]
    assert {"biglybt", "ctorrent", "libtorrent", "java"} <= set(s["versions"])
    # BiglyBT and libtorrent exchange payload; where one of them requires MSE, nDPI sees Unknown TCP flows.
    assert sum(v["bytes"] for k, v in apps.items() if k.startswith("biglybt+libtorrent-")) > 200_000
    assert apps["biglybt+libtorrent-mse"]["ndpi"].get("tcp/Unknown", 0) >= 1
    # ctorrent cannot encrypt: it trades in plain with the peers that allow it, and is refused by the others.
    assert apps["ctorrent+libtorrent-plain"]["bytes"] > 200_000
    assert apps["biglybt+ctorrent-refused"]["bytes"] < 50_000
    if shutil.which("tshark"):  # tshark's second opinion: plain BitTorrent, DHT, tracker announces are p2p
        from p2pdetect.data.generator.audit import audit_capture

        audit = audit_capture(tmp_path / "p2p-mixed-impl.pcap", tmp_path / "p2p-mixed-impl.labels.csv", max_packets=3000)
        assert audit["disagreements"] == 0 and audit["label_vs_tshark"].get("p2p->p2p (tcp)", 0) > 0


@needs_root
@needs_clients
def test_sigterm_takes_down_the_jvms_and_ctorrents_with_the_namespace(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pdetect.data.generator", "--scenario", "p2p-mixed-impl", "--duration", "40", "--scale", "0.3",
         "-o", str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ns = f"p2pd-gen-{proc.pid}"

    def ours(what: str) -> list[str]:  # other runs may share the machine: only this run's work dir counts
        return [cmd for cmd in _procs_mentioning(f"{ns}-") if what in cmd]

    deadline = time.time() + 90  # start-up takes longer on a loaded machine
    while time.time() < deadline and not (ours("com.biglybt.ui.Main") and ours("ctorrent -e")):
        time.sleep(0.3)
    assert ours("com.biglybt.ui.Main") and ours("ctorrent -e"), "BiglyBT and ctorrent never started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=40)
    assert proc.returncode == 2 and "interrupted" in err
    assert ns not in _namespaces()
    assert _procs_mentioning(f"{ns}-") == []
    assert list(tmp_path.iterdir()) == []
