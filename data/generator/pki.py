"""A throw-away certificate authority for one run: a CA, certificates it signs, DH parameters.

Why: libtorrent's SSL torrents carry their CA's certificate in the .torrent (``set_root_cert``) and
accept only peers whose certificate that CA signed, so each SSL swarm needs its own CA and one
certificate per peer; an HTTPS tracker needs a server certificate too. openssl (which the generator
already requires) makes them; EC keys keep it quick (a few tens of ms per certificate).
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA certificate and key under ``directory``; returns (cert, key) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}")
    return cert, key


def issue(ca: tuple[Path, Path], directory: Path, name: str, common_name: str, san: str = "") -> tuple[Path, Path]:
    """A certificate for ``common_name`` signed by ``ca`` (with subjectAltName ``san`` when given);
    returns (cert, key) paths named after ``name`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, csr = directory / f"{name}.pem", directory / f"{name}.key", directory / f"{name}.csr"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={common_name}")
    ext = []
    if san:
        extfile = directory / f"{name}.ext"
        extfile.write_text(f"subjectAltName={san}\n")
        ext = ["-extfile", str(extfile)]
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", *ext)
    return cert, key


def dh_params(directory: Path) -> Path:
    """RFC 7919's ffdhe2048 group as a DH parameter file (a named group: nothing to compute)."""
    path = directory / "dh.pem"
    _openssl("genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", str(path))
    return path
