"""Multi-connection downloads and cloud sync over HTTP(S): many parallel or long-lived connections per host.

Why: a download accelerator splits one file into byte ranges fetched over 4-16 parallel connections
(curl with Range headers, lftp ``pget -n 8``), so one host opens many concurrent TCP connections at
once, as a BitTorrent client does to its peers. A sync client (Dropbox-like) keeps connections open
for minutes and moves many small files both ways, so upload is close to download. Both are
ordinary traffic whose host shape resembles P2P.

The server answers ``GET/HEAD /file/<size>/<name>`` with Range support (206 Partial Content),
``POST /up`` (an upload), ``GET /obj/<size>`` and ``GET /notify`` (a long poll). Needs ``curl`` and
``lftp`` (Debian) for the download modes.
"""

from __future__ import annotations

import http.client
import logging
import random
import re
import shutil
import ssl
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from p2pdetect.data.generator.web import _BodyIter, _Handler, _send_bytes

log = logging.getLogger(__name__)

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class _RangeHandler(_Handler):
    """web's handler plus byte ranges on /file/<size>/<name> and a long poll on /notify."""

    def _file(self, head_only: bool) -> None:
        size = int(self.path.strip("/").split("/")[1])
        m = _RANGE.fullmatch(self.headers.get("Range", ""))
        first, last = (int(m.group(1)), int(m.group(2) or size - 1)) if m else (0, size - 1)
        last = min(last, size - 1)
        self.send_response(206 if m else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        self.send_header("Content-Length", str(last - first + 1))
        if m:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not head_only:
            _send_bytes(self.wfile, last - first + 1)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        try:
            self._file(head_only=True)
        except (OSError, ValueError, IndexError):
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = self.path.strip("/").split("/")
        try:
            if parts[0] == "file":
                self._file(head_only=False)
            elif parts[0] == "notify":  # nothing changed for a while, then a small change list
                time.sleep(random.uniform(5, 30))
                self._head(200, 60)
                _send_bytes(self.wfile, 60)
            else:
                super().do_GET()
        except (OSError, ValueError, IndexError):
            self.close_connection = True


def serve(ip: str, port: int, tls: bool, certfile: str | None, keyfile: str | None) -> ThreadingHTTPServer:
    """A threaded HTTP(S) server with ranges on ``ip:port``, serving in a daemon thread."""
    httpd = ThreadingHTTPServer((ip, port), _RangeHandler)
    httpd.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)  # type: ignore[arg-type]
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return httpd


def _url(p: dict[str, Any], size: int, rng: random.Random) -> str:
    scheme = "https" if p["tls"] else "http"
    return f"{scheme}://{p['server_ip']}:{p['port']}/file/{size}/{rng.getrandbits(40):x}.iso"


def _size(rng: random.Random, scale: float) -> int:
    return int(min(rng.lognormvariate(16.5, 0.7) * scale, 400e6))  # ~15 MB x scale


def curl_ranges(ip: str, p: dict[str, Any], rng: random.Random, until: float) -> None:
    """One file in 4-16 byte ranges, one curl process (one connection) per range, all at once."""
    size = _size(rng, p.get("scale", 1.0))
    url = _url(p, size, rng)
    n = rng.randint(4, 16)
    bounds = [size * i // n for i in range(n + 1)]
    procs = [subprocess.Popen(["curl", "-s", "-k", "--interface", ip, "--max-time", str(max(1, int(until - time.time()))),
                               "-r", f"{bounds[i]}-{bounds[i + 1] - 1}", "-o", "/dev/null", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n)]
    for proc in procs:
        proc.wait()


def lftp_pget(ip: str, p: dict[str, Any], rng: random.Random, until: float, workdir: Path) -> None:
    """lftp's segmented download: ``pget -n N`` (N = 4-10) of one file."""
    size = _size(rng, p.get("scale", 1.0))
    out = workdir / f"pget-{ip}-{rng.getrandbits(32):x}.bin"
    script = (f"set net:socket-bind-ipv4 {ip}; set ssl:verify-certificate no; set net:max-retries 2; "
              f"set net:timeout 10; pget -n {rng.randint(4, 10)} {_url(p, size, rng)} -o {out}")
    try:
        subprocess.run(["lftp", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=max(1.0, until - time.time()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for f in workdir.glob(f"{out.name}*"):  # pget keeps a .lftp-pget-status beside partial files
            f.unlink(missing_ok=True)


def _conn(ip: str, p: dict[str, Any]) -> http.client.HTTPConnection:
    if p["tls"]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(p["server_ip"], p["port"], context=ctx, timeout=60, source_address=(ip, 0))
    return http.client.HTTPConnection(p["server_ip"], p["port"], timeout=60, source_address=(ip, 0))


def sync(ip: str, p: dict[str, Any], rng: random.Random, until: float) -> None:
    """A sync client: a long-poll connection for change notices, and a keep-alive connection moving
    small files both ways in bursts (an edited folder), idle in between."""
    def poll() -> None:
        c = _conn(ip, p)
        try:
            while time.time() < until - 2:
                c.request("GET", "/notify")
                c.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            c.close()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    c = _conn(ip, p)
    try:
        while time.time() < until - 2:
            for _ in range(rng.randint(1, 40)):  # one burst of changed files
                size = int(min(rng.lognormvariate(9.5, 1.6), 5e6))
                if rng.random() < 0.5:
                    c.request("POST", "/up", body=_BodyIter(size), headers={"Content-Length": str(size)})
                else:
                    c.request("GET", f"/obj/{size}")
                c.getresponse().read()
                time.sleep(rng.expovariate(1 / 0.1))
            time.sleep(min(max(0.0, until - 2 - time.time()), rng.expovariate(1 / 8.0)))
    finally:
        c.close()


def run_ranged(params: dict[str, Any]) -> None:
    """params: ``server_ip``, ``port``, ``tls``, ``certfile``/``keyfile``, ``clients`` (list of {ip, mode
    ('curl'|'pget'|'sync'), start}), ``scale``, ``seed``, ``until``, ``t0``, ``workdir``."""
    rng = random.Random(params["seed"])
    until = params["until"]
    workdir = Path(params["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    httpd = serve(params["server_ip"], params["port"], params["tls"], params.get("certfile"), params.get("keyfile"))

    def client(spec: dict[str, Any], seed: int) -> None:
        r = random.Random(seed)
        time.sleep(max(0.0, params["t0"] + spec["start"] - time.time()))
        while time.time() < until - 2:
            try:
                if spec["mode"] == "curl":
                    curl_ranges(spec["ip"], params, r, until)
                elif spec["mode"] == "pget":
                    lftp_pget(spec["ip"], params, r, until, workdir)
                else:
                    sync(spec["ip"], params, r, until)
            except (OSError, http.client.HTTPException, subprocess.SubprocessError) as err:
                log.info("client %s %s: %s", spec["ip"], spec["mode"], err)
            time.sleep(min(max(0.0, until - time.time()), r.uniform(1, 8)))

    threads = [threading.Thread(target=client, args=(c, rng.getrandbits(32)), daemon=True) for c in params["clients"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, until - time.time() + 3))
    httpd.shutdown()
    httpd.server_close()
    shutil.rmtree(workdir, ignore_errors=True)

