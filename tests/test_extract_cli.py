"""`p2pdetect extract` end to end: the flow table it writes, labels, and every bad input."""

from __future__ import annotations

import shutil
import struct

import pyarrow.parquet as pq
import pytest

from conftest import NDPI, needs_ndpi, run_cli
from craft import Pkt, tcp_flow, write_pcap
from p2pdetect.features import SCHEMA_VERSION
from p2pdetect.features.schema import META_SCHEMA_VERSION


@pytest.fixture(scope="module")
def capdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("caps")
    pk = []
    for i in range(20):
        pk += tcp_flow(10.0 + i, f"127.0.0.{i + 1}", 40000 + i, "127.0.1.1", 6881, [68, -68, 1000, -1000])
    write_pcap(d / "a.pcap", pk)
    write_pcap(d / "b.pcap", tcp_flow(5.0, "127.0.9.1", 41000, "127.0.9.2", 443, [517, -1448]) +
               [Pkt(6.0, "127.0.9.1", 5353, "127.0.9.3", 53, proto=17, payload=40)])
    (d / "a.labels.csv").write_text("src_ip,src_port,dst_ip,dst_port,protocol,label,app\n"
                                    + "".join(f"127.0.0.{i + 1},,127.0.1.1,,tcp,p2p,bittorrent\n"
                                              for i in range(20)))
    (d / "b.labels.csv").write_text("src_ip,src_port,dst_ip,dst_port,protocol,label,app\n"
                                    "127.0.9.2,443,127.0.9.1,41000,6,other,https\n")
    return d


