"""Hard-negative scenarios: ordinary traffic with P2P's endpoint and host shape, labelled ``other``.

Why: the detector weighs endpoint and host behaviour (many distinct peers, high ports on both sides,
TCP and UDP to one peer, small-UDP fan-out, failed connections, upload close to download). WebRTC
calls, games, parallel range downloads, busy resolvers, multicast discovery, VPN tunnels and sync
clients share those shapes; without them in the negatives a model learns "UDP between high ports"
instead of P2P.

Address plan (on top of scenarios.py's): remote parties own blocks of their own, so that a local
client host (127.50.x) may run several apps while each address pair still names one app.
K = 60 WebRTC remote peers and TURN relays, 61 range-download and sync servers, 62 game servers and
lobby peers, 63 resolvers and authoritative servers, 64 NTP servers, 65 discovery devices,
66 VPN gateways (the tunnel's inner addresses never reach the capture), 67 web origins, 68 HTTP/3 servers,
69 game servers a server browser queries (several blocks: up to 250 servers each), 73 application servers
on registered high ports (70-72 are the evasion scenario's), 74 hosts that diagnostics ping and trace.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
from collections.abc import Sequence

from p2pdetect.data.generator.labels import pair_rows
from p2pdetect.data.generator.scenarios import AppSpec, _Addresses, _port, dns, web

#: Scenario names this module builds, in the order ``--scenario all`` runs them.
SCENARIOS: tuple[str, ...] = ("webrtc", "game-udp", "parallel-downloads", "lan-services", "vpn", "server-browser",
                              "game-p2p", "app-services", "net-diagnostics")

#: Worker kinds of these apps: kind -> (module under data.generator, its entry function).
KINDS: dict[str, tuple[str, str]] = {
    "game": ("gameudp", "run_game"), "webrtc": ("webrtc", "run_webrtc"), "ranged": ("ranged", "run_ranged"),
    "resolver": ("lanservices", "run_resolver"), "ntp": ("lanservices", "run_ntp"),
    "discovery": ("lanservices", "run_discovery"), "vpn": ("vpn", "run_vpn"), "openvpn": ("vpn", "run_openvpn"),
    "origins": ("origins", "run_origins"), "h3": ("h3", "run_h3"),
    "server-browser": ("serverbrowser", "run_server_browser"),
    "app-services": ("appservices", "run_app_services"), "netdiag": ("netdiag", "run_netdiag"),
}

#: What each kind needs beyond the base generator: Python modules and (command, Debian package) pairs
#: ("ssh" only for rsync clients).
_NEEDS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "webrtc": (("aiortc",), (("turnserver", "coturn"),)),
    "ranged": ((), (("curl", "curl"), ("lftp", "lftp"))),
    "ssh": ((), (("rsync", "rsync"),)),
    "vpn": (("cryptography",), ()),
    "openvpn": ((), (("openvpn", "openvpn"),)),
    "h3": (("aioquic",), ()),
}

_UDP = (17, 1)  # UDP, and the ICMP port-unreachable a closed peer answers with


def game(rng: random.Random, addr: _Addresses, duration: int, *, players: list[str], lobby: list[str],
         n_remote: int) -> list[AppSpec]:
    """A game server ticking at 20-60 Hz for ``players``, and a lobby mesh of ``lobby`` plus
    ``n_remote`` remote hosts exchanging UDP directly on high ports."""
    apps = []
    if players:
        server, _ = addr.block(62)
        tick = rng.choice([20, 30, 60])
        params = {"kind": "game", "server": {"ip": server, "port": rng.choice([27015, 7777, 3074, _port(rng, False)]),
                                             "tick_hz": tick},
                  "players": [{"ip": ip, "start": round(rng.uniform(0, 0.3 * duration), 2)} for ip in players],
                  "seed": rng.getrandbits(32)}
        apps.append(AppSpec(name="game-udp", label="other", params=params,
                            rows=pair_rows(players, [server], (17, 6, 1), "other", "game-udp")))
    if lobby or n_remote:
        _, host = addr.block(62)
        members = list(lobby) + [host(h) for h in range(2, 2 + n_remote)]
        specs = [{"ip": ip, "port": _port(rng, False), "start": round(rng.uniform(0, 0.2 * duration), 2),
                  "stay": round(rng.uniform(0.5, 1.2) * duration, 2)} for ip in members]
        params = {"kind": "game", "server": None, "lobby": specs, "lobby_hz": rng.choice([15, 20, 30]),
                  "seed": rng.getrandbits(32)}
        apps.append(AppSpec(name="game-udp-lobby", label="other", params=params,
                            rows=pair_rows(members, members, _UDP, "other", "game-udp-lobby")))
    return apps


def consoles(rng: random.Random, addr: _Addresses, duration: int, *, hosts: list[str]) -> AppSpec:
    """Consoles on ``hosts`` playing peer-to-peer matches (data.generator.gameudp): a NAT-type check
    server with two or three ports (one answers), a silent relay, and a pool of 4-20 remote peers on
    high ports, a sixth of which never answer (silent, or a closed port)."""
    nat_ip, _ = addr.block(62)
    relay_ip, _ = addr.block(62)
    _, peer = addr.block(62)
    natcheck = {"ip": nat_ip, "ports": [{"port": _port(rng, False), "answer": i == 0}
                                        for i in range(rng.randint(2, 3))]}
    relay = {"ip": relay_ip, "port": _port(rng, False)}
    pool = [{"ip": peer(h), "port": _port(rng, False), "tick_hz": rng.choice([15, 20, 30, 60]),
             "state": rng.choices(["up", "silent", "closed"], [0.84, 0.08, 0.08])[0]}
            for h in range(2, 2 + rng.randint(4, 20))]
    specs = [{"ip": ip, "start": round(rng.uniform(0, 0.2 * duration), 2), "hz": rng.choice([20, 30, 30, 60])}
             for ip in hosts]
    params = {"kind": "game", "server": None, "consoles": specs, "natcheck": natcheck, "relay": relay,
              "pool": pool, "seed": rng.getrandbits(32)}
    remote = [nat_ip, relay_ip] + [p["ip"] for p in pool]
    return AppSpec(name="game-p2p", label="other", params=params,
                   rows=pair_rows(hosts, remote, _UDP, "other", "game-p2p"))


def webrtc(rng: random.Random, addr: _Addresses, duration: int, *, callers: list[str], n_calls: int,
           relay: bool) -> list[AppSpec]:
    """``n_calls`` WebRTC calls from ``callers`` to remote peers: audio, sometimes video, data channels
    (chat or file transfer); with ``relay``, a TURN server relays some calls."""
    _, remote = addr.block(60)
    turn = None
    if relay:
        turn_ip, _ = addr.block(60)
        turn = {"ip": turn_ip, "port": rng.choice([3478, 3478, 19302, _port(rng, False)]), "user": "caller",
                "password": f"{rng.getrandbits(64):x}"}
    calls = []
    for i in range(n_calls):
        start = rng.uniform(0, 0.5 * duration)
        calls.append({"caller": rng.choice(callers), "callee": remote(2 + rng.randrange(max(2, n_calls))),
                      "start": round(start, 2), "length": round(rng.uniform(0.3, 1.0) * (duration - start), 2),
                      "audio": rng.random() < 0.8, "video": i == 0 or rng.random() < 0.1,
                      "data": rng.choice([None, "chat", "chat", "file"]),
                      "relay": turn is not None and rng.random() < 0.5})
        if not (calls[-1]["audio"] or calls[-1]["video"] or calls[-1]["data"]):
            calls[-1]["data"] = "chat"
    if turn is not None and not any(c["relay"] for c in calls):
        calls[-1]["relay"] = True
    rows = []
    for c in calls:
        rows += pair_rows([c["caller"]], [c["callee"]], _UDP, "other", "webrtc")
        if c["relay"]:
            rows += pair_rows([c["caller"]], [turn["ip"]], (17, 6, 1), "other", "webrtc-turn")
            rows += pair_rows([c["callee"]], [turn["ip"]], _UDP, "other", "webrtc-turn")
    rows = list({(r.src_ip, r.dst_ip, r.protocol, r.app): r for r in rows}.values())
    params = {"kind": "webrtc", "calls": calls, "turn": turn, "seed": rng.getrandbits(32)}
    return [AppSpec(name="webrtc", label="other", params=params, rows=rows)]


def origins(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, clients: list[str],
            n_origins: int) -> AppSpec:
    """Browsing that pulls every page from many HTTPS origins (``n_origins`` servers, Zipf popularity)."""
    _, host = addr.block(67)
    specs = [{"ip": host(h), "port": 443 if rng.random() < 0.95 else 8443,
              "dead": h > n_origins // 2 and rng.random() < 0.15} for h in range(1, 1 + n_origins)]
    params = {"kind": "origins", "origins": specs, "tls": True, "scale": scale, "seed": rng.getrandbits(32),
              "clients": [{"ip": ip, "start": round(rng.uniform(0, 0.2 * duration), 2)} for ip in clients]}
    return AppSpec(name="https-many-origins", label="other", params=params,
                   rows=pair_rows(clients, [o["ip"] for o in specs], (6,), "other", "https-many-origins"))


def _webrtc(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(2, 5))
    apps = webrtc(rng, a, d, callers=hosts, n_calls=rng.randint(3, 8), relay=rng.random() < 0.7)
    apps.append(dns(rng, a, d, clients=hosts, storminess=0.3))
    apps.append(web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["chat"] * len(hosts), app="https-chat"))
    apps.append(origins(rng, a, d, s, clients=hosts[:2], n_origins=rng.randint(15, 40)))
    return apps


def http_app(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, tls: bool, port: int,
             clients: list[str], modes: list[str], app: str) -> AppSpec:
    """A ranged-download and sync server; clients download in parallel ranges ('curl'), with lftp
    ('pget'), or sync small files over long-lived connections ('sync')."""
    server, _ = addr.block(61)
    specs = [{"ip": ip, "mode": m, "start": round(rng.uniform(0, 0.2 * duration), 2)} for ip, m in zip(clients, modes)]
    params = {"kind": "ranged", "server_ip": server, "port": port, "tls": tls, "clients": specs, "scale": scale,
              "seed": rng.getrandbits(32)}
    return AppSpec(name=app, label="other", params=params, rows=pair_rows(sorted(set(clients)), [server], (6,), "other", app))


def ssh_app(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, clients: list[str], mode: str,
            app: str) -> AppSpec:
    """An OpenSSH server (data.generator.ssh) whose clients all run ``mode`` ('rsync' or 'scp')."""
    server, _ = addr.block(40)
    specs = [{"ip": ip, "mode": mode, "start": round(rng.uniform(0, 0.2 * duration), 2)} for ip in clients]
    params = {"kind": "ssh", "server_ip": server, "port": rng.choice([22, 22, 2222]), "clients": specs, "scale": scale,
              "seed": rng.getrandbits(32)}
    return AppSpec(name=app, label="other", params=params, rows=pair_rows(sorted(set(clients)), [server], (6,), "other", app))


def _parallel_downloads(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(3, 6))
    tls = rng.random() < 0.6
    getters = rng.sample(hosts, k=min(len(hosts), rng.randint(2, 3)))
    modes = ["curl", "pget"] + [rng.choice(["curl", "pget"]) for _ in getters[2:]]
    apps = [http_app(rng, a, d, s, tls=tls, port=rng.choice([443, 80, 8080, _port(rng, False)]) if tls else 80,
                     clients=getters, modes=modes, app="https-ranged" if tls else "http-ranged"),
            http_app(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["sync"] * len(hosts), app="cloud-sync"),
            ssh_app(rng, a, d, s, clients=rng.sample(hosts, k=min(len(hosts), 2)), mode="rsync", app="rsync-ssh"),
            ssh_app(rng, a, d, 5 * s, clients=rng.sample(hosts, k=1), mode="scp", app="scp-large"),
            dns(rng, a, d, clients=hosts, storminess=0.3)]
    return apps


_SERVICES = ("_googlecast._tcp.local", "_airplay._tcp.local", "_ipp._tcp.local", "_spotify-connect._tcp.local",
             "_hap._tcp.local", "_raop._tcp.local", "_printer._tcp.local", "_companion-link._tcp.local")


def resolver(rng: random.Random, addr: _Addresses, *, clients: list[str], n_auths: int, hit_rate: float,
             storminess: float) -> AppSpec:
    """A recursive resolver for ``clients`` that walks root, TLD and ``n_auths`` authoritative servers."""
    me, _ = addr.block(63)
    _, up = addr.block(63)
    roots = [up(h) for h in range(2, 2 + rng.randint(2, 4))]
    tlds = [up(h) for h in range(20, 20 + rng.randint(2, 4))]
    auths = [up(h) for h in range(40, 40 + n_auths)]
    params = {"kind": "resolver", "resolver_ip": me, "roots": roots, "tlds": tlds, "auths": auths,
              "clients": [{"ip": ip, "start": round(rng.uniform(0, 3), 2)} for ip in clients], "hit_rate": hit_rate,
              "storminess": storminess, "seed": rng.getrandbits(32)}
    rows = pair_rows(clients, [me], _UDP, "other", "dns-resolver") + pair_rows([me], roots + tlds + auths, _UDP, "other",
                                                                                "dns-upstream")
    return AppSpec(name="dns-resolver", label="other", params=params, rows=rows)


def ntp(rng: random.Random, addr: _Addresses, *, clients: list[str], n_servers: int) -> AppSpec:
    """NTP servers (a pool of ``n_servers``) polled by every client."""
    _, host = addr.block(64)
    servers = [host(h) for h in range(1, 1 + n_servers)]
    params = {"kind": "ntp", "servers": servers, "seed": rng.getrandbits(32),
              "clients": [{"ip": ip, "start": round(rng.uniform(0, 5), 2), "port123": rng.random() < 0.5}
                          for ip in clients]}
    return AppSpec(name="ntp", label="other", params=params, rows=pair_rows(clients, servers, _UDP, "other", "ntp"))


def discovery(rng: random.Random, addr: _Addresses, *, hosts: list[str], n_devices: int) -> AppSpec:
    """mDNS and SSDP among ``hosts`` and ``n_devices`` LAN devices (TVs, speakers, printers)."""
    _, host = addr.block(65)
    devices = [{"ip": host(h), "name": f"dev-{rng.getrandbits(32):08x}", "ssdp": rng.random() < 0.6,
                "services": rng.sample(_SERVICES, k=rng.randint(1, 3))} for h in range(2, 2 + n_devices)]
    everyone = list(hosts) + [d["ip"] for d in devices]
    rows = (pair_rows(everyone, ["224.0.0.251"], (17,), "other", "mdns")
            + pair_rows(everyone, ["239.255.255.250"], (17,), "other", "ssdp")
            + pair_rows([d["ip"] for d in devices], hosts, _UDP, "other", "ssdp"))
    params = {"kind": "discovery", "hosts": hosts, "devices": devices, "seed": rng.getrandbits(32)}
    return AppSpec(name="mdns-ssdp", label="other", params=params, rows=rows)


def _lan_services(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(6, 16))
    return [resolver(rng, a, clients=hosts, n_auths=rng.randint(10, 40), hit_rate=rng.uniform(0.3, 0.7),
                     storminess=rng.choice([0.5, 1.0, 2.0])),
            ntp(rng, a, clients=hosts, n_servers=rng.randint(2, 4)),
            discovery(rng, a, hosts=rng.sample(hosts, k=rng.randint(2, min(6, len(hosts)))), n_devices=rng.randint(3, 8)),
            origins(rng, a, d, s, clients=hosts[:4], n_origins=rng.randint(20, 60))]


def vpn(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, clients: list[str],
        modes: list[str]) -> AppSpec:
    """A WireGuard-like gateway; each client browses or downloads from a server behind it through the tunnel."""
    gw, _ = addr.block(66)
    specs = [{"ip": ip, "port": _port(rng, False), "inner": f"192.0.2.{66 + i}", "mode": m,
              "start": round(rng.uniform(1, 0.2 * duration + 1), 2)} for i, (ip, m) in enumerate(zip(clients, modes))]
    params = {"kind": "vpn", "gateway_ip": gw, "gw_port": rng.choice([51820, 51820, 1194, 4500, 443, _port(rng, False)]),
              "port": 443, "tls": True, "clients": specs, "keepalive": rng.choice([10, 25]), "rekey": 120,
              "scale": scale, "seed": rng.getrandbits(32)}
    return AppSpec(name="vpn-wireguard", label="other", params=params,
                   rows=pair_rows(clients, [gw], _UDP, "other", "vpn-wireguard"))


def openvpn(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, clients: list[str],
            modes: list[str], proto: str) -> AppSpec:
    """OpenVPN tunnels (TLS, point-to-point, one gateway port per client) over ``proto`` ('udp'|'tcp')."""
    gw, _ = addr.block(66)
    first = rng.choice([1194, 443, 1197, _port(rng, False)])
    specs = [{"ip": ip, "port": _port(rng, False), "gw_port": first + i, "inner": f"192.0.2.{130 + i}", "mode": m,
              "start": round(rng.uniform(2, 0.2 * duration + 2), 2)} for i, (ip, m) in enumerate(zip(clients, modes))]
    params = {"kind": "openvpn", "gateway_ip": gw, "proto": proto, "port": 443, "tls": True, "clients": specs,
              "keepalive": rng.choice([10, 20]), "scale": scale, "seed": rng.getrandbits(32)}
    name = f"vpn-openvpn-{proto}"
    return AppSpec(name=name, label="other", params=params, rows=pair_rows(clients, [gw], (6, 17, 1), "other", name))


def _vpn(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(3, 6))
    wg = hosts[: rng.randint(1, 2)]
    ovpn = hosts[len(wg) : len(wg) + rng.randint(1, 2)]
    return [vpn(rng, a, d, s, clients=wg, modes=[rng.choice(["browse", "bulk", "stream"]) for _ in wg]),
            openvpn(rng, a, d, s, clients=ovpn, modes=[rng.choice(["browse", "bulk", "stream"]) for _ in ovpn],
                    proto=rng.choice(["udp", "udp", "tcp"])),
            dns(rng, a, d, clients=hosts, storminess=0.3),
            web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["browse"] * len(hosts), app="https-browse")]


def http3(rng: random.Random, addr: _Addresses, duration: int, scale: float, *, clients: list[str]) -> AppSpec:
    """An HTTP/3 server (UDP 443, sometimes 8443) and browsing clients."""
    server, _ = addr.block(68)
    params = {"kind": "h3", "server_ip": server, "port": rng.choice([443, 443, 443, 8443]), "tls": True, "scale": scale,
              "clients": [{"ip": ip, "start": round(rng.uniform(0, 0.2 * duration), 2)} for ip in clients],
              "seed": rng.getrandbits(32)}
    return AppSpec(name="http3", label="other", params=params,
                   rows=pair_rows(clients, [server], (17, 6, 1), "other", "http3"))


def _game_udp(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(4, 8))
    players = rng.sample(hosts, k=rng.randint(2, len(hosts)))
    lobby = rng.sample(hosts, k=rng.randint(1, 2))
    apps = game(rng, a, d, players=players, lobby=lobby, n_remote=rng.randint(2, 4))
    apps.append(dns(rng, a, d, clients=hosts, storminess=0.3))
    apps.append(http3(rng, a, d, s, clients=hosts[:3]))
    return apps


def _game_p2p(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(3, 6))
    return [consoles(rng, a, d, hosts=hosts[: rng.randint(1, 3)]),
            dns(rng, a, d, clients=hosts, storminess=0.3),
            web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["browse"] * len(hosts), app="https-browse")]


def server_browser(rng: random.Random, addr: _Addresses, duration: int, *, clients: list[str]) -> AppSpec:
    """A server browser on ``clients`` querying 100-300 servers on one port (data.generator.serverbrowser):
    Steam A2S_INFO to 27015 (or 27016, 7777), or EAQ-like 16-byte probes (4-5 per server); a share of the
    servers silent, flaky or closed; each client from a fresh port per server or from one socket."""
    n = rng.randint(100, 300)
    ips: list[str] = []
    while len(ips) < n:
        _, host = addr.block(69)
        ips += [host(h) for h in range(2, 2 + min(250, n - len(ips)))]
    silent = rng.uniform(0.2, 0.5)
    servers = []
    for ip in ips:
        r = rng.random()
        answer = 0.0 if r < silent else None if r < silent + 0.05 else 0.5 if r < silent + 0.15 else 1.0
        servers.append({"ip": ip, "answer": answer})
    proto = rng.choice(["a2s", "a2s", "probe"])
    port = rng.choice([27015, 27015, 27016, 7777]) if proto == "a2s" else rng.choice([6000, 6000, 6000, 9000, _port(rng, False)])
    specs = [{"ip": ip, "start": round(rng.uniform(0, 0.2 * duration), 2), "fresh_port": rng.random() < 0.6,
              "refresh": rng.choice([15, 20, 30]), "parallel": rng.choice([16, 32, 64])} for ip in clients]
    params = {"kind": "server-browser", "proto": proto, "port": port, "servers": servers, "clients": specs,
              "seed": rng.getrandbits(32)}
    return AppSpec(name="server-browser", label="other", params=params,
                   rows=pair_rows(clients, ips, _UDP, "other", "server-browser"))


def _server_browser(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(2, 5))
    return [server_browser(rng, a, d, clients=hosts[: rng.randint(1, 2)]),
            dns(rng, a, d, clients=hosts, storminess=0.3),
            web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["browse"] * len(hosts), app="https-browse")]


def app_services(rng: random.Random, addr: _Addresses, *, clients: list[str]) -> AppSpec:
    """4-9 client-server applications on random high ports (data.generator.appservices): long
    sessions, one connection per message, server push, UDP request/response (a share unanswered);
    each of ``clients`` uses 1-4 of them, every server at least one client."""
    servers = []
    for _ in range(rng.randint(4, 9)):
        ip, _ = addr.block(73)
        style = rng.choice(["session", "session", "transaction", "push", "udp"])
        servers.append({"ip": ip, "port": _port(rng, False), "style": style,
                        "answer": rng.choice([1.0, 1.0, 0.8, 0.5])})
    uses = [sorted(rng.sample(range(len(servers)), k=min(len(servers), rng.randint(1, 4)))) for _ in clients]
    for i in range(len(servers)):
        if not any(i in u for u in uses):
            uses[rng.randrange(len(uses))].append(i)
    specs = [{"ip": ip, "start": round(rng.uniform(0, 5), 2), "uses": u} for ip, u in zip(clients, uses)]
    params = {"kind": "app-services", "servers": servers, "clients": specs, "seed": rng.getrandbits(32)}
    return AppSpec(name="app-services", label="other", params=params,
                   rows=pair_rows(clients, [s["ip"] for s in servers], (6, 17, 1), "other", "app-services"))


def _app_services(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(4, 10))
    return [app_services(rng, a, clients=hosts[: rng.randint(3, len(hosts))]),
            dns(rng, a, d, clients=hosts, storminess=0.3),
            web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["browse"] * len(hosts), app="https-browse")]


def netdiag(rng: random.Random, addr: _Addresses, duration: int, *, clients: list[str]) -> AppSpec:
    """Pings, traceroutes and a gone resolver from ``clients`` (data.generator.netdiag): ordinary ICMP."""
    _, host = addr.block(74)
    targets = [host(h) for h in range(2, 2 + rng.randint(10, 60))]
    dead = host(250)   # a resolver address where nothing listens
    specs, rows = [], []
    for ip in clients:
        mode = rng.choice(["ping", "ping", "trace", "dead-dns"])
        if mode == "ping":
            monitor = rng.random() < 0.5   # a monitor pings its many hosts every few seconds, a user a handful at 1 s
            spec = {"count": rng.randint(5, 30) if monitor else rng.randint(3, 10),
                    "interval": rng.uniform(2, 10) if monitor else 1.0,
                    "targets": rng.sample(targets, k=rng.randint(5, len(targets)) if monitor else rng.randint(1, 4))}
            rows += pair_rows([ip], spec["targets"], (1,), "other", "ping")
        elif mode == "trace":
            spec = {"count": rng.randint(1, 3), "interval": rng.uniform(1, 8),
                    "targets": rng.sample(targets, k=rng.randint(1, 5))}
            rows += pair_rows([ip], spec["targets"], _UDP, "other", "traceroute")
        else:
            spec = {"count": rng.randint(2, 5), "interval": rng.uniform(3, 10), "targets": [dead]}
            rows += pair_rows([ip], [dead], _UDP, "other", "dns-dead")
        specs.append({"ip": ip, "mode": mode, "start": round(rng.uniform(0, 0.5 * duration), 2), **spec})
    params = {"kind": "netdiag", "clients": specs, "seed": rng.getrandbits(32)}
    return AppSpec(name="net-diagnostics", label="other", params=params, rows=rows)


def _net_diagnostics(rng: random.Random, a: _Addresses, d: int, s: float) -> list[AppSpec]:
    hosts = a.hosts(rng.randint(4, 10))
    return [netdiag(rng, a, d, clients=hosts),
            dns(rng, a, d, clients=hosts, storminess=0.3),
            web(rng, a, d, s, tls=True, port=443, clients=hosts, modes=["browse"] * len(hosts), app="https-browse")]


_BUILDERS = {"webrtc": _webrtc, "game-udp": _game_udp, "parallel-downloads": _parallel_downloads,
             "lan-services": _lan_services, "vpn": _vpn, "server-browser": _server_browser,
             "game-p2p": _game_p2p, "app-services": _app_services, "net-diagnostics": _net_diagnostics}


def missing(apps: Sequence[AppSpec]) -> str | None:
    """What to install before ``apps`` can run, as an instruction, or None."""
    kinds = {a.params["kind"] for a in apps
             if a.params["kind"] != "ssh" or any(c.get("mode") == "rsync" for c in a.params["clients"])}
    mods = sorted({m for k in kinds for m in _NEEDS.get(k, ((), ()))[0] if importlib.util.find_spec(m) is None})
    pkgs = sorted({p for k in kinds for c, p in _NEEDS.get(k, ((), ()))[1] if shutil.which(c) is None})
    steps = ([f"'pip install {' '.join(mods)}'"] if mods else []) + ([f"'apt-get install {' '.join(pkgs)}'"] if pkgs else [])
    return f"run {' and '.join(steps)} first" if steps else None


def build(scenario: str, rng: random.Random, addr: _Addresses, duration: int, scale: float) -> list[AppSpec]:
    """The apps of hard-negative ``scenario`` (one of :data:`SCENARIOS`)."""
    return _BUILDERS[scenario](rng, addr, duration, scale)


