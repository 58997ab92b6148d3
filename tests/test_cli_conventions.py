"""Command-line conventions and Unix habits (issue 10, items 10 and 11), through the installed
entry point (`p2pdetect` beside the interpreter, .venv/bin/p2pdetect) on the committed samples.

Item 10: no abbreviated options, `p2pdetect` alone prints the usage, usage errors point to the
subcommand's help, one error prefix, options named in errors (never config fields), help text
for every argument, `--jobs 0` refused, `generate`'s usage shows `-o`, `-v` after the subcommand.
Item 11: `score -` and streams, `extract -o -` (Parquet to a pipe), `score` of several captures
or a directory, `inspect` shows the verdict and top features, a closed pipe ends quietly.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

#: the console script pip installed beside this interpreter (.venv/bin/p2pdetect)
ENTRY = Path(sys.executable).with_name("p2pdetect")
MIXED = SAMPLES / "mixed-home.pcap"
WEB = SAMPLES / "web.pcap"
MSE = SAMPLES / "p2p-tcp-mse.pcap"

pytestmark = pytest.mark.skipif(not ENTRY.exists(), reason=f"no installed entry point at {ENTRY}")


def p2p(*args, input: bytes | None = None, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run the installed `p2pdetect ARGS`; stdout as bytes (Parquet may come out), stderr as text."""
    res = subprocess.run([str(ENTRY), *map(str, args)], input=input, capture_output=True, timeout=timeout,
                         cwd=kw.pop("cwd", ROOT), **kw)
    res.stderr = res.stderr.decode("utf-8", "replace")
    return res


def one_line_error(res, *fragments: str, status: int = 2) -> str:
    assert res.returncode == status, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("p2pdetect: error: "), res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def finals(stdout: bytes) -> list[dict]:
    """Final flow verdicts and host records, without the wall-clock time stamp."""
    out = []
    for line in stdout.decode().splitlines():
        v = json.loads(line)
        v.pop("ts_ms")
        if v.get("stage", "final") == "final":
            out.append(v)
    return out


@pytest.fixture(scope="module")
def model() -> str:
    from p2pdetect.models import load_bundle

    return str(load_bundle().path)


@pytest.fixture(scope="module")
def scored(model) -> dict[str, list[dict]]:
    """`score` of each sample used here, one capture per run (the reference)."""
    out = {}
    for cap in (MIXED, WEB):
        res = p2p("score", cap, "--model", model)
        assert res.returncode == 0, res.stderr
        out[cap.name] = finals(res.stdout)
    return out


# --- item 10: command-line conventions ------------------------------------------------------

def test_abbreviated_options_are_refused(tmp_path):
    out = tmp_path / "f.parquet"
    res = p2p("extract", WEB, "-o", out, "--early-packet", "16")
    one_line_error(res, "unrecognized arguments: --early-packet 16", "see 'p2pdetect extract --help'")
    assert not out.exists()
    one_line_error(p2p("--verb", "extract", WEB, "-o", out), "--verb")


