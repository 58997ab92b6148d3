"""`p2pdetect score` end to end: verdicts equal offline ones, bad input and broken outputs
are one line and exit 2 with no partial file, SIGTERM flushes every flow."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from features.extract import extract_capture
from p2pdetect.cli import main
from test_serve_support import REPO, build_stand_in_bundle, ndpi, needs_ndpi_corpus, read_verdicts, run_cli

pytestmark = needs_ndpi_corpus()

CAPTURE = ndpi("1kxun.pcap")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "bundle"
    build_stand_in_bundle(path)
    return str(path)


def _one_line_error(res, fragment: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pdetect: error: "), res.stderr
    assert fragment in lines[0]
    assert "Traceback" not in res.stderr


def test_final_verdicts_equal_extract_plus_model(model, tmp_path):
    from models import load_bundle

    res = run_cli("score", str(CAPTURE), "--model", model)
    assert res.returncode == 0, res.stderr
    final = [v for v in read_verdicts(res.stdout) if v["stage"] == "final"]
    bundle = load_bundle(model)
    table = extract_capture(CAPTURE, bundle.extract_config)
    scores = bundle.predict_proba(table)
    assert [v["score"] for v in final] == np.round(scores, 6).tolist()
    assert [v["verdict"] for v in final] == bundle.verdicts(scores).tolist()
    assert [(v["src_ip"], v["dst_port"], v["packets"]) for v in final] == list(zip(
        table.column("src_ip").to_pylist(), table.column("dst_port").to_pylist(),
        table.column("bidirectional_packets").to_pylist()))
    summary = res.stderr.strip().splitlines()[-1]
    assert "197 flows metered = 197 final verdicts" in summary and "MISMATCH" not in summary


def test_output_file_and_alerts_only(model, tmp_path):
    out = tmp_path / "v.jsonl"
    res = run_cli("score", str(ndpi("bittorrent_tcp_miss.pcapng")), "--model", model, "-o", str(out),
                  "--alerts-only")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    verdicts = read_verdicts(out.read_text())
    assert verdicts and all(v["verdict"] == "p2p" for v in verdicts)
    assert not list(tmp_path.glob(".v.jsonl.*"))  # no temporary left behind


@pytest.mark.parametrize("args, fragment", [
    (["/nonexistent/x.pcap"], "cannot read"),
    (["{notcap}"], "not a pcap or pcapng capture"),
    (["{cap}", "--model", "/nonexistent/model"], "no such model bundle directory"),
    (["{cap}", "--model", "{notmodel}"], "model"),
    (["--interface", "nosuchif0"], "interface 'nosuchif0' does not exist"),
    (["{cap}", "--batch-size", "0"], "'batch_size' parameter of ScoreConfig"),
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


def test_live_capture_without_root_is_one_line(monkeypatch, capsys):
    import serve.sources

    monkeypatch.setattr(serve.sources.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(serve.sources, "effective_capabilities", lambda: 0)
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
                             cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    _one_line_error(res, "standard output")


def _synthetic(path, packets):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from synth_capture import make_capture

    return make_capture(path, packets, seed=3)


def test_closed_pipe_ends_the_run_without_traceback(model, tmp_path):
    cap = _synthetic(tmp_path / "s.pcap", 60_000)  # enough verdicts to outgrow the pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "p2pdetect", "score", str(cap), "--model", model],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, like `| head -1`
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "the reader closed the pipe" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_on_a_capture_flushes_every_flow(sig, model, tmp_path):
    cap = _synthetic(tmp_path / "big.pcap", 600_000)
    proc = subprocess.Popen([sys.executable, "-m", "p2pdetect", "score", str(cap), "--model", model],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # scoring has begun
    proc.send_signal(sig)
    out = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    summary = err.strip().splitlines()[-1]
    assert "score stopped:" in summary and "MISMATCH" not in summary
    verdicts = read_verdicts(first + out)
    n_final = sum(v["stage"] == "final" for v in verdicts)
    assert f"{n_final:,} flows metered = {n_final:,} final verdicts" in summary
    assert "600,000 packets" not in summary  # it did stop early
