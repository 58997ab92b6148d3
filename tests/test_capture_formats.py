"""Captures the meter would read as nothing (issue 10, items 5-7): link types, QinQ, mixed
pcapng interfaces, IPv6 cut by the snap length, a cut-off last record, compressed files.

Every capture is crafted here (tests/craft.py): the same conversation framed each way must
give the same flows as plain Ethernet.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import struct

import numpy as np
import pytest

from conftest import needs_root, run_cli
from craft import Pkt, tcp_flow, write_pcap, write_pcapng
from p2pdetect.features.captures import validate_capture
from p2pdetect.features.extract import extract_capture
from p2pdetect.features.reader import prepare_capture
from p2pdetect.errors import BadCaptureError

COUNTS = ["bidirectional_packets", "bidirectional_bytes", "src2dst_packets", "dst2src_bytes",
          "bidirectional_mean_ps", "bidirectional_syn_packets"]


def conversation(v6: bool = False, t0: float = 1.0, host: int = 1) -> list[Pkt]:
    """A TCP download, a UDP exchange and a uTP-like UDP stream (20-byte header + data)."""
    c, s = (f"2001:db8::{host}", "2001:db8::ff") if v6 else (f"10.0.0.{host}", "10.0.0.254")
    pk = tcp_flow(t0, c, 40000, s, 6881, [68, -68, 1400, -1400, 1400, -1400] * 4)
    pk += [Pkt(t0 + i * 0.02, c, 50000, s, 53, proto=17, payload=30 + i * 50) for i in range(10)]
    pk += [Pkt(t0 + 0.3 + i * 0.01, c if i % 3 else s, 6881 if i % 3 else 51413,
               s if i % 3 else c, 51413 if i % 3 else 6881, proto=17, payload=20 + (1380 if i % 3 else 0))
           for i in range(30)]
    return pk


def _flows(table) -> dict:
    cols = table.to_pydict()
    return {(cols["protocol"][i], cols["src_port"][i], cols["dst_port"][i]): tuple(cols[c][i] for c in COUNTS)
            for i in range(table.num_rows)}


@pytest.fixture(scope="module")
def ethernet(tmp_path_factory):
    return _flows(extract_capture(write_pcap(tmp_path_factory.mktemp("eth") / "eth.pcap", conversation())))


@pytest.mark.parametrize("link", ["vlan", "qinq", "sll", "sll2", "raw"])
def test_link_types_meter_like_ethernet(tmp_path, ethernet, link):
    cap = write_pcap(tmp_path / f"{link}.pcap", conversation(), link=link)
    assert _flows(extract_capture(cap)) == ethernet
    assert len(ethernet) == 3 and sum(v[0] for v in ethernet.values()) == len(conversation())


def test_pcapng_with_ethernet_and_sll_interfaces_keeps_both(tmp_path, ethernet):
    cap = write_pcapng(tmp_path / "two.pcapng", [("eth", conversation(host=1)), ("sll", conversation(host=2))])
    table = extract_capture(cap)
    assert table.num_rows == 6
    ips = set(table.column("src_ip").to_pylist()) | set(table.column("dst_ip").to_pylist())
    assert ips == {"10.0.0.1", "10.0.0.2", "10.0.0.254"}
    assert sum(table.column("bidirectional_packets").to_pylist()) == 2 * len(conversation())


@pytest.mark.parametrize("snap", [None, 128])
def test_ipv6_cut_by_the_snap_length_meters_like_ipv4(tmp_path, ethernet, snap):
    """nfstream drops every IPv6 packet captured short of 40 + payload length bytes."""
    v4 = _flows(extract_capture(write_pcap(tmp_path / "v4.pcap", conversation(), snap=snap)))
    v6 = _flows(extract_capture(write_pcap(tmp_path / "v6.pcap", conversation(v6=True), snap=snap)))
    assert v6 == v4 == ethernet


def test_capture_the_meter_reads_as_is_is_not_copied(tmp_path):
    cap = write_pcap(tmp_path / "eth.pcap", conversation())
    with prepare_capture(cap) as prepared:
        assert prepared.source == str(cap) and not prepared.rewritten
    with prepare_capture(write_pcap(tmp_path / "sll2.pcap", conversation(), link="sll2")) as prepared:
        copy = prepared.source
        assert copy != str(tmp_path / "sll2.pcap") and os.path.exists(copy)
    assert not os.path.exists(copy)


def _non_ip_capture(path, n: int):
    """n ARP frames and one IP packet would be too kind: only ARP."""
    frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20
    recs = b"".join(struct.pack("<IIII", 1 + i, 0, len(frame), len(frame)) + frame for i in range(n))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + recs)
    return path


def test_packets_the_meter_ignores_are_counted_and_warned(tmp_path, caplog):
    cap = _non_ip_capture(tmp_path / "arp.pcap", 7)
    with caplog.at_level(logging.WARNING, logger="p2pdetect.capture"):
        with prepare_capture(cap) as prepared:
            assert (prepared.ip_packets, prepared.ignored) == (0, 7)
    assert "7 of 7 packets ignored" in caplog.text
    r = run_cli("extract", cap, "-o", tmp_path / "out.parquet")
    assert r.returncode == 0 and "7 of 7 packets ignored" in r.stderr, r.stderr


def test_unknown_link_type_is_ignored_with_a_warning(tmp_path, caplog):
    cap = write_pcap(tmp_path / "x.pcap", conversation())
    blob = bytearray(cap.read_bytes())
    blob[20:24] = struct.pack("<I", 147)  # LINKTYPE_USER0
    cap.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="p2pdetect.capture"), prepare_capture(cap) as prepared:
        assert prepared.ignored == len(conversation())
    assert "link type 147 not decoded" in caplog.text


def test_cut_off_last_record_reads_the_complete_ones(tmp_path, ethernet, caplog):
    packets = conversation() + [Pkt(9.0, "10.0.0.9", 1, "10.0.0.254", 2, proto=17)]
    cap = write_pcap(tmp_path / "cut.pcap", packets, cut_last=10)
    info = validate_capture(cap)
    assert (info.packets, info.cut_record) == (len(packets) - 1, len(packets))
    with caplog.at_level(logging.WARNING, logger="p2pdetect.capture"):
        assert _flows(extract_capture(cap)) == ethernet
    assert caplog.text.count(f"record {len(packets)} is cut short") == 1
    with pytest.raises(BadCaptureError, match=f"record {len(packets)} is cut short"):
        validate_capture(cap, strict=True)


def test_cut_off_pcapng_block_reads_the_complete_ones(tmp_path):
    cap = write_pcapng(tmp_path / "cut.pcapng", [("eth", conversation())])
    cap.write_bytes(cap.read_bytes()[:-7])
    info = validate_capture(cap)
    assert (info.packets, info.cut_record) == (len(conversation()) - 1, len(conversation()))


def _one_line_exit_2(r, expect: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert expect in r.stderr, r.stderr


def test_cli_cut_off_capture_exit_0_and_strict_exit_2(tmp_path):
    cap = write_pcap(tmp_path / "cut.pcap", conversation(), cut_last=5)
    out = tmp_path / "flows.parquet"
    r = run_cli("extract", cap, "-o", out)
    assert r.returncode == 0 and r.stderr.count("is cut short") == 1, r.stderr
    _one_line_exit_2(run_cli("extract", cap, "-o", out, "--strict"), "--strict")
    _one_line_exit_2(run_cli("score", cap, "--strict", "-o", tmp_path / "v.jsonl"), "--strict")


def test_cli_gzip_capture_is_named(tmp_path):
    cap = write_pcap(tmp_path / "c.pcap", conversation())
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(cap.read_bytes()))
    _one_line_exit_2(run_cli("extract", gz, "-o", tmp_path / "o.parquet"), "gzip-compressed")
    _one_line_exit_2(run_cli("score", gz), "gunzip")


def test_cli_score_sll2_capture(tmp_path):
    """What `tcpdump -i any -w` writes here scores like the Ethernet capture."""
    out = tmp_path / "v.jsonl"
    cap = write_pcap(tmp_path / "any.pcap", conversation() + [Pkt(2.0, "10.0.0.1", 3, "10.0.0.2", 4)],
                     link="sll2")
    r = run_cli("score", cap, "-o", out, "--early-packets", "0", "--early-seconds", "0")
    assert r.returncode == 0, r.stderr
    finals = [v for v in map(json.loads, out.read_text().splitlines()) if v.get("stage") == "final"]
    assert len(finals) == 4 and sum(v["packets"] for v in finals) == len(conversation()) + 1
    assert not list(tmp_path.glob("p2pdetect-*"))


def test_rewrite_is_vectorised(tmp_path):
    """200k IPv6 records cut at 128 bytes, rewritten in well under a second or two."""
    import time

    base = write_pcap(tmp_path / "one.pcap", conversation(v6=True), snap=128).read_bytes()
    body = base[24:]
    n = len(conversation())
    reps = 200_000 // n
    cap = tmp_path / "many.pcap"
    cap.write_bytes(base[:24] + body * reps)
    t0 = time.perf_counter()
    with prepare_capture(cap) as prepared:
        elapsed = time.perf_counter() - t0
        assert prepared.ip_packets == n * reps
        size = os.path.getsize(prepared.source)
    assert size > n * reps * 30
    assert elapsed < 10, elapsed


_TRAFFIC = """
import socket, threading
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(fam); srv.bind((addr, 0)); srv.listen()
    def serve():
        c, _ = srv.accept()
        while c.recv(65536): pass
        c.close()
    t = threading.Thread(target=serve); t.start()
    cl = socket.create_connection((addr, srv.getsockname()[1]))
    for _ in range(50): cl.sendall(b"x" * 1400)
    cl.close(); t.join()
    u = socket.socket(fam, socket.SOCK_DGRAM); r = socket.socket(fam, socket.SOCK_DGRAM); r.bind((addr, 0))
    for _ in range(20): u.sendto(b"y" * 1000, r.getsockname()[:2])
