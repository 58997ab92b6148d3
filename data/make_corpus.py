"""Generate the training corpus into data/corpus/ (``make dataset``; needs root; git-ignored).

Many scenarios x several seeds, tens of thousands of flows, in about 70 minutes on 2 cores (67 measured
in session 27): two generator runs at a time (each in its own namespace), resumable (finished runs are
kept), and a ``manifest.json`` listing every capture with its labels file for ``p2pdetect train``. Each P2P
capture also gives two vantage-point views (one peer's link: data.generator.vantage), listed with
network "vantage" and the capture they come from. ``--late-views`` derives late-start views
(data.generator.late_start: each capture without its first third) into ``manifest-late.json``, an
evaluation set that ``manifest.json`` does not list.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import labels, late_start, scenarios, vantage
from p2pdetect.data.generator.clients import implementations_in
from p2pdetect.data.generator.generate import missing_requirement
from p2pdetect.data.generator.namespace import require_root

CORPUS = Path(__file__).resolve().parent / "corpus"
_REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("p2pdetect.data.make_corpus")

#: (scenario, seeds, duration seconds, scale) of the full corpus.
RECIPE: tuple[tuple[str, tuple[int, ...], int, float], ...] = (
    ("p2p-tcp-mse", (101, 102, 103, 104, 105), 60, 4.0),
    ("p2p-utp", (201, 202, 203), 60, 4.0),
    ("p2p-mixed-ports", (301, 302, 303), 60, 3.0),
    # Other BitTorrent implementations (BiglyBT's JVMs are heavy: its runs are spread apart).
    ("p2p-biglybt", (211,), 45, 2.0),
    ("web", (401, 402, 403), 60, 1.0),
    ("p2p-ctorrent", (221, 222, 223), 45, 3.0),
    ("bulk", (501, 502), 60, 2.0),
    ("p2p-mixed-impl", (231, 232), 60, 3.0),
    ("streaming", (601, 602), 60, 1.5),
    ("p2p-biglybt", (212,), 45, 1.0),
    ("dns", (701, 702), 40, 1.0),
    ("p2p-mixed-impl", (233, 234), 60, 2.0),
    ("ssh", (751, 752), 45, 1.0),
    ("quic", (761, 762), 45, 1.0),
    # Swarms that behave like real ones: a DHT of hundreds of nodes, trackers, LSD, magnets, gone peers,
    # seen from the observed clients only (data.generator.realistic).
    ("p2p-dht-swarm", (1101, 1102, 1103), 60, 1.0),
    ("p2p-dht-home", (1111, 1112), 60, 1.0),
    # The seeds' evasions (data.generator.evasion): BitTorrent over TLS, through an SSH SOCKS tunnel, on 443/80/8080/22.
    ("p2p-evasion", (1201, 1202), 50, 2.0),
    # Hard negatives: ordinary traffic with P2P's endpoint and host shape (data.generator.hard_negatives).
    ("webrtc", (1001, 1002), 50, 1.0),
    ("game-udp", (1011,), 45, 1.0),
    ("parallel-downloads", (1021,), 50, 1.0),
    ("lan-services", (1031,), 45, 1.0),
    ("vpn", (1041,), 50, 1.0),
    ("mixed-office", (801, 802, 803), 90, 2.0),
    ("mixed-home", (901, 902, 903), 90, 3.0),
    # WebTorrent (data.generator.webtorrent_scenarios): uTP, DHT and MSE of an implementation other than
    # libtorrent, alone among its own DHT nodes and in swarms with libtorrent, ctorrent and BiglyBT.
    ("p2p-webtorrent-dht", (1501, 1502, 1503, 1504), 60, 1.0),
    ("p2p-webtorrent-dht", (1505, 1506), 60, 2.0),
    ("p2p-webtorrent-mixed", (1521, 1522, 1523), 60, 2.0),
    # WebTorrent leechers trading pieces with each other over uTP: bulk uTP both ways, not from libtorrent.
    ("p2p-webtorrent-utp", (1531, 1532, 1533, 1534), 60, 2.0),
    ("p2p-webtorrent-utp", (1535, 1536), 60, 3.0),
    # A server browser querying hundreds of game servers on one port (A2S, EAQ-like probes), and swarms whose
    # peers all listen on one port: "many peers on one port" and "diverse remote ports" name neither class.
    ("server-browser", (1702, 1703, 1707), 60, 1.0),
    ("p2p-one-port", (1711, 1712, 1713), 60, 2.0),
    # Peers of WebTorrent, BiglyBT and ctorrent on 443, 80, 8080, 22, 25...: P2P on service ports from more
    # than libtorrent (p2p-mixed-ports), so that leaving one implementation out keeps the behaviour in training.
    ("p2p-service-ports", (1801, 1802, 1803, 1804), 60, 2.0),
    # Homes running WebTorrent, BiglyBT or ctorrent beside browsing and a chat on a high port: the ordinary
    # flows of P2P hosts, which mixed-home has only with libtorrent (so leaving libtorrent out lost them).
    ("mixed-home-impl", (1901, 1902, 1903), 90, 2.0),
    # Consoles playing peer-to-peer matches (NAT check, relay, 1-7 peers per match from one socket, as in
    # nDPI's nintendo.pcap): a dozen peers on high ports in a minute, like a small swarm, but no bulk.
    ("game-p2p", (2001, 2002, 2003), 60, 1.0),
    # Client-server applications on random high ports (session, a connection per message, server push,
    # UDP request/response): the real ordinary traffic that scores highest when training has none of it.
    ("app-services", (2101, 2102, 2103), 60, 1.0),
    # aMule (data.generator.ed2k_scenarios): eD2k and Kad, a P2P family besides BitTorrent, so that the model
    # learns P2P from two families and evaluation can leave one family out (--group-by implementation: amule).
    ("p2p-amule", (2201, 2202, 2203), 90, 1.0),
    ("p2p-amule", (2204,), 90, 2.0),
)

#: WAN runs (data.generator.topology): (scenario, network class, seeds, duration seconds, scale). Each host
#: draws its path from the class; the capture is an ISP router's uplink, so evaluation can leave a class out.
WAN_RECIPE: tuple[tuple[str, str, tuple[int, ...], int, float], ...] = (
    ("home-isp", "wan-low", (1301,), 60, 2.0),
    ("home-isp", "wan-mid", (1302, 1303), 60, 2.0),
    ("home-isp", "wan-high", (1304,), 60, 2.0),
    ("home-isp", "lossy", (1305,), 60, 2.0),
    ("p2p-tcp-mse", "wan-mid", (1311,), 60, 3.0),
    ("p2p-utp", "wan-high", (1321,), 60, 3.0),
    ("web", "wan-low", (1331,), 60, 1.0),
    ("mixed-home", "lossy", (1341,), 90, 2.0),
    ("p2p-dht-swarm", "wan-mid", (1351,), 60, 1.0),
    ("p2p-webtorrent-dht", "wan-low", (1514,), 60, 1.0),
    ("p2p-webtorrent-dht", "wan-mid", (1511,), 60, 1.0),
    ("p2p-webtorrent-dht", "wan-high", (1512,), 60, 1.0),
    ("p2p-webtorrent-dht", "lossy", (1513,), 60, 1.0),
    ("p2p-webtorrent-mixed", "wan-mid", (1524,), 60, 2.0),
    ("p2p-webtorrent-utp", "wan-mid", (1541,), 60, 2.0),
    ("p2p-webtorrent-utp", "wan-high", (1542,), 60, 2.0),
    ("p2p-webtorrent-utp", "lossy", (1543,), 60, 2.0),
    ("server-browser", "wan-mid", (1709,), 60, 1.0),
    ("p2p-service-ports", "wan-mid", (1811,), 60, 2.0),
    ("game-p2p", "wan-mid", (2011,), 60, 1.0),
    ("game-p2p", "lossy", (2012,), 60, 1.0),
    ("app-services", "wan-mid", (2111,), 60, 1.0),
    ("app-services", "lossy", (2112,), 60, 1.0),
)

#: Vantage-point views derived from each P2P capture (data.generator.vantage): its best-connected
#: peer's link and a middling one's.
VIEWS_PER_CAPTURE = 2

#: A two-minute smoke version of the recipe (one short run per scenario family).
QUICK: tuple[tuple[str, tuple[int, ...], int, float], ...] = (
    ("p2p-tcp-mse", (101,), 20, 1.0),
    ("p2p-utp", (201,), 20, 1.0),
    ("p2p-mixed-impl", (231,), 25, 1.0),
    ("web", (401,), 20, 1.0),
    ("mixed-home", (901,), 20, 1.0),
)


def _run_one(out: Path, scenario: str, seed: int, duration: int, scale: float,
             network: str = "loopback") -> dict | None:
    """Generate one capture into ``out/<scenario>[-<network>]-s<seed>/`` unless it is already there."""
    run_dir = out / (f"{scenario}-s{seed}" if network == "loopback" else f"{scenario}-{network}-s{seed}")
    summary = run_dir / f"{scenario}.json"
    if summary.exists():
        log.info("%s seed %d: already generated, kept", scenario, seed)
        return json.loads(summary.read_text())
    cmd = [sys.executable, "-m", "p2pdetect.data.generator", "--scenario", scenario, "--seed", str(seed),
           "--duration", str(duration), "--scale", str(scale), "--network", network, "-o", str(run_dir)]
    res = subprocess.run(cmd, cwd=_REPO, capture_output=True, text=True)
    if res.returncode != 0:
        log.error("%s seed %d failed: %s", scenario, seed, res.stderr.strip().splitlines()[-1:] or "?")
        return None
    log.info("%s seed %d: %s", scenario, seed, res.stderr.strip().splitlines()[-1])
    return json.loads(summary.read_text())


def manifest_entry(out: Path, summary: Path) -> dict | None:
    """The manifest entry of the capture whose generator summary is ``summary`` (None: not a summary)."""
    s = json.loads(summary.read_text())
    if "pcap" not in s or "labels" not in s:  # e.g. quick/manifest.json
        return None
    rel = summary.parent.relative_to(out)
    return {"pcap": f"{rel}/{s['pcap']}", "labels": f"{rel}/{s['labels']}", "scenario": s["scenario"],
            "seed": s["seed"], "flows": s["flows"], "p2p_flows": s["by_label"].get("p2p", {}).get("flows", 0),
            "unlabelled_share": s["unlabelled_share"],
            "implementations": s.get("implementations") or implementations_in(s.get("apps", {})),
            "network": s.get("network", "loopback"),
            **{k: s[k] for k in ("vantage_of", "view_of") if k in s}}


#: The manifest that lists the corpus and its late-start views (an evaluation set: `evaluate
#: --group-by network` leaves the views out as the network "late-start"); manifest.json, what
#: `make model` trains on, never lists them.
LATE_MANIFEST = "manifest-late.json"


def write_manifest(out: Path, late: bool = False) -> dict:
    """Write ``out/manifest.json`` listing every finished capture but the late-start views (with
    late: ``out/manifest-late.json``, listing them too), atomically; returns it."""
    captures = [e for p in sorted(out.glob("*/*.json")) if (e := manifest_entry(out, p))
                and (late or e["network"] != late_start.NETWORK)]
    manifest = {"captures": captures}
    name = LATE_MANIFEST if late else "manifest.json"
    tmp = out / f".{name}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out / name)
    return manifest


def make_views(out: Path, per_capture: int = VIEWS_PER_CAPTURE) -> int:
    """Derive the vantage-point views (data.generator.vantage) of every finished P2P capture in
    ``out`` that lacks them, into ``out/<run>-vantage-<ip>/``; returns how many were written."""
    made = 0
    for summary in sorted(out.glob("*/*.json")):
        s = json.loads(summary.read_text())
        if ("pcap" not in s or "labels" not in s or "vantage_of" in s or s.get("scenario") in vantage.OBSERVED_ONLY
                or not s.get("by_label", {}).get("p2p", {}).get("flows")):
            continue
        run = summary.parent
        rows = labels.read_csv(run / s["labels"])
        for ip in vantage.pick_hosts(rows, per_capture):
            view = out / f"{run.name}-vantage-{ip}"
            if (view / summary.name).exists():
                continue
            if vantage.vantage_view(run, ip, view, rows) is None:
                log.info("%s: no packet of %s in the capture (a pair the uplink never sees); no view", run.name, ip)
                continue
            made += 1
    log.info("vantage views: %d written", made)
    return made


def make_late_views(out: Path, share: float = late_start.OFFSET_SHARE) -> int:
    """Derive the late-start view (data.generator.late_start) of every generated capture in ``out``
    that lacks it (views excepted), into ``out/<run>-late/``, starting ``share`` of its duration
    in; returns how many were written."""
    made = 0
    for summary in sorted(out.glob("*/*.json")):
        s = json.loads(summary.read_text())
        if "pcap" not in s or "labels" not in s or "vantage_of" in s or "view_of" in s:
            continue
        run = summary.parent
        view = out / f"{run.name}-late"
        if (view / summary.name).exists():
            continue
        late_start.late_start_view(run, float(s.get("duration_s", 60)) * share, view)
        made += 1
    log.info("late-start views: %d written", made)
    return made


def make_corpus(out: Path = CORPUS, quick: bool = False, jobs: int = 2) -> dict:
    """Run the recipe (or the quick one) with ``jobs`` generators at a time; returns the manifest."""
    require_root()
    out.mkdir(parents=True, exist_ok=True)
    runs = [(sc, seed, d, s, "loopback") for sc, seeds, d, s in (QUICK if quick else RECIPE) for seed in seeds]
    runs += [] if quick else [(sc, seed, d, s, net) for sc, net, seeds, d, s in WAN_RECIPE for seed in seeds]
    for run in list(runs):  # scenarios whose optional requirement (sshd, aioquic) is missing here
        missing = missing_requirement(scenarios.build(run[0], run[1], run[2], run[3]))
        if missing:
            log.warning("skipping %s seed %d: %s", run[0], run[1], missing)
            runs.remove(run)
    started = time.time()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda r: _run_one(out, *r), runs))
    if not quick:
        make_views(out)
    manifest = write_manifest(out)
    flows = sum(c["flows"] for c in manifest["captures"])
    p2p = sum(c["p2p_flows"] for c in manifest["captures"])
    log.info("corpus: %d captures, %d flows (%d p2p) in %.0f s -> %s", len(manifest["captures"]), flows, p2p,
             time.time() - started, out / "manifest.json")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2pdetect.data.make_corpus", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help=f"corpus directory (default: {CORPUS}, or {CORPUS / 'quick'} with --quick)")
    parser.add_argument("--quick", action="store_true", help="a ~2-minute smoke corpus instead of the full one")
    parser.add_argument("--jobs", type=int, default=2, help="generator runs at a time (default: 2)")
    parser.add_argument("--views-only", action="store_true",
                        help="only derive the missing vantage-point views of the captures already there "
                             "and rewrite the manifest (no generator runs, no root)")
    parser.add_argument("--late-views", action="store_true",
                        help=f"only derive the missing late-start views of the captures already there (each "
                             f"without its first third: flows already running when it starts) and write "
                             f"{LATE_MANIFEST}, an evaluation set; manifest.json is left as it is (no root)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        out = args.output or (CORPUS / "quick" if args.quick else CORPUS)
        if args.late_views:
            make_late_views(out)
            write_manifest(out, late=True)
        elif args.views_only:
            make_views(out)
            write_manifest(out)
        else:
            make_corpus(out, quick=args.quick, jobs=max(1, args.jobs))
    except GenerateError as err:
        sys.stderr.write(f"p2pdetect: error: {err}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
