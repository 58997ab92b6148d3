"""The installed package: only `p2pdetect` lands in site-packages (issue 10, item 14)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_everything_under_p2pdetect(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = tmp_path.glob("p2pdetect-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"p2pdetect", wheel.name.split("-py3")[0] + ".dist-info"}
    for layer in ("features/schema.py", "models/bundle.py", "training/train.py", "serve/scorer.py",
                  "data/generator/worker.py", "models/default/model.txt"):
        assert f"p2pdetect/{layer}" in names


def test_layers_import_under_the_package_from_any_directory(tmp_path):
    code = ("import importlib.util, p2pdetect.features.schema as s, p2pdetect.models.bundle, p2pdetect.serve.scorer;"
            "assert importlib.util.find_spec('features') is None and importlib.util.find_spec('serve') is None;"
            "print(s.__name__)")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "p2pdetect.features.schema"
