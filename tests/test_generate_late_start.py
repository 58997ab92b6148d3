"""Late-start views of a generated capture (data.generator.late_start): the traffic from a time on,
flows already running at the start, labels kept; held out with their source."""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import capture, late_start

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "samples"


def _times(pcap: Path) -> list[float]:
    data = pcap.read_bytes()
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        out.append(sec + usec / 1e6)
        off += 16 + incl
    return out


def test_cut_before_keeps_the_records_from_the_offset_on_byte_for_byte(tmp_path):
    src = SAMPLE / "mixed-home.pcap"
    t = _times(src)
    out = tmp_path / "cut.pcap"
    kept = capture.cut_before(src, out, 5.0)
    u = _times(out)
    assert kept == len(u) == sum(x >= t[0] + 5.0 for x in t) and 0 < kept < len(t)
    assert min(u) >= t[0] + 5.0
    data, cut = src.read_bytes(), out.read_bytes()
    assert cut[:24] == data[:24] and data.endswith(cut[24:])   # the same records, the same header
    assert capture.cut_before(src, tmp_path / "all.pcap", 0.0) == len(t)
    assert (tmp_path / "all.pcap").read_bytes() == data
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap file at all, no magic here")
    with pytest.raises(GenerateError, match="not a classic pcap"):
        capture.cut_before(bad, tmp_path / "x.pcap", 1.0)


def test_late_start_view_starts_mid_flow_keeps_labels_and_names_its_source(tmp_path):
    run = tmp_path / "mixed-home-s1"
    run.mkdir()
    for f in ("mixed-home.json", "mixed-home.labels.csv", "mixed-home.pcap"):
        shutil.copy(SAMPLE / f, run / f)
    out = tmp_path / "mixed-home-s1-late"
    s = late_start.late_start_view(run, 5.0, out)
    orig = json.loads((run / "mixed-home.json").read_text())
    assert s["network"] == "late-start" and s["view_of"] == "mixed-home-s1/mixed-home.pcap"
    assert s["late_start_s"] == 5.0 and s["source_network"] == orig.get("network", "loopback")
    assert 0 < s["flows"] < orig["flows"] and s["unlabelled_flows"] == 0 and s["by_label"]["p2p"]["flows"] > 0
    assert json.loads((out / "mixed-home.json").read_text()) == s
    assert sorted(p.name for p in out.iterdir()) == ["mixed-home.json", "mixed-home.labels.csv", "mixed-home.pcap"]
    from p2pdetect.features.extract import extract_capture
    t = extract_capture(out / "mixed-home.pcap")
    # flows running at the cut start without their handshake: TCP flows whose first packet is no SYN
    tcp = t.column("protocol").to_numpy() == 6
    assert (t.column("bidirectional_syn_packets").to_numpy()[tcp] == 0).any()
    with pytest.raises(GenerateError, match="nothing left"):
        late_start.late_start_view(run, 1e6, tmp_path / "empty")
    assert not (tmp_path / "empty" / "mixed-home.pcap").exists()
    # held out with its source, like a vantage-point view
    from p2pdetect.training.groups import source_captures
    src = str(run / "mixed-home.pcap")
    assert source_captures(np.array([str(out / "mixed-home.pcap"), src])).tolist() == [src, src]


def test_late_views_go_to_their_own_manifest_never_to_the_training_one(tmp_path):
    from p2pdetect.data.make_corpus import LATE_MANIFEST, make_late_views, write_manifest

    run = tmp_path / "mixed-home-s1"
    run.mkdir()
    for f in ("mixed-home.json", "mixed-home.labels.csv", "mixed-home.pcap"):
        shutil.copy(SAMPLE / f, run / f)
    assert make_late_views(tmp_path) == 1 and make_late_views(tmp_path) == 0   # kept, not redone
    assert json.loads((tmp_path / "mixed-home-s1-late" / "mixed-home.json").read_text())["late_start_s"] == 5.0
    train = write_manifest(tmp_path)
    both = write_manifest(tmp_path, late=True)
    assert [e["pcap"] for e in train["captures"]] == ["mixed-home-s1/mixed-home.pcap"]
    assert [e["pcap"] for e in both["captures"]] == ["mixed-home-s1/mixed-home.pcap", "mixed-home-s1-late/mixed-home.pcap"]
    assert both["captures"][1]["view_of"] == "mixed-home-s1/mixed-home.pcap"
    assert json.loads((tmp_path / LATE_MANIFEST).read_text()) == both
    assert json.loads((tmp_path / "manifest.json").read_text()) == train
