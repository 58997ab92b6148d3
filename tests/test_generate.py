"""The labelled capture generator: config checks, label matching, root check, and a short real run.

The end-to-end tests need root (network namespaces, tc, tcpdump) and are skipped otherwise.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import SCENARIOS, GenerateConfig, amule, scenarios
from p2pdetect.data.generator.capture import PcapSummary, scan
from p2pdetect.data.generator.labels import LabelIndex, LabelRow, read_csv
from p2pdetect.data.generator.namespace import require_root

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="generating captures needs root (netns, tc, tcpdump)")


def _procs_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (our workers and tcpdump do)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(cmd)
    return out


def _namespaces() -> list[str]:
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in res.stdout.splitlines() if line.split()]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(GenerateError, match=r"The 'duration' parameter of GenerateConfig must be an int >= 5"):
        GenerateConfig(duration=-5)
    with pytest.raises(GenerateError, match=r"The 'scenario' parameter of GenerateConfig must be one of"):
        GenerateConfig(scenario="nope")


def test_label_rows_match_either_direction_and_any_port() -> None:
    rows = [LabelRow(src_ip="127.10.0.2", dst_ip="127.10.0.3", protocol=6, label="p2p", app="bt"),
            LabelRow(src_ip="127.50.0.2", src_port=None, dst_ip="127.20.0.1", dst_port=443, protocol=6,
                     label="other", app="https")]
    idx = LabelIndex(rows)
    assert [r.app for r in idx.match("127.10.0.3", 5000, "127.10.0.2", 6000, 6)] == ["bt"]
    assert idx.match("127.10.0.3", 5000, "127.10.0.2", 6000, 17) == []
    assert [r.app for r in idx.match("127.20.0.1", 443, "127.50.0.2", 40000, 6)] == ["https"]
    assert idx.match("127.20.0.1", 8443, "127.50.0.2", 40000, 6) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_plans_are_reproducible_and_address_pairs_name_one_app(scenario: str) -> None:
    for seed in (0, 1, 2):
        a = scenarios.build(scenario, seed, 30, 1.0)
        b = scenarios.build(scenario, seed, 30, 1.0)
        assert [x.params for x in a.apps] == [x.params for x in b.apps]
        owner: dict[tuple[str, str, int], str] = {}
        for app_no, app in enumerate(a.apps):
            for r in app.rows:
                key = (min(r.src_ip, r.dst_ip), max(r.src_ip, r.dst_ip), r.protocol)
                assert owner.setdefault(key, f"{app_no}:{app.name}") == f"{app_no}:{app.name}", key
                # loopback hosts, a discovery protocol's multicast group, or aMule's Kad nodes on TEST-NET-3
                # and 100.64/16 (added to the namespace's loopback, which has no route out: data.generator.amule)
                for ip in (r.src_ip, r.dst_ip):
                    assert (ip.startswith("127.") or ipaddress.ip_address(ip).is_multicast
                            or any(ipaddress.ip_address(ip) in ipaddress.ip_network(n) for n in amule.NETS)), ip


def _pcap(frames: list[int]) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 128, 1)
    return head + b"".join(struct.pack("<IIII", 0, 0, min(n, 128), n) + b"\0" * min(n, 128) for n in frames)


def test_pcap_scan_counts_oversized_frames_and_rejects_truncation(tmp_path: Path) -> None:
    ok = tmp_path / "ok.pcap"
    ok.write_bytes(_pcap([60, 1514, 66]))
    assert scan(ok, 1514) == PcapSummary(packets=3, max_frame=1514, oversized=0)
    big = tmp_path / "big.pcap"
    big.write_bytes(_pcap([60, 65226]))
    assert scan(big, 1514).oversized == 1
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(_pcap([60, 1514])[:-10])
    with pytest.raises(GenerateError, match="truncated"):
        scan(cut, 1514)


def test_require_root_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(GenerateError, match="needs root"):
        require_root()


def _without_root() -> list[str]:
    """A command prefix that runs a program without root, or a skip saying why there is none.

    First choice: a new user namespace with no uid mapping (``unshare --user``). The program is
    uid 65534 to itself (geteuid() != 0, no capability outside the namespace), while the kernel
    still checks files against its real owner, so it reads this checkout wherever it lives, a
    mode-0700 ``mktemp -d`` included. Fallback: ``setpriv`` to nobody, which needs the whole tree
    (and the interpreter) readable by nobody; the probe in the test skips when it is not.
    """
    if shutil.which("unshare") and subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode == 0:
        return ["unshare", "--user"]
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    pytest.skip("neither unshare --user nor setpriv (util-linux) can drop root here")


@needs_root
def test_cli_without_root_is_one_line_and_exit_2(tmp_path: Path) -> None:
    drop = _without_root()
    probe = subprocess.run([*drop, sys.executable, "-c", "import os, data.generator; print(os.geteuid())"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        pytest.skip(f"{drop[0]} cannot run this checkout without root ({why})")
    assert int(probe.stdout) != 0
    res = subprocess.run(
        [*drop, sys.executable, "-m", "p2pdetect.data.generator",
         "--scenario", "dns", "--duration", "5", "-o", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pdetect: error:") and "root" in lines[0]


@needs_root
def test_short_run_labels_every_flow_once_and_cleans_up(tmp_path: Path) -> None:
    from nfstream import NFStreamer

    from p2pdetect.data.generator import generate

    cfg = GenerateConfig(scenario="mixed-home", duration=8, seed=3, scale=0.1, out_dir=tmp_path)
    [summary] = generate(cfg)

    # Outputs exist under their final names only, and the summary says the join was clean.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["mixed-home.json", "mixed-home.labels.csv", "mixed-home.pcap"]
    assert json.loads((tmp_path / "mixed-home.json").read_text())["unlabelled_share"] == 0.0
    assert summary["max_frame_bytes"] <= 1514
    with open(tmp_path / "mixed-home.labels.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "label", "app"]

    # Independent join: every metered flow matches exactly one label; both classes are present.
    idx = LabelIndex(read_csv(tmp_path / "mixed-home.labels.csv"))
    seen = set()
    n = 0
    for f in NFStreamer(source=str(tmp_path / "mixed-home.pcap")):
        hits = {(r.label, r.app) for r in idx.match(f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol)}
        assert len(hits) == 1, (f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol, hits)
        seen |= {label for label, _ in hits}
        n += 1
    assert n > 10 and seen == {"p2p", "other"}

    # Namespace and every process it held are gone.
    assert f"p2pd-gen-{os.getpid()}" not in _namespaces()
    assert _procs_mentioning(f"p2pd-gen-{os.getpid()}-") == []
    assert _procs_mentioning(str(tmp_path)) == []


@needs_root
def test_sigterm_removes_namespace_processes_and_partial_outputs(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pdetect.data.generator", "--scenario", "p2p-tcp-mse", "--duration", "30", "--scale", "0.1",
         "-o", str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ns = f"p2pd-gen-{proc.pid}"
    deadline = time.time() + 20
    while time.time() < deadline and not _procs_mentioning(f"{ns}-"):
        time.sleep(0.2)
    assert ns in _namespaces(), "the generator never started its workers"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "interrupted" in err
    assert ns not in _namespaces()
    assert _procs_mentioning(f"{ns}-") == []
    assert list(tmp_path.iterdir()) == []


SAMPLES = REPO / "data" / "samples"
needs_samples = pytest.mark.skipif(not (SAMPLES / "p2p-tcp-mse.pcap").exists(), reason="no samples (make samples)")


@needs_samples
def test_samples_are_fully_labelled_fit_the_mtu_and_mse_tcp_is_unknown_to_ndpi() -> None:
    from p2pdetect.data.generator.verify import join_flows

    total = sum(p.stat().st_size for p in SAMPLES.iterdir())
    assert total < 3_500_000, f"data/samples holds {total} bytes; keep it near 3 MB"
    for pcap in sorted(SAMPLES.glob("*.pcap")):
        assert scan(pcap, 1514).oversized == 0
        joined = join_flows(pcap, read_csv(pcap.with_suffix(".labels.csv")))
        assert joined["unlabelled_share"] == 0.0, pcap.name
    mse = join_flows(SAMPLES / "p2p-tcp-mse.pcap", read_csv(SAMPLES / "p2p-tcp-mse.labels.csv"))
    tcp = {k: v for k, v in mse["apps"]["libtorrent-mse"]["ndpi"].items() if k.startswith("tcp/")}
    assert tcp and set(tcp) == {"tcp/Unknown"}, tcp


@needs_samples
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_audit_agrees_with_sample_labels_and_cannot_see_mse_over_tcp() -> None:
    from p2pdetect.data.generator.audit import audit_capture

    mse = audit_capture(SAMPLES / "p2p-tcp-mse.pcap", SAMPLES / "p2p-tcp-mse.labels.csv", max_packets=3000)
    assert mse["disagreements"] == 0 and mse["p2p_unidentified_by_tshark"].get("tcp", 0) > 0
    web = audit_capture(SAMPLES / "web.pcap", SAMPLES / "web.labels.csv", max_packets=3000)
    assert web["disagreements"] == 0 and web["label_vs_tshark"].get("other->other (udp)", 0) > 0
