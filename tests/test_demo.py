"""The README's main job: `p2pdetect demo` scores the shipped samples with the shipped model."""

from __future__ import annotations

import json

from conftest import run_cli, sample_captures


def test_demo_scores_every_sample(tmp_path):
    r = run_cli("demo", "-o", tmp_path / "demo")
    assert r.returncode == 0, r.stderr
    caps = sample_captures()
    assert caps
    for cap in caps:
        assert cap.name in r.stdout
        lines = (tmp_path / "demo" / f"{cap.stem}.verdicts.jsonl").read_text().splitlines()
        finals = [v for v in map(json.loads, lines) if v.get("stage") == "final"]
        assert finals and all(v["verdict"] in ("p2p", "other") for v in finals)
    assert "top P2P talkers" in r.stdout


def test_demo_bad_model_dir(tmp_path):
    r = run_cli("demo", "--model", tmp_path, "-o", tmp_path / "demo")
    assert r.returncode == 2 and r.stderr.startswith("p2pdetect: error: ") and "Traceback" not in r.stderr
