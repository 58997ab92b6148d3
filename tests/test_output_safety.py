"""Outputs are safe whatever sits at the path (issue 10, items 1 and 9; DESIGN.md invariant 8).

A regular file (or a symlink to one) is replaced atomically and honours the umask; a device, a
FIFO or `-` is written as a stream and stays what it is; an output that is one of the inputs
is refused with exit 2. Device nodes are private copies made with mknod (/dev/null is 1,3,
/dev/full is 1,7): a regression must never be able to replace the machine's own /dev/null.
"""

from __future__ import annotations

import hashlib
import io
import os
import pty
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SAMPLES, run_cli

CAPTURE = SAMPLES / "web.pcap"
IS_ROOT = os.geteuid() == 0
needs_mknod = pytest.mark.skipif(not IS_ROOT, reason="making device nodes (mknod) needs root")


def _umask(mask: int):
    return lambda: os.umask(mask)


def _one_line_error(res, fragment: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pdetect: error: "), res.stderr
    assert fragment in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def _no_leftovers(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == [], "temporary files left"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _device(path: Path, minor: int) -> Path:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    return path


def _fifo_reader(path: Path) -> tuple[threading.Thread, dict]:
    got: dict = {}

    def read() -> None:
        with open(path, "rb") as fh:  # blocks until the writer opens the FIFO
            got["data"] = fh.read()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A stand-in bundle trained on the samples (the shipped model is not what is tested)."""
    from serve_support import build_stand_in_bundle

    path = tmp_path_factory.mktemp("model") / "bundle"
    build_stand_in_bundle(path)
    return path


# --- regular files ------------------------------------------------------------------------------

@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_new_output_file_honours_the_umask(tmp_path, mask, mode):
    out = tmp_path / "flows.parquet"
    res = run_cli("extract", CAPTURE, "-o", out, preexec_fn=_umask(mask))
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert pq.read_table(out).num_rows > 0
    _no_leftovers(tmp_path)


def test_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "flows.parquet"
    out.write_bytes(b"old")
    out.chmod(0o600)
    res = run_cli("extract", CAPTURE, "-o", out, preexec_fn=_umask(0o022))
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and pq.read_table(out).num_rows > 0


def test_symlink_stays_a_symlink_and_its_target_is_replaced(tmp_path):
    target = tmp_path / "real.parquet"
    target.write_bytes(b"old")
    link = tmp_path / "link.parquet"
    link.symlink_to(target.name)
    dangling = tmp_path / "dangling.parquet"
    dangling.symlink_to("made.parquet")
    for path in (link, dangling):
        res = run_cli("extract", CAPTURE, "-o", path)
        assert res.returncode == 0, res.stderr
        assert path.is_symlink()
    assert pq.read_table(target).num_rows > 0
    assert pq.read_table(tmp_path / "made.parquet").num_rows > 0
    _no_leftovers(tmp_path)


def test_score_replaces_a_file_atomically_with_the_umask(tmp_path, model):
    out = tmp_path / "v.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(out.name)
    res = run_cli("score", CAPTURE, "--model", model, "-o", link, preexec_fn=_umask(0o022))
    assert res.returncode == 0, res.stderr
    assert link.is_symlink() and stat.S_IMODE(out.stat().st_mode) == 0o644
    assert out.read_text().count("\n") > 0
    _no_leftovers(tmp_path)


def test_directory_outputs_honour_the_umask(tmp_path):
    """Model bundles and reports are built in mkdtemp (0700) directories: made 0777 - umask."""
    from serve_support import build_stand_in_bundle

    old = os.umask(0o022)
    try:
        bundle = build_stand_in_bundle(tmp_path / "bundle")
    finally:
        os.umask(old)
    assert stat.S_IMODE(bundle.path.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in bundle.path.iterdir()} == {0o644}


# --- streams: devices, FIFOs, standard output -----------------------------------------------

@needs_mknod
def test_full_device_is_an_error_and_stays_a_device(tmp_path, model):
    full = _device(tmp_path / "full", 7)
    for args in (["extract", CAPTURE], ["score", CAPTURE, "--model", model]):
        res = run_cli(*args, "-o", full)
        _one_line_error(res, "No space left on device")
        assert stat.S_ISCHR(full.stat().st_mode)
    _no_leftovers(tmp_path)


@needs_mknod
def test_null_device_takes_the_output_and_stays_a_device(tmp_path, model):
    null = _device(tmp_path / "null", 3)
    for args in (["extract", CAPTURE], ["score", CAPTURE, "--model", model]):
        res = run_cli(*args, "-o", null)
        assert res.returncode == 0, res.stderr
        assert stat.S_ISCHR(null.stat().st_mode)
    _no_leftovers(tmp_path)


def test_fifo_reader_receives_the_flow_table(tmp_path):
    fifo = tmp_path / "flows.fifo"
    os.mkfifo(fifo)
    reader, got = _fifo_reader(fifo)
    res = run_cli("extract", CAPTURE, "-o", fifo, timeout=120)
    reader.join(timeout=30)
    assert res.returncode == 0, res.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    direct = tmp_path / "direct.parquet"
    assert run_cli("extract", CAPTURE, "-o", direct).returncode == 0
    assert got["data"] == direct.read_bytes()  # the same table, byte for byte


def test_fifo_reader_receives_every_verdict(tmp_path, model):
    fifo = tmp_path / "v.fifo"
    os.mkfifo(fifo)
    reader, got = _fifo_reader(fifo)
    res = run_cli("score", CAPTURE, "--model", model, "-o", fifo, timeout=120)
    reader.join(timeout=30)
    assert res.returncode == 0, res.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    lines = got["data"].decode().splitlines()
    finals = sum('"stage": "final"' in line for line in lines)
    assert finals > 0 and f"{finals:,} final verdicts" in res.stderr


@pytest.mark.parametrize("name", ["-", "/dev/stdout"])
def test_standard_output_takes_the_flow_table(name):
    res = subprocess.run([sys.executable, "-m", "p2pdetect", "extract", str(CAPTURE), "-o", name],
                         capture_output=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert pq.read_table(io.BytesIO(res.stdout)).num_rows > 0


def test_binary_output_to_a_terminal_is_refused():
    leader, follower = pty.openpty()
    try:
        res = subprocess.run([sys.executable, "-m", "p2pdetect", "extract", str(CAPTURE), "-o", "-"],
                             stdout=follower, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    _one_line_error(res, "is a terminal")


# --- refusals ---------------------------------------------------------------------------------

def test_an_input_is_never_an_output(tmp_path, model):
    cap = tmp_path / "c.pcap"
    cap.write_bytes(CAPTURE.read_bytes())
    labels = tmp_path / "c.labels.csv"
    labels.write_text((SAMPLES / "web.labels.csv").read_text())
    link = tmp_path / "link.pcap"
    link.symlink_to(cap.name)
    hard = tmp_path / "hard.pcap"
    os.link(cap, hard)
    before = _sha(cap), _sha(labels)
    for out in (cap, link, hard):
        _one_line_error(run_cli("extract", cap, "-o", out), "is also an input")
        _one_line_error(run_cli("score", cap, "--model", model, "-o", out), "is also an input")
    _one_line_error(run_cli("extract", cap, "--labels", "auto", "-o", labels), "is also an input")
    _one_line_error(run_cli("extract", tmp_path, "-o", cap), "is also an input")
    assert (_sha(cap), _sha(labels)) == before
    assert link.is_symlink()
    _no_leftovers(tmp_path)


def test_a_bundle_directory_holding_an_input_is_refused(tmp_path, model):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(model, bundle)
    table = bundle / "flows.parquet"
    assert run_cli("extract", CAPTURE, "--labels", "auto", "-o", table).returncode == 0
    res = run_cli("train", table, "-o", bundle)
    _one_line_error(res, "holds an input")
    assert table.exists()


@pytest.mark.parametrize("command", ["extract", "score"])
def test_a_directory_is_not_an_output_file(tmp_path, command, model):
    extra = ["--model", model] if command == "score" else []
    _one_line_error(run_cli(command, CAPTURE, *extra, "-o", tmp_path), "is a directory")


@needs_mknod
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_device_is_not_an_output_directory(tmp_path, command):
    null = _device(tmp_path / "null", 3)
    res = run_cli(command, CAPTURE, "-o", null)
    _one_line_error(res, "exists and is not a directory")
    assert stat.S_ISCHR(null.stat().st_mode)


def test_flow_cache_files_honour_the_umask(tmp_path, monkeypatch):
    import pyarrow as pa

    from p2pdetect.features.config import ExtractConfig
    from p2pdetect.training import cache

    monkeypatch.setenv("P2PDETECT_CACHE", str(tmp_path))
    old = os.umask(0o022)
    try:
        cache.put("0" * 64, ExtractConfig(), pa.table({"capture": ["x"]}))
    finally:
        os.umask(old)
    [written] = list(tmp_path.rglob("*.parquet"))
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