"""


@needs_root
@pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump is not installed")
def test_real_tcpdump_any_capture_at_128_bytes(tmp_path):
    """What this machine's `tcpdump -i any -s 128` writes (Linux cooked v2), in a namespace:
    nfstream alone meters none of it; the reader meters IPv4 and IPv6 alike."""
    import subprocess
    import sys
    import time

    ns, cap = f"p2ptest{os.getpid()}", tmp_path / "any.pcap"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        run = ["ip", "netns", "exec", ns]
        subprocess.run(run + ["ip", "link", "set", "lo", "up", "mtu", "1500"], check=True)
        subprocess.run(run + ["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"],
                       capture_output=True)
        dump = subprocess.Popen(run + ["tcpdump", "-Z", "root", "--immediate-mode", "-i", "any", "-s", "128", "-U",
                                       "-w", str(cap)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while b"listening" not in dump.stderr.readline():
                pass
            subprocess.run(run + [sys.executable, "-c", _TRAFFIC], check=True, timeout=60)
            time.sleep(0.5)
        finally:
            dump.terminate()
            dump.wait(10)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
    assert validate_capture(cap).linktypes == (276,)
    cols = extract_capture(cap).to_pydict()
    got = sorted(zip(cols["src_ip"], cols["protocol"], cols["bidirectional_bytes"]))
    assert got == [("127.0.0.1", 6, 70000), ("127.0.0.1", 17, 20000), ("::1", 6, 70000), ("::1", 17, 20000)]


def test_interface_any_is_accepted():
    from p2pdetect.serve.sources import ANY, SourceError, check_interface

    if os.geteuid() != 0:
        with pytest.raises(SourceError, match="CAP_NET_RAW"):
            check_interface(ANY)
    else:
        check_interface(ANY)
    with pytest.raises(SourceError, match="does not exist"):
        check_interface("nosuchif0")


def test_decode_reads_vlan_and_versions(tmp_path):
    from p2pdetect.features.captures import read_records
    from p2pdetect.features.reader import decode

    cap = write_pcap(tmp_path / "q.pcap", conversation() + conversation(v6=True, t0=5.0), link="qinq")
    rec = read_records(cap)
    dec = decode(np.fromfile(cap, dtype=np.uint8), rec)
    assert set(dec.version.tolist()) == {4, 6}
    assert (dec.l3 - rec.data == 22).all() and dec.outer_tag.all()


# Labels CSV (issue 10, item 12): the other input a user hands over by hand.

HEADER = "src_ip,src_port,dst_ip,dst_port,protocol,label"


@pytest.mark.parametrize("text, key", [
    ("\ufeff" + HEADER + "\r\n10.0.0.1,1,10.0.0.2,2,tcp,p2p\r\n", ("10.0.0.1", 1, "10.0.0.2", 2, 6)),
    ("label,comment,src_ip,src_port,dst_ip,dst_port,protocol,app\np2p,hi,10.0.0.1,1,10.0.0.2,2,udp,bt\n",
     ("10.0.0.1", 1, "10.0.0.2", 2, 17)),
    (HEADER + "\n2001:DB8:0::1,1,2001:db8::2,2,tcp,p2p\n", ("2001:db8::1", 1, "2001:db8::2", 2, 6)),
], ids=["utf8-bom", "extra-column-by-name", "ipv6-canonical"])
def test_labels_accepted(tmp_path, text, key):
    from p2pdetect.training.labels import read_labels

    f = tmp_path / "l.csv"
    f.write_text(text, encoding="utf-8")
    assert key in read_labels(f).exact


@pytest.mark.parametrize("row, expect", [
    ("not-an-ip,1,10.0.0.2,2,tcp,p2p", "src_ip 'not-an-ip' is not an IPv4 or IPv6 address"),
    ("10.0.0.1,1,127.11.0.002,2,tcp,p2p", "dst_ip '127.11.0.002' is not an IPv4 or IPv6 address (leading zeros"),
    ("10.0.0.1,1,10.0.0.2,2,tcp,P2P", "label 'P2P' must be 'p2p' or 'other' (lower case)"),
])
def test_labels_refused_naming_file_and_line(tmp_path, row, expect):
    f = tmp_path / "l.csv"
    f.write_text(f"{HEADER}\n10.0.0.1,1,10.0.0.3,2,tcp,other\n{row}\n")
    cap = write_pcap(tmp_path / "c.pcap", conversation())
    _one_line_exit_2(run_cli("extract", cap, "--labels", f, "-o", tmp_path / "o.parquet"), f"{f}:3: {expect}")


# Model bundles made by another meter or feature code (issue 10, item 13).

def _edited_default_model(tmp_path, edit) -> "Path":
    import hashlib
    import shutil

    from p2pdetect.models import DEFAULT_MODEL_DIR
    from p2pdetect.models.bundle import MANIFEST_FILE, METADATA_FILE, MODEL_FILE

    path = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, path)
    meta = json.loads((path / METADATA_FILE).read_text())
    edit(meta)
    (path / METADATA_FILE).write_text(json.dumps(meta))
    (path / MANIFEST_FILE).write_text("".join(
        f"{hashlib.sha256((path / f).read_bytes()).hexdigest()}  {f}\n" for f in (MODEL_FILE, METADATA_FILE)))
    return path


@pytest.mark.parametrize("lib", ["nfstream", "p2pdetect"])
def test_bundle_from_another_meter_or_feature_code_warns(tmp_path, caplog, lib):
    from p2pdetect.models import load_bundle

    path = _edited_default_model(tmp_path, lambda m: m["libraries"].__setitem__(lib, "0.0.1"))
    with caplog.at_level(logging.WARNING, logger="p2pdetect.model"):
        load_bundle(path)
    assert f"model trained with {lib} 0.0.1, running" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="p2pdetect.model"):
        load_bundle()  # the shipped model matches what runs
    assert "model trained with" not in caplog.text


def test_bundle_with_another_feature_schema_is_refused(tmp_path):
    from p2pdetect.models import load_bundle
    from p2pdetect.errors import BadModelError

    def edit(meta):
        meta["libraries"]["nfstream"] = "0.0.1"
        meta["feature_names"] = meta["feature_names"][:-1]

    path = _edited_default_model(tmp_path, edit)
    with pytest.raises(BadModelError, match="feature list does not match"):
        load_bundle(path)
    _one_line_exit_2(run_cli("score", write_pcap(tmp_path / "c.pcap", conversation()), "--model", path),
                     "feature list does not match")
