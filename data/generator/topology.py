"""WAN paths and an ISP's vantage point: where hosts sit, their addresses, paths and the router between them.

Why: on loopback every round trip takes microseconds, so a detector trained there learns loopback
timing. Here the same apps run, but every packet between two hosts crosses the delay line
(delayline.py) and, for subscribers, a real router namespace with NAT; the capture is taken on the
router's uplink, as an ISP sees its subscribers.

The map (``H`` = hosts namespace, ``R`` = router namespace, ``DL`` = the delay-line process)::

    apps in H --wan0(TUN)--> DL --access link--> lan0(TUN) R [NAT] up0(TAP) --> DL --WAN link--> wan0 --> apps in H
                                                                  ^ capture

Every app still runs in H, bound to its own addresses (H has local routes for the whole plan), but
policy routing sends all locally generated traffic between plan addresses out of ``wan0`` instead of
``lo``, and the delay line writes it back in when its time has come (``accept_local``). Hosts are
*inside* (subscribers of the ISP, behind R; some homes share one public address through SNAT) or
*outside* (the internet: servers and remote peers). Inside <-> outside traffic crosses the uplink and
is captured; outside <-> outside traffic crosses two WAN links and no vantage point.

Addresses (only inside namespaces created here, no route out): outside hosts 198.18.0.0/15 (RFC 2544
benchmarking), public subscribers 203.0.113.0/25, NAT public addresses 203.0.113.128/25, NAT'd home
LANs 198.51.100.0/24, the router's uplink 192.0.2.1/24.

Labels stay exact after NAT: each label row's pair is rewritten to the public addresses the uplink
sees. Every outside address belongs to one app, and homes never share two apps with each other, so
the public pair still names exactly one app (checked here; a conflict is a generator bug).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from p2pdetect.data import GenerateError
from p2pdetect.data.generator import namespace
from p2pdetect.data.generator.scenarios import AppSpec, Plan

log = logging.getLogger(__name__)

#: Path classes a corpus run can draw from (per host): RTT range (ms), jitter (ms), loss (%) of WAN links.
NETWORKS: dict[str, dict[str, tuple[float, float]]] = {
    "wan-low": {"rtt_ms": (5, 30), "jitter_ms": (0, 2), "loss_pct": (0, 0.2)},
    "wan-mid": {"rtt_ms": (30, 150), "jitter_ms": (0, 8), "loss_pct": (0, 0.5)},
    "wan-high": {"rtt_ms": (150, 300), "jitter_ms": (0, 20), "loss_pct": (0, 1.0)},
    "lossy": {"rtt_ms": (20, 200), "jitter_ms": (2, 20), "loss_pct": (1.0, 3.0)},
}

HOST_DEV, LAN_DEV, UP_DEV = "wan0", "lan0", "up0"
UP_MAC, GW_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
UPLINK_IP, GW_IP = "192.0.2.1", "192.0.2.254"
OUTSIDE_NET, PUBLIC_NET, NAT_PUBLIC_NET, NAT_LAN_NET = "198.18.0.0/15", "203.0.113.0/25", "203.0.113.128/25", "198.51.100.0/24"
ROUTER_SUFFIX = "-r"
_IP = re.compile(r"^127\.\d+\.\d+\.\d+$")
_CLIENT_FAMILY = "127.50."  # scenarios.py: client hosts
_SERVER_MBIT = 1000.0
#: Scenarios that run on loopback only, and why: the vpn's TUN devices and rules ahead of the local
#: table, p2p-evasion's SSH exit route (a local route), aMule's Kad (no 198.18/15 contact).
_OWN_ROUTES = "sets up its own tunnels and policy routing, which the WAN paths would override"
LOOPBACK_ONLY = {"vpn": _OWN_ROUTES, "p2p-evasion": _OWN_ROUTES,
                 "p2p-amule": "needs addresses Kad accepts as contacts, and the WAN's are reserved (198.18.0.0/15)"}
#: The aggregate rate into the delay line (tbf on wan0): about half what it forwards on one busy core.
WAN_MAX_MBIT = 40.0


def classify(rtt_ms: float, loss_pct: float) -> str:
    """The path class a fixed path belongs to (the capture summary's ``network``)."""
    if loss_pct >= 1.0:
        return "lossy"
    return "wan-low" if rtt_ms < 30 else "wan-mid" if rtt_ms <= 150 else "wan-high"


@dataclass
class Home:
    """Subscriber hosts (plan addresses) behind one line; ``nat`` = they share one public address."""

    hosts: list[str]
    nat: bool = False


@dataclass
class Network:
    """A plan moved onto WAN addresses, with every host's role, public address and links."""

    name: str
    plan: Plan
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # address -> role, public, up, down, mtu
    fixed: dict[str, float] | None = None

    def drain_s(self) -> float:
        """How long the last packets may still be on their way (two WAN links, jitter, queues)."""
        return 0.5 + 2 * max((h["up"]["delay_ms"] + h["up"]["jitter_ms"]) / 1e3 for h in self.hosts.values())

    def summary(self, stats: dict[str, Any] | None) -> dict[str, Any]:
        """What the capture's JSON records about the network: its class, the fixed path, every host's
        role and links, and the delay line's counters."""
        inside = [a for a, h in self.hosts.items() if h["role"] == "inside"]
        return {"network": self.name, "vantage_point": "isp-router-uplink", "path": self.fixed,
                "subscribers": len(inside), "nat_subscribers": sum(1 for a in inside if self.hosts[a]["nat"]),
                "delay_line": stats, "hosts": self.hosts}


def _walk(obj: Any, mapping: dict[str, str]) -> Any:
    """``obj`` with every plan address (and 127.K.N.0/24 block) replaced by its WAN address."""
    if isinstance(obj, str):
        if obj.endswith(".0/24") and _IP.match(obj[:-3]):
            some = next((v for k, v in mapping.items() if k.startswith(obj[:-4])), None)
            return some.rsplit(".", 1)[0] + ".0/24" if some else obj
        return mapping.get(obj, obj)
    if isinstance(obj, list):
        return [_walk(x, mapping) for x in obj]
    if isinstance(obj, dict):
        return {k: _walk(v, mapping) for k, v in obj.items()}
    return obj


def _plan_addresses(plan: Plan) -> list[str]:
    seen: dict[str, None] = {}

    def visit(obj: Any) -> None:
        if isinstance(obj, str) and _IP.match(obj):
            seen.setdefault(obj)
        elif isinstance(obj, list):
            for x in obj:
                visit(x)
        elif isinstance(obj, dict):
            for x in obj.values():
                visit(x)

    for app in plan.apps:
        visit(app.params)
        for r in app.rows:
            seen.setdefault(r.src_ip)
            seen.setdefault(r.dst_ip)
    return list(seen)


def _default_homes(plan: Plan, rng: random.Random) -> list[Home]:
    """Subscribers when the scenario names no homes: its vantage hosts if it has some; else every
    client host and about a third of each swarm's own peers (at least one, one left outside)."""
    if plan.vantage():
        return [Home([a]) for a in plan.vantage()]
    homes = {a: Home([a]) for a in _plan_addresses(plan) if a.startswith(_CLIENT_FAMILY)}
    for app in plan.apps:
        if app.params.get("kind") != "bt-swarm":
            continue
        own = [p["ip"] for p in app.params["peers"] if not p["ip"].startswith(_CLIENT_FAMILY)]
        if not own:
            continue
        chosen = [ip for ip in own if rng.random() < 0.33] or [rng.choice(own)]
        if len(chosen) == len(own) and len(own) > 1:
            chosen.pop()
        homes.update({ip: Home([ip]) for ip in chosen})
    return list(homes.values())


def _link(delay_ms: float, jitter_ms: float, loss_pct: float, rate_mbit: float, mtu: int) -> dict[str, Any]:
    return {"delay_ms": round(delay_ms, 3), "jitter_ms": round(jitter_ms, 3), "loss_pct": round(loss_pct, 4),
            "rate_mbit": rate_mbit, "mtu": mtu}


def _mtu(rng: random.Random) -> int:
    return rng.choices([1500, 1492, 1280], weights=[6, 3, 1])[0]


def for_config(plan: Plan, network: str, seed: int, fixed: dict[str, float] | None) -> Network | None:
    """The WAN for ``plan`` as configured, or None for loopback. A scenario that names subscriber
    homes (``home-isp``) is about the ISP's vantage point: on loopback it draws ``wan-mid`` paths."""
    homes = [Home(list(h["hosts"]), bool(h["nat"])) for h in plan.homes] or None
    if network == "loopback" and fixed is None:
        if homes is None:
            return None
        network = "wan-mid"
    if plan.scenario in LOOPBACK_ONLY:
        raise GenerateError(f"scenario {plan.scenario} {LOOPBACK_ONLY[plan.scenario]}; run it without "
                            "--network/--rtt-ms")
    return build(plan, network, seed, fixed, homes)


def _map_addresses(plan: Plan, homes: list[Home]) -> tuple[dict[str, str], dict[str, str]]:
    """Plan address -> WAN address, and WAN address -> the public address the uplink sees."""
    home_of = {h: i for i, home in enumerate(homes) for h in home.hosts}
    mapping: dict[str, str] = {}
    public: dict[str, str] = {}
    pub_hosts = iter(ipaddress.ip_network(PUBLIC_NET).hosts())
    nat_pub = iter(ipaddress.ip_network(NAT_PUBLIC_NET).hosts())
    nat_lan = iter(ipaddress.ip_network(NAT_LAN_NET).hosts())
    outside_blocks: dict[str, int] = {}
    home_public: dict[int, str] = {}
    try:
        for a in _plan_addresses(plan):
            if a in home_of and homes[home_of[a]].nat:
                mapping[a] = str(next(nat_lan))
                if home_of[a] not in home_public:
                    home_public[home_of[a]] = str(next(nat_pub))
                public[mapping[a]] = home_public[home_of[a]]
                continue
            if a in home_of:
                mapping[a] = str(next(pub_hosts))
            else:  # block by block, so 127.K.N.0/24 ranges in parameters map too
                block, host = a.rsplit(".", 1)
                n = outside_blocks.setdefault(block, len(outside_blocks))
                if n >= 512:
                    raise GenerateError(f"scenario {plan.scenario} has too many address blocks for {OUTSIDE_NET}")
                mapping[a] = f"198.{18 + n // 256}.{n % 256}.{host}"
            public[mapping[a]] = mapping[a]
    except StopIteration as err:
        raise GenerateError(f"scenario {plan.scenario} has more subscribers than the WAN address plan holds "
                            "(125 public, 126 NAT homes, 253 NAT'd hosts); lower --scale") from err
    return mapping, public


def _public_apps(plan: Plan, mapping: dict[str, str], public: dict[str, str]) -> list[AppSpec]:
    """The apps on their WAN addresses, label rows rewritten to the public pairs the uplink sees.

    Raises GenerateError if NAT would make one public pair (and ports) carry two labels or apps.
    """
    apps = [AppSpec(name=app.name, label=app.label, params=_walk(app.params, mapping), rows=[],
                    vantage=[public[mapping[a]] for a in app.vantage]) for app in plan.apps]
    owner: dict[tuple[Any, ...], tuple[str, str]] = {}
    for new, old in zip(apps, plan.apps):
        for r in old.rows:
            a, b = public[mapping[r.src_ip]], public[mapping[r.dst_ip]]
            if a == b:  # two hosts of one home: their traffic never reaches the uplink
                continue
            ends = sorted([(a, r.src_port or 0), (b, r.dst_port or 0)])
            key = (*ends[0], *ends[1], r.protocol)
            if key in owner:
                if owner[key] != (r.label, r.app):
                    raise GenerateError(f"scenario {plan.scenario}: public pair {key} would carry {owner[key]} and "
                                        f"{(r.label, r.app)}; this is a generator bug, please report it")
                continue
            owner[key] = (r.label, r.app)
            new.rows.append(replace(r, src_ip=a, dst_ip=b))
    return apps


def build(plan: Plan, network: str, seed: int, fixed: dict[str, float] | None = None,
          homes: list[Home] | None = None) -> Network:
    """Move ``plan`` onto WAN addresses and draw every host's path.

    ``fixed`` (``rtt_ms``, ``jitter_ms``, ``loss_pct``) gives every WAN link the same path, with
    access links of zero delay so that the round trip seen at the uplink is ``rtt_ms``; otherwise
    each outside host draws its WAN path from ``NETWORKS[network]`` and each subscriber an access
    link of 1-10 ms. Rates are asymmetric (down > up) for subscribers and remote peers.
    """
    rng = random.Random(f"network:{plan.scenario}:{seed}:{network}")
    homes = homes if homes is not None else _default_homes(plan, rng)
    nat_of = {h: home.nat for home in homes for h in home.hosts}
    mapping, public = _map_addresses(plan, homes)
    apps = _public_apps(plan, mapping, public)
    net = Network(name=classify(fixed["rtt_ms"], fixed["loss_pct"]) if fixed else network,
                  plan=Plan(scenario=plan.scenario, rate_mbit=min(plan.rate_mbit, WAN_MAX_MBIT), apps=apps),
                  fixed=fixed)
    servers = {mapping[a] for app in plan.apps for k, a in app.params.items() if k == "server_ip"}
    cls = NETWORKS.get(network, NETWORKS["wan-mid"])
    for old, a in mapping.items():
        if old in nat_of:  # a subscriber: its access link
            down, up = rng.choice([10, 25, 50, 100]), rng.choice([1, 5, 10, 20])
            acc = 0.0 if fixed else rng.uniform(1, 10)
            mtu = _mtu(rng)
            net.hosts[a] = {"role": "inside", "nat": nat_of[old], "public": public[a], "mtu": mtu,
                            "up": _link(acc, 0, 0, up, mtu), "down": _link(acc, 0, 0, down, mtu)}
            continue
        rtt = fixed["rtt_ms"] if fixed else rng.uniform(*cls["rtt_ms"])
        jit = fixed["jitter_ms"] / 2 if fixed else rng.uniform(*cls["jitter_ms"])
        loss = fixed["loss_pct"] if fixed else rng.uniform(*cls["loss_pct"])
        if a in servers:
            down, up, mtu = _SERVER_MBIT, _SERVER_MBIT, 1500
        else:
            down, up, mtu = rng.choice([20, 50, 100, 300]), rng.choice([2, 5, 10, 20, 50]), _mtu(rng)
        net.hosts[a] = {"role": "outside", "nat": False, "public": a, "mtu": mtu,
                        "up": _link(rtt / 2, jit, loss, up, mtu), "down": _link(rtt / 2, jit, loss, down, mtu)}
    return net


def router_ns(hosts_ns: str) -> str:
    """Name of the router namespace that goes with hosts namespace ``hosts_ns``."""
    return hosts_ns + ROUTER_SUFFIX


def _batch(ns: str, lines: list[str], tool: str = "ip") -> None:
    """Run many ``ip``/``tc`` commands in namespace ``ns`` in one process (``-batch``)."""
    res = subprocess.run([tool, "-n", ns, "-batch", "-"] if tool == "ip" else
                         ["ip", "netns", "exec", ns, tool, "-batch", "-"],
                         input="\n".join(lines) + "\n", capture_output=True, text=True)
    if res.returncode != 0:
        raise GenerateError(f"setting up the WAN in {ns} failed: {res.stderr.strip()}")


def _sysctl(ns: str, settings: dict[str, str]) -> None:
    namespace.run_in(ns, ["sysctl", "-q", "-w", *[f"{k}={v}" for k, v in settings.items()]])


def delayline_config(net: Network, router: str, stats: Path, seed: int) -> dict[str, Any]:
    """The delay line's JSON configuration for ``net``."""
    inside = {a: {"up": h["up"], "down": h["down"]} for a, h in net.hosts.items() if h["role"] == "inside"}
    outside = {a: {"up": h["up"], "down": h["down"]} for a, h in net.hosts.items() if h["role"] == "outside"}
    to_router = sorted({h["public"] for h in net.hosts.values() if h["role"] == "inside"})
    return {"router_netns": f"/run/netns/{router}", "host_dev": HOST_DEV, "lan_dev": LAN_DEV, "up_dev": UP_DEV,
            "up_mac": UP_MAC, "gw_mac": GW_MAC, "inside": inside, "outside": outside, "to_router": to_router,
            "stats": str(stats), "seed": seed}


def stop(line: "subprocess.Popen[bytes]", workdir: Path) -> dict[str, Any] | None:
    """Stop the delay line (SIGTERM) and return its statistics, or None if it wrote none."""
    namespace.end(line, signal.SIGTERM)
    stats = workdir / "delayline.stats.json"
    return json.loads(stats.read_text()) if stats.exists() else None


def up(net: Network, hosts: str, workdir: Path, env: dict[str, str], rate_mbit: float,
       seed: int) -> "subprocess.Popen[bytes]":
    """Create the hosts and router namespaces, start the delay line, wire routes, NAT and shaping.

    Returns the delay-line process (it lives in ``hosts``, so destroying that namespace ends it).
    """
    if shutil.which("iptables-restore") is None:
        raise GenerateError("WAN paths need iptables for the router's NAT; run 'apt-get install iptables'")
    router = router_ns(hosts)
    for ns in (hosts, router):
        namespace.create_bare(ns)
    cfg = workdir / "delayline.json"
    cfg.write_text(json.dumps(delayline_config(net, router, workdir / "delayline.stats.json", seed)))
    logf = workdir / "delayline.log"
    logf.write_text("")
    proc = namespace.popen_in(hosts, [sys.executable, "-m", "p2pdetect.data.generator.delayline", str(cfg)], logf, env=env)
    deadline = time.time() + 10
    while "ready" not in logf.read_text(errors="replace"):
        if proc.poll() is not None or time.time() > deadline:
            raise GenerateError(f"the delay line did not start: {logf.read_text(errors='replace').strip()[-300:]}")
        time.sleep(0.05)
    _hosts_side(net, hosts, rate_mbit)
    _router_side(net, router)
    return proc


def _hosts_side(net: Network, ns: str, rate_mbit: float) -> None:
    """Local routes for every plan address, and policy routing that sends traffic between them via wan0."""
    _sysctl(ns, {"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0",
                 f"net.ipv4.conf.{HOST_DEV}.rp_filter": "0", f"net.ipv4.conf.{HOST_DEV}.accept_local": "1"})
    nets = (OUTSIDE_NET, PUBLIC_NET, NAT_PUBLIC_NET, NAT_LAN_NET)
    lines = [f"link set {HOST_DEV} mtu 1500 up"]
    lines += [f"route add local {n} dev lo" for n in (OUTSIDE_NET, PUBLIC_NET, NAT_LAN_NET)]
    lines += [f"route add {n} dev {HOST_DEV} table 100" for n in nets]
    for mtu in sorted({h["mtu"] for h in net.hosts.values()} - {1500}):  # a host's own MTU, by source address
        lines += [f"route add {n} dev {HOST_DEV} mtu lock {mtu} table {mtu}" for n in nets]
    lines += [f"rule add pref 100 iif lo from {a} lookup {h['mtu']}" for a, h in net.hosts.items() if h["mtu"] != 1500]
    lines += ["rule add pref 150 iif lo lookup 100", "rule add pref 200 lookup local", "rule del pref 0 lookup local"]
    _batch(ns, lines)
    burst = max(32, int(rate_mbit * 1.25))
    namespace.run_in(ns, ["tc", "qdisc", "add", "dev", HOST_DEV, "root", "tbf", "rate", f"{rate_mbit}mbit",
                          "burst", f"{burst}kb", "latency", "100ms"])


def _router_side(net: Network, ns: str) -> None:
    """Forwarding, routes to the subscribers, SNAT for NAT'd homes, and a router that originates nothing."""
    _sysctl(ns, {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                 "net.ipv4.conf.default.rp_filter": "0", "net.ipv4.conf.all.send_redirects": "0",
                 "net.ipv4.conf.default.send_redirects": "0"})
    _batch(ns, [
        f"link set {UP_DEV} address {UP_MAC}", f"link set {UP_DEV} mtu 1500 up", f"link set {LAN_DEV} mtu 1500 up",
        f"addr add {UPLINK_IP}/24 dev {UP_DEV}",
        f"neigh add {GW_IP} lladdr {GW_MAC} dev {UP_DEV} nud permanent",
        f"route add default via {GW_IP} dev {UP_DEV}",
        f"route add {PUBLIC_NET} dev {LAN_DEV}", f"route add {NAT_LAN_NET} dev {LAN_DEV}",
        f"route add blackhole {NAT_PUBLIC_NET}",  # unsolicited traffic to a NAT'd home goes nowhere
    ])
    namespace.run_in(ns, ["ethtool", "-K", UP_DEV, "tso", "off", "gso", "off", "gro", "off"], check=False)
    rules = ["*filter", ":INPUT DROP", ":FORWARD ACCEPT", ":OUTPUT DROP",
             "-A FORWARD -m conntrack --ctstate INVALID -j DROP", "COMMIT", "*nat"]
    rules += [f"-A POSTROUTING -o {UP_DEV} -s {a}/32 -j SNAT --to-source {h['public']}"
              for a, h in net.hosts.items() if h["nat"]]
    rules.append("COMMIT")
    res = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"], input="\n".join(rules) + "\n",
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise GenerateError(f"cannot set up NAT in {ns}: {res.stderr.strip()}; run 'apt-get install iptables'")
    _sysctl(ns, {"net.netfilter.nf_conntrack_tcp_be_liberal": "1"})