def _no_traceback(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pdetect") and ": error: " in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_extract_directory_writes_versioned_table(capdir, tmp_path):
    out = tmp_path / "f.parquet"
    r = run_cli("extract", capdir, "-o", out)
    assert r.returncode == 0, r.stderr
    table = pq.read_table(out)
    assert int(table.schema.metadata[META_SCHEMA_VERSION]) == SCHEMA_VERSION
    assert table.num_rows == 22
    assert {c.rsplit("/", 1)[-1] for c in table.column("capture").to_pylist()} == {"a.pcap", "b.pcap"}
    assert "label" not in table.column_names
    assert not list(tmp_path.glob(".*tmp"))


def test_extract_with_labels_reports_unmatched(capdir, tmp_path):
    out = tmp_path / "f.parquet"
    r = run_cli("extract", capdir, "-o", out, "--labels", "auto")
    assert r.returncode == 0, r.stderr
    assert "1 of 22 flows matched no label" in r.stderr  # the DNS flow in b.pcap
    t = pq.read_table(out).to_pydict()
    by_port = {(s, d): (lab, app) for s, d, lab, app in
               zip(t["src_port"], t["dst_port"], t["label"], t["app"])}
    assert by_port[(41000, 443)] == ("other", "https")  # row given in the other direction
    assert by_port[(40003, 6881)] == ("p2p", "bittorrent")  # empty ports match the IP pair
    assert by_port[(5353, 53)] == ("", "")


def test_extract_single_labels_file(capdir, tmp_path):
    r = run_cli("extract", capdir / "a.pcap", "-o", tmp_path / "f.parquet", "--labels", capdir / "a.labels.csv")
    assert r.returncode == 0 and "0 of 20 flows matched no label" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def bad(capdir, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = (capdir / "a.pcap").read_bytes()
    (d / "notcap.pcap").write_text("hello, I am not a capture\n" * 10)
    (d / "empty.pcap").write_bytes(b"")
    (d / "headeronly.pcap").write_bytes(good[:24])
    (d / "truncated.pcap").write_bytes(good[:len(good) - 20])
    corrupt = bytearray(good)
    # 5th record header: caplen field -> 0x7fffffff
    off = 24
    for _ in range(4):
        off += 16 + struct.unpack_from("<I", corrupt, off + 8)[0]
    struct.pack_into("<I", corrupt, off + 8, 0x7FFFFFFF)
    (d / "corrupt.pcap").write_bytes(bytes(corrupt))
    (d / "nocaps").mkdir()
    (d / "nocaps" / "readme.txt").write_text("nothing here")
    (d / "labels_badcol.csv").write_text("src,dst,label\n1,2,p2p\n")
    (d / "labels_badval.csv").write_text("src_ip,src_port,dst_ip,dst_port,protocol,label\n"
                                         "127.0.0.1,,127.0.1.1,,tcp,maybe\n")
    (d / "labels_badport.csv").write_text("src_ip,src_port,dst_ip,dst_port,protocol,label\n"
                                          "127.0.0.1,http,127.0.1.1,,tcp,p2p\n")
    (d / "labels_fields.csv").write_text("src_ip,src_port,dst_ip,dst_port,protocol,label\n"
                                         "127.0.0.1,1,127.0.1.1,2,tcp,p2p,extra,more\n")
    (d / "labels_binary.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    return d


@pytest.mark.parametrize("name, inputs, extra, expect", [
    ("missing file", ["{bad}/nope.pcap"], [], "no such file"),
    ("dir without captures", ["{bad}/nocaps"], [], "holds no capture files"),
    ("not a capture", ["{bad}/notcap.pcap"], [], "not a pcap or pcapng"),
    ("empty file", ["{bad}/empty.pcap"], [], "empty file"),
    ("header only", ["{bad}/headeronly.pcap"], [], "holds no packets"),
    ("truncated", ["{bad}/truncated.pcap"], ["--strict"], "truncated capture"),
    ("corrupted record header", ["{bad}/corrupt.pcap"], [], "corrupted record header at packet 5"),
    ("output dir missing", ["{cap}/a.pcap"], ["-o", "{bad}/no/such/dir/f.parquet"], "does not exist"),
    ("output is a dir", ["{cap}/a.pcap"], ["-o", "{bad}"], "is a directory"),
    ("output unwritable", ["{cap}/a.pcap"], ["-o", "/proc/f.parquet"], "cannot write"),
    ("labels missing column", ["{cap}/a.pcap"], ["--labels", "{bad}/labels_badcol.csv"], "lacks column"),
    ("labels bad value", ["{cap}/a.pcap"], ["--labels", "{bad}/labels_badval.csv"], ":2: label 'maybe'"),
    ("labels bad port", ["{cap}/a.pcap"], ["--labels", "{bad}/labels_badport.csv"], "port 'http'"),
    ("labels extra fields", ["{cap}/a.pcap"], ["--labels", "{bad}/labels_fields.csv"], "wrong number of fields"),
    ("labels not text", ["{cap}/a.pcap"], ["--labels", "{bad}/labels_binary.csv"], "labels"),
    ("labels file missing", ["{cap}/a.pcap"], ["--labels", "{bad}/none.csv"], "cannot read labels"),
])
def test_bad_input_one_line_exit_2(name, inputs, extra, expect, bad, capdir, tmp_path):
    fmt = {"bad": bad, "cap": capdir}
    args = [s.format(**fmt) for s in inputs]
    extra = [s.format(**fmt) for s in extra]
    out = tmp_path / "out.parquet"
    if "-o" not in extra:
        extra += ["-o", str(out)]
    r = run_cli("extract", *args, *extra)
    _no_traceback(r)
    assert expect in r.stderr, r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()], "no partial output may be left behind"


def test_corrupt_capture_in_directory_stops_run_without_output(bad, capdir, tmp_path):
    d = tmp_path / "mix"
    d.mkdir()
    shutil.copy(capdir / "a.pcap", d / "a.pcap")
    shutil.copy(bad / "corrupt.pcap", d / "z.pcap")
    out = tmp_path / "f.parquet"
    _no_traceback(run_cli("extract", d, "-o", out))
    assert not out.exists()
    r = run_cli("extract", d, "-o", out, "--skip-bad")
    assert r.returncode == 0 and "skipped" in r.stderr and out.exists()
    assert pq.read_table(out).num_rows == 20


@needs_ndpi
def test_real_captures_extract_with_bad_ones_skipped(tmp_path):
    out = tmp_path / "ndpi.parquet"
    r = run_cli("extract", NDPI, "-o", out, "--skip-bad")
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out, columns=["application_name", "capture"])
    assert t.num_rows > 2000
    assert r.stderr.count("skipped:") == 2  # the two fuzzed captures in the corpus


def test_usage_errors_are_one_line():
    for args in (["extract"], ["nosuch"], ["score", "--batch-size", "x", "a.pcap"]):
        _no_traceback(run_cli(*args))