def _parsers(parser: argparse.ArgumentParser, prefix: str = "p2pdetect"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_no_parser_accepts_an_abbreviation_and_every_argument_has_help():
    from p2pdetect.cli import build_parser

    seen = 0
    for prog, parser in _parsers(build_parser()):
        assert parser.allow_abbrev is False, prog
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{prog} {action.option_strings or action.dest}"
            for opt in action.option_strings:
                if opt.startswith("--") and len(opt) > 4:
                    seen += 1
                    with pytest.raises(SystemExit) as stop:
                        build_parser().parse_args([*prog.split()[1:], opt[:-1], "1", "x.pcap"])
                    assert stop.value.code == 2, f"{prog} accepted {opt[:-1]}"
    assert seen > 40


def test_p2pdetect_alone_prints_the_usage_and_exits_2_like_click():
    res = p2p()
    assert res.returncode == 2 and res.stdout == b""
    assert res.stderr.startswith("usage: p2pdetect"), res.stderr
    for name in ("extract", "score", "train", "evaluate", "inspect", "generate", "demo"):
        assert name in res.stderr
    assert "Traceback" not in res.stderr
    assert p2p("--help").returncode == 0  # asked for: success


@pytest.mark.parametrize("args, fragments", [
    (["score", "--bogus"], ["unrecognized arguments: --bogus", "see 'p2pdetect score --help'"]),
    (["extract"], ["required", "see 'p2pdetect extract --help'"]),
    (["train", "--threads", "x", "d.parquet", "-o", "m"], ["--threads", "see 'p2pdetect train --help'"]),
    (["nosuch"], ["invalid choice", "see 'p2pdetect --help'"]),
    (["score"], ["give a capture", "see 'p2pdetect score --help'"]),
    (["score", str(WEB), "--bpf", "tcp"], ["--bpf applies to live capture only", "see 'p2pdetect score --help'"]),
])
def test_usage_errors_are_one_line_pointing_to_the_subcommands_help(args, fragments):
    one_line_error(p2p(*args), *fragments)


@pytest.mark.parametrize("args, option", [
    (["score", str(WEB), "--batch-size", "0"], "--batch-size must be an int in [1, 1000000]. Got 0 instead."),
    (["score", str(WEB), "--max-wait", "0"], "--max-wait must be"),
    (["score", str(WEB), "--early-packets", "1"], "--early-packets must be 0 (off) or an int"),
    (["extract", str(WEB), "-o", "{tmp}/f.parquet", "--splt", "0"], "--splt must be an int in [1, 255]"),
    (["extract", str(WEB), "-o", "{tmp}/f.parquet", "--early-packets", "1"], "--early-packets must be"),
    (["extract", str(WEB), "-o", "{tmp}/f.parquet", "--window", "0"], "--window must be a number > 0"),
    (["train", str(WEB), "-o", "{tmp}/m", "--target-fpr", "2"], "--target-fpr must be"),
    (["train", str(WEB), "-o", "{tmp}/m", "--threads", "0"], "--threads must be"),
    (["generate", "-o", "{tmp}", "--duration", "1"], "--duration must be an int >= 5"),
])
def test_errors_name_options_not_config_fields(args, option, tmp_path):
    line = one_line_error(p2p(*[a.format(tmp=tmp_path) for a in args]), option)
    assert "Config" not in line and "parameter of" not in line
    assert [p for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("cmd", [["extract", str(WEB), "-o", "{tmp}/f.parquet"],
                                 ["train", str(WEB), "-o", "{tmp}/m"],
                                 ["evaluate", str(WEB), "-o", "{tmp}/r"]])
def test_jobs_0_is_refused(cmd, tmp_path):
    res = p2p(*[a.format(tmp=tmp_path) for a in cmd], "--jobs", "0")
    one_line_error(res, "--jobs", "-1 (one per core) or an int >= 1")
    assert [p for p in tmp_path.iterdir()] == []


def _help(*cmd: str) -> str:
    res = p2p(*cmd, "--help")
    assert res.returncode == 0, res.stderr
    return " ".join(res.stdout.decode().split())  # unwrapped


def test_help_texts_name_positionals_output_and_flow():
    score = _help("score")
    assert "CAPTURE|DIR pcap/pcapng capture(s) to score" in score and "'-' reads standard input" in score
    inspect = _help("inspect")
    assert "CAPTURE pcap/pcapng capture that holds the flow" in inspect
    assert "--flow SRC:PORT-DST:PORT/PROTO the flow, in either direction" in inspect
    assert "-o MODEL_DIR, --output MODEL_DIR model bundle directory to write" in _help("train")
    generate = p2p("generate", "--help").stdout.decode()
    usage = generate.split("\n\n")[0]
    assert "-o DIR" in usage and "[-o DIR]" not in usage, usage


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_works_before_and_after_the_subcommand(where, model, tmp_path):
    args = ["score", MIXED, "--model", model, "-o", tmp_path / "v.jsonl"]
    args = ["-v", *args] if where == "before" else [args[0], "-v", *args[1:]]
    res = p2p(*args)
    assert res.returncode == 0, res.stderr
    assert "p2pdetect: debug: score: model " in res.stderr, res.stderr
    quiet = p2p("score", MIXED, "--model", model, "-o", tmp_path / "q.jsonl")
    assert quiet.returncode == 0 and "debug" not in quiet.stderr


# --- item 11: Unix habits -------------------------------------------------------------------

def test_score_dash_reads_a_capture_from_standard_input(model, scored, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    res = p2p("score", "-", "--model", model, input=MIXED.read_bytes(), env=env)
    assert res.returncode == 0, res.stderr
    assert finals(res.stdout) == scored[MIXED.name]
    assert "standard input" not in res.stderr or "score done" in res.stderr
    assert list(tmp_path.iterdir()) == [], "the spooled copy is removed"


def test_score_reads_a_fifo_and_names_standard_input_in_errors(model, scored, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path / "t")}
    (tmp_path / "t").mkdir()
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat '{MIXED}' > '{fifo}'"])
    res = p2p("score", fifo, "--model", model, env=env)
    writer.wait(timeout=60)
    assert res.returncode == 0, res.stderr
    assert finals(res.stdout) == scored[MIXED.name]
    bad = p2p("score", "-", "--model", model, input=b"hello, not a capture\n", env=env)
    one_line_error(bad, "standard input: not a pcap or pcapng capture")
    import gzip

    gz = p2p("score", "-", "--model", model, input=gzip.compress(WEB.read_bytes()), env=env)
    one_line_error(gz, "standard input: a gzip-compressed stream, not a capture; pipe it through gunzip first")
    one_line_error(p2p("score", "/dev/zero", "--model", model, env=env), "/dev/zero: not a pcap or pcapng capture")
    import pty

    leader, terminal = pty.openpty()  # a terminal on standard input: nothing to read, refused at once
    try:
        one_line_error(p2p("score", "-", "--model", model, stdin=terminal, env=env), "standard input is a terminal")
    finally:
        os.close(leader)
        os.close(terminal)
    assert list((tmp_path / "t").iterdir()) == []


def test_extract_writes_parquet_to_a_pipe_and_reads_standard_input(tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "f.parquet"
    ref = p2p("extract", WEB, "-o", out)
    assert ref.returncode == 0, ref.stderr
    written = pq.read_table(out)
    proc = subprocess.Popen([str(ENTRY), "extract", str(WEB), "-o", "-"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    data, err = proc.communicate(timeout=300)  # a pipe: not seekable
    assert proc.returncode == 0, err
    assert b"wrote standard output" in err
    piped = pq.read_table(io.BytesIO(data))
    assert piped.schema == written.schema and piped.to_pandas().equals(written.to_pandas())  # NaN == NaN
    env = {**os.environ, "TMPDIR": str(tmp_path / "t")}
    (tmp_path / "t").mkdir()
    res = p2p("extract", "-", "-o", "-", input=WEB.read_bytes(), env=env)
    assert res.returncode == 0, res.stderr
    stdin = pq.read_table(io.BytesIO(res.stdout)).to_pandas()
    assert set(stdin["capture"]) == {"standard input"}
    assert stdin.drop(columns="capture").equals(written.to_pandas().drop(columns="capture"))
    assert list((tmp_path / "t").iterdir()) == []


def test_score_several_captures_and_a_directory_in_order(model, scored, tmp_path):
    both = scored[MIXED.name] + scored[WEB.name]
    res = p2p("score", MIXED, WEB, "--model", model)
    assert res.returncode == 0, res.stderr
    assert finals(res.stdout) == both
    assert res.stderr.count("score done") == 2 and "mixed-home.pcap" in res.stderr
    d = tmp_path / "caps"
    d.mkdir()
    os.symlink(MIXED, d / "a.pcap")
    os.symlink(WEB, d / "b.pcap")
    out = tmp_path / "v.jsonl"
    res = p2p("score", d, "--model", model, "-o", out)
    assert res.returncode == 0, res.stderr
    assert finals(out.read_bytes()) == both
    one_line_error(p2p("score", MIXED, "-i", "lo", "--model", model), "not both")


@pytest.fixture(scope="module")
def p2p_flow(scored) -> tuple[str, dict]:
    """The sample's largest flow the scorer calls P2P, as --flow names it, and its final verdict."""
    flows = [v for v in scored[MIXED.name] if v.get("event_type") == "flow" and v["verdict"] == "p2p"]
    v = max(flows, key=lambda v: v["packets"])
    proto = {6: "tcp", 17: "udp"}[v["protocol"]]
    return f"{v['src_ip']}:{v['src_port']}-{v['dst_ip']}:{v['dst_port']}/{proto}", v


def test_inspect_shows_the_verdict_and_top_features(model, p2p_flow):
    from p2pdetect.models import load_bundle

    spec, v = p2p_flow
    res = p2p("inspect", MIXED, "--flow", spec, "--model", model, "--max-packets", "5")
    assert res.returncode == 0, res.stderr
    text = res.stdout.decode()
    assert f"verdict p2p, score {v['score']:.3f}" in text, text
    names = set(load_bundle(model).feature_names)
    top = text.split("top features")[1].split("\n\n")[0].strip().splitlines()[2:]  # after the column names
    assert len(top) == 10 and all(line.split()[0] in names for line in top), top
    packets = text.split("\n\n")[-1].strip().splitlines()
    assert packets[0].split()[:2] == ["#", "time_s"] and len(packets) == 6


def test_a_closed_pipe_ends_inspect_and_demo_quietly(p2p_flow, tmp_path):
    for args in (["inspect", MIXED, "--flow", p2p_flow[0]], ["demo", "-o", tmp_path / "demo"]):
        r, w = os.pipe()
        os.close(r)  # the reader is gone before the first line, as `| head -1` is soon after it
        proc = subprocess.run([str(ENTRY), *map(str, args)], cwd=ROOT, stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=300)
        os.close(w)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
