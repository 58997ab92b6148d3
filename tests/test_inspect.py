"""`p2pdetect inspect`: one flow's packets through tshark, headers only (its verdict: test_cli_conventions)."""

from __future__ import annotations

import shutil

import pytest

from conftest import run_cli
from craft import tcp_flow, write_pcap

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark is not installed (make setup installs it)")


@pytest.fixture(scope="module")
def cap(tmp_path_factory):
    path = tmp_path_factory.mktemp("i") / "two.pcap"
    write_pcap(path, tcp_flow(1.0, "127.0.0.1", 40000, "127.0.0.2", 6881, [68, -68, 1200])
               + tcp_flow(2.0, "127.0.0.1", 40001, "127.0.0.2", 6881, [5]))
    return path


def test_inspect_shows_one_flow_both_directions(cap):
    r = run_cli("inspect", cap, "--flow", "127.0.0.2:6881-127.0.0.1:40000/tcp")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.split("\n\n")[-1].strip().splitlines()[1:]  # the packets come last, after the verdict
    assert len(rows) == 6  # 3 handshake + 3 payload packets; the other flow is not shown
    dirs = [row.split()[2] for row in rows]
    assert dirs == ["<-", "->", "<-", "<-", "->", "<-"]  # as seen from the --flow's first endpoint
    assert [int(row.split()[4]) for row in rows][3:] == [68, 68, 1200]


def test_inspect_max_packets(cap):
    r = run_cli("inspect", cap, "--flow", "127.0.0.1:40000-127.0.0.2:6881/tcp", "--max-packets", "2")
    assert r.returncode == 0 and len(r.stdout.split("\n\n")[-1].strip().splitlines()) == 3


@pytest.mark.parametrize("flow, expect", [
    ("nonsense", "expected SRC:PORT-DST:PORT/PROTO"),
    ("1.2.3.999:1-1.2.3.4:2/tcp", "not an IP address"),
    ("127.0.0.9:1-127.0.0.8:2/udp", "no packet of flow"),
])
def test_inspect_bad_flow(cap, flow, expect):
    r = run_cli("inspect", cap, "--flow", flow)
    assert r.returncode == 2 and expect in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""
