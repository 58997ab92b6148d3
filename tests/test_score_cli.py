"""`p2pdetect score` end to end: verdicts equal offline ones, bad input and broken outputs
are one line and exit 2 with no partial file, SIGTERM flushes every flow."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from p2pdetect.cli import main

from conftest import ROOT, SAMPLES, run_cli
from serve_support import (build_stand_in_bundle, in_table_order, offline_flows, offline_scores, read_verdicts, sample,
                           sample_facts, synthetic_capture)

# Every input is committed or made here; nothing needs the shared nDPI corpus.
# mixed-home: real clients, both classes (P2P swarms beside browsing, streaming and DNS).
CAPTURE = sample("mixed-home")
FLOWS = sample_facts("mixed-home")["flows"]  # as recorded when the sample was made (124 today)


@pytest.fixture(scope="module")
def model():
    """The shipped model (models/default), as `p2pdetect score` uses it by default."""
    from p2pdetect.models import load_bundle

    return str(load_bundle().path)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """A stand-in trained on the samples' labelled flows (the live test's kind of model)."""
    path = tmp_path_factory.mktemp("model") / "bundle"
    build_stand_in_bundle(path)
    return str(path)


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory):
    """600,000 packets: long enough to be stopped by a signal mid-way."""
    return synthetic_capture(tmp_path_factory.mktemp("cap") / "big.pcap", 600_000)


def _one_line_error(res, fragment: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pdetect: error: "), res.stderr
    assert fragment in lines[0]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("which", ["model", "stand_in"])
def test_final_verdicts_equal_extract_plus_model(which, request, tmp_path):
    from p2pdetect.models import load_bundle

    model = request.getfixturevalue(which)
    res = run_cli("score", str(CAPTURE), "--model", model)
    assert res.returncode == 0, res.stderr
    final = [v for v in read_verdicts(res.stdout) if v.get("stage") == "final"]
    bundle = load_bundle(model)
    table, scores, hosts = offline_scores(CAPTURE, bundle)
    final = [final[i] for i in in_table_order(final, table)]
    assert [v["score"] for v in final] == np.round(scores, 6).tolist()
    assert [v["verdict"] for v in final] == bundle.verdicts(scores).tolist()
    assert [(v["src_ip"], v["dst_port"], v["packets"]) for v in final] == list(zip(
        table.column("src_ip").to_pylist(), table.column("dst_port").to_pylist(),
        table.column("bidirectional_packets").to_pylist()))
    summary = res.stderr.strip().splitlines()[-1]
    assert f"{FLOWS:,} flows metered = {FLOWS:,} final verdicts" in summary and "MISMATCH" not in summary


def test_final_verdicts_do_not_depend_on_the_early_verdict_settings(model):
    """Early verdicts at 8 packets or 1 s: the meter still takes the model's evidence snapshots
    (at its snapshot_packets), scores them as host evidence and writes no verdict for them."""
    from p2pdetect.models import load_bundle

    bundle = load_bundle(model)
    assert bundle.extract_config.snapshot_packets not in (0, 8)
    res = run_cli("score", str(CAPTURE), "--model", model, "--early-packets", "8", "--early-seconds", "1")
    assert res.returncode == 0, res.stderr
    records = [v for v in read_verdicts(res.stdout) if v["event_type"] == "flow"]
    final = [v for v in records if v["stage"] == "final"]
    early = [v for v in records if v["stage"] == "early"]
    table, scores, hosts = offline_scores(CAPTURE, bundle)
    final = [final[i] for i in in_table_order(final, table)]
    assert [v["score"] for v in final] == np.round(scores, 6).tolist()
    # one early verdict at most per flow, each at 8 packets or fewer
    assert 0 < len(early) <= len(final) and all(v["packets"] <= 8 for v in early)


def test_output_file_and_alerts_only(model, tmp_path):
    from p2pdetect.models import load_bundle

    out = tmp_path / "v.jsonl"
    # mixed-home holds both classes, so --alerts-only has verdicts to keep and verdicts to drop
    res = run_cli("score", str(CAPTURE), "--model", model, "-o", str(out), "--alerts-only")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    verdicts = read_verdicts(out.read_text())
    assert verdicts and all(v["verdict"] == "p2p" for v in verdicts)
    bundle = load_bundle(model)
    p2p = int((bundle.verdicts(offline_scores(CAPTURE, bundle)[1]) == "p2p").sum())
    assert 0 < sum(v.get("stage") == "final" for v in verdicts) == p2p < FLOWS
    assert not list(tmp_path.glob(".v.jsonl.*"))  # no temporary left behind


@pytest.mark.parametrize("args, fragment", [
    (["/nonexistent/x.pcap"], "no such file or directory"),  # as extract says it
    (["{notcap}"], "not a pcap or pcapng capture"),
    (["{cap}", "--model", "/nonexistent/model"], "no such model bundle directory"),
    (["{cap}", "--model", "{notmodel}"], "model"),
    (["--interface", "nosuchif0"], "interface 'nosuchif0' does not exist"),
    (["{cap}", "--batch-size", "0"], "--batch-size must be an int in [1, 1000000]"),
    (["{cap}", "--bpf", "tcp"], "--bpf applies to live capture only"),
    (["--interface", "lo", "--bpf", "tcp and and"], "is not a valid BPF filter"),
])
def test_bad_input_is_one_line_exit_2_and_no_output_file(args, fragment, model, tmp_path):
    notcap = tmp_path / "notes.pcap"
    notcap.write_text("hello, not a capture\n")
    notmodel = tmp_path / "notmodel"
    notmodel.mkdir()
    (notmodel / "model.txt").write_text("junk")
    out = tmp_path / "out.jsonl"
    args = [a.format(cap=CAPTURE, notcap=notcap, notmodel=notmodel) for a in args]
    if "--model" not in args:
        args += ["--model", model]
    res = run_cli("score", *args, "-o", str(out))
    _one_line_error(res, fragment)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_capture_damaged_mid_file_is_refused_though_the_meter_started_first(model, tmp_path):
    """The meter starts before the capture's full walk (p2pdetect.cmd_score): a record header
    damaged half-way through, which the first-record check cannot see, still ends the run with
    one line, exit 2 and no output, the meter closed unread."""
    import struct

    data = bytearray(CAPTURE.read_bytes())
    off, n = 24, 0
    while n < 3000:  # record 3001's header (classic pcap: 16-byte record headers)
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
        n += 1
    struct.pack_into("<I", data, off + 8, 0x7FFFFFFF)
    cap = tmp_path / "damaged.pcap"
    cap.write_bytes(bytes(data))
    out = tmp_path / "v.jsonl"
    res = run_cli("score", str(cap), "--model", model, "-o", str(out))
    _one_line_error(res, "corrupted record header at packet 3001")
    assert list(tmp_path.iterdir()) == [cap]


def test_score_starts_without_scikit_learn(model, tmp_path):
    """LightGBM would import scikit-learn and most of SciPy (1.7 s of CPU beside the meter);
    scoring needs neither, and a later import of scikit-learn in the same process still works."""
    code = ("import sys; from p2pdetect.cli import main; rc = main(['score', sys.argv[1], '--model', sys.argv[2], "
            "'-o', sys.argv[3]]); print(rc, 'sklearn' in sys.modules, 'scipy.stats' in sys.modules); "
            "import sklearn.base; print('later import ok')")
    out = tmp_path / "v.jsonl"
    res = subprocess.run([sys.executable, "-c", code, str(CAPTURE), model, str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["0 False False", "later import ok"]
    assert sum(v.get("stage") == "final" for v in read_verdicts(out.read_text())) == FLOWS


def test_live_capture_without_root_is_one_line(monkeypatch, capsys):
    from p2pdetect.serve import sources

    monkeypatch.setattr(sources.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sources, "effective_capabilities", lambda: 0)
    assert main(["score", "--interface", "lo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs root or CAP_NET_RAW" in err[0]


def test_metrics_port_in_use_is_one_line_exit_2(model, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = tmp_path / "v.jsonl"
        res = run_cli("score", str(CAPTURE), "--model", model, "--metrics-port", str(port), "-o", str(out))
    _one_line_error(res, f"cannot serve metrics on port {port}")
    assert not out.exists()


def test_full_disk_is_one_line_exit_2(model):
    res = run_cli("score", str(CAPTURE), "--model", model, "-o", "/dev/full")
    _one_line_error(res, "No space left on device")


def test_stdout_on_a_full_device_is_one_line_exit_2(model):
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "p2pdetect", "score", str(CAPTURE), "--model", model],
                             cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    _one_line_error(res, "standard output")


def test_closed_pipe_ends_the_run_without_traceback(model, tmp_path):
    cap = synthetic_capture(tmp_path / "s.pcap", 60_000)  # enough verdicts to outgrow the pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "p2pdetect", "score", str(cap), "--model", model],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, like `| head -1`
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "the reader closed the pipe" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_on_a_capture_flushes_every_flow(sig, model, big_capture):
    proc = subprocess.Popen([sys.executable, "-m", "p2pdetect", "score", str(big_capture), "--model", model],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # scoring has begun
    proc.send_signal(sig)
    out = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + sig, err  # a capture cut short is not a complete run
    summary = next(line for line in err.splitlines() if "score stopped" in line)
    assert "MISMATCH" not in summary and "interrupted: scored" in err
    verdicts = read_verdicts(first + out)
    n_final = sum(v.get("stage") == "final" for v in verdicts)
    assert f"{n_final:,} flows metered = {n_final:,} final verdicts" in summary
    assert "600,000 packets" not in summary  # it did stop early


def test_host_verdicts_name_bittorrent_hosts_and_spare_web_clients_and_resolvers(model):
    """The shipped model on the samples: every BitTorrent host of mixed-home is flagged, with an
    endpoint of its own that carried P2P flows; the HTTPS clients (many connections each) and the
    DNS resolver of web.pcap and mixed-home are not."""
    import csv

    def p2p_flows_and_hosts(name):
        rows = list(csv.DictReader(open(SAMPLES / f"{name}.labels.csv")))
        p2p = {r["src_ip"] for r in rows if r["label"] == "p2p"} | {r["dst_ip"] for r in rows if r["label"] == "p2p"}
        other = {r["src_ip"] for r in rows if r["label"] == "other"} | {r["dst_ip"] for r in rows if r["label"] == "other"}
        return p2p, other - p2p

    res = run_cli("score", str(CAPTURE), "--model", model)
    assert res.returncode == 0, res.stderr
    records = read_verdicts(res.stdout)
    hosts = [v for v in records if v["event_type"] == "host"]
    p2p_ips, ordinary_ips = p2p_flows_and_hosts("mixed-home")
    flagged = {h["ip"] for h in hosts}
    swarm = {ip for ip in p2p_ips if ip.startswith("127.1")}  # swarm peers (127.10-12.x); clients are 127.50.x
    assert swarm and swarm <= flagged, swarm - flagged
    assert not flagged & ordinary_ips, flagged & ordinary_ips
    p2p_endpoints = {f"{v['src_ip']}:{v['src_port']}/{'tcp' if v['protocol'] == 6 else 'udp'}" for v in records
                     if v["event_type"] == "flow" and v["verdict"] == "p2p"} | {
        f"{v['dst_ip']}:{v['dst_port']}/{'tcp' if v['protocol'] == 6 else 'udp'}" for v in records
        if v["event_type"] == "flow" and v["verdict"] == "p2p"}
    for h in hosts:
        assert h["endpoints"] and all(e.startswith(h["ip"] + ":") for e in h["endpoints"])
        assert set(h["endpoints"]) <= p2p_endpoints
        # (flows and bytes count ended flows; the peers behind the evidence may be snapshots')
        assert h["p2p_peers"] >= 3 and h["peers"] >= h["p2p_peers"] and h["score"] >= 0.5
    res = run_cli("score", str(sample("web")), "--model", model)
    assert res.returncode == 0, res.stderr
    assert not [v for v in read_verdicts(res.stdout) if v["event_type"] == "host"]
