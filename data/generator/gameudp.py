"""Game-like UDP: a server ticking at 20-60 Hz for several players, a peer-to-peer lobby, and
consoles that play peer-to-peer matches.

Why: real-time games are the ordinary traffic with P2P's endpoint shape: high ports on both sides,
long runs of small UDP datagrams in both directions, and in lobbies (console and fighting games,
voice chat) a few hosts that exchange UDP directly with one another. A detector that flags
"many small UDP packets between high ports" would flag them; they must be in the negatives.

Consoles (as in nDPI's nintendo.pcap) play match after match from one UDP socket: a NAT-type check
against a server's two or three ports (only one answers), a datagram to a relay that stays silent,
then a steady exchange with 1-7 peers for the match; peers that have not answered after 2-5 s (NAT
punching failed: silent, or a closed port) are given up.
Between matches the console may open a fresh socket, and the next match has other peers: over a few
minutes a console meets a dozen peers on high ports, as a small BitTorrent swarm does, but with a
steady symmetric cadence and no bulk transfer.

Datagrams start with a fixed protocol tag and a sequence number, as game protocols do, then
random bytes: snapshots (server to player) are larger than inputs (player to server).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import struct
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

_NOISE = os.urandom(4096)
_TAG = b"\xfe\x47"  # a game's protocol tag; never a uTP (0x?1) or STUN (0x00/0x01) first byte


def _datagram(kind: int, seq: int, size: int) -> bytes:
    head = _TAG + struct.pack("!BI", kind, seq & 0xFFFFFFFF)
    off = seq * 7 % (len(_NOISE) - 1500)
    return head + _NOISE[off : off + max(0, size - len(head))]


def _server(ip: str, port: int, tick_hz: float, stop: threading.Event) -> None:
    """Send a snapshot to every player heard from in the last 2 s, ``tick_hz`` times a second."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.setblocking(False)
    players: dict[tuple[str, int], float] = {}
    seq = 0
    next_tick = time.time()
    rng = random.Random(port)
    while not stop.is_set():
        now = time.time()
        while True:
            try:
                _data, addr = s.recvfrom(2048)
            except BlockingIOError:
                break
            players[addr] = now
        if now >= next_tick:
            seq += 1
            n = len(players)
            for addr, seen in list(players.items()):
                if now - seen > 2.0:  # timed out: the player left
                    del players[addr]
                    continue
                size = int(rng.gauss(80 + 40 * n, 30)) if seq % 30 else rng.randint(600, 1200)  # periodic full state
                try:
                    s.sendto(_datagram(2, seq, max(40, size)), addr)
                except OSError:
                    pass
            next_tick += 1.0 / tick_hz
            if next_tick < now:
                next_tick = now + 1.0 / tick_hz
        time.sleep(max(0.0, min(0.005, next_tick - time.time())))
    s.close()


def _session_server(ip: str, port: int, stop: threading.Event) -> None:
    """The game's TCP side on the same address and port: a login answered with the match setup, then
    heartbeats until the player closes (so players have TCP and UDP to one peer, as with real games)."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port))
    ls.listen(64)
    ls.settimeout(0.3)

    def session(conn: socket.socket) -> None:
        conn.settimeout(None)
        try:
            if conn.recv(2048):
                conn.sendall(_datagram(5, port, random.randint(500, 4000)))
                while data := conn.recv(2048):
                    conn.sendall(_datagram(6, len(data), 24))
        except OSError:
            pass
        finally:
            conn.close()

    while not stop.is_set():
        try:
            conn, _ = ls.accept()
        except TimeoutError:
            continue
        threading.Thread(target=session, args=(conn,), daemon=True).start()
    ls.close()


def _login(ip: str, server: tuple[str, int], rng: random.Random) -> socket.socket | None:
    """Log in over TCP before a match; the connection stays open for heartbeats."""
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        c.bind((ip, 0))
        c.settimeout(5)
        c.connect(server)
        c.sendall(_datagram(5, rng.getrandbits(32), rng.randint(200, 400)))
        c.recv(8192)
        return c
    except OSError:
        c.close()
        return None


def _player(ip: str, server: tuple[str, int], rng: random.Random, until: float, tick_hz: float) -> None:
    """Matches of 10-120 s from a fresh high port each: a TCP login, inputs at ``tick_hz``, a TCP
    heartbeat every 5 s, pauses between matches."""
    while time.time() < until - 2:
        tcp = _login(ip, server, rng)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, rng.randint(20000, 60999)) if rng.random() < 0.5 else (ip, 0))
        s.setblocking(False)
        end = min(until - 1, time.time() + rng.uniform(10, 120))
        seq = 0
        try:
            while time.time() < end:
                seq += 1
                s.sendto(_datagram(1, seq, int(rng.gauss(60, 15)) + 20), server)
                if tcp is not None and seq % int(5 * tick_hz) == 0:
                    tcp.sendall(_datagram(6, seq, 40))
                    tcp.recv(2048)
                try:
                    while s.recv(2048):
                        pass
                except BlockingIOError:
                    pass
                time.sleep(1.0 / tick_hz * rng.uniform(0.8, 1.2))
        except OSError as err:
            log.info("player %s: %s", ip, err)
        finally:
            s.close()
            if tcp is not None:
                tcp.close()
        time.sleep(min(max(0.0, until - time.time()), rng.uniform(2, 15)))


def _lobby_member(me: dict[str, Any], others: list[dict[str, Any]], rng: random.Random, until: float,
                  start: float, tick_hz: float) -> None:
    """Exchange state with every other lobby member directly (a full mesh, as P2P-hosted games do)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((me["ip"], me["port"]))
    s.setblocking(False)
    time.sleep(max(0.0, start - time.time()))
    end = min(until - 1, start + me["stay"])
    seq = 0
    try:
        while time.time() < end:
            seq += 1
            for o in others:
                if rng.random() < 0.97:  # an occasional skipped tick, as under load
                    s.sendto(_datagram(3, seq, int(rng.gauss(90, 25)) + 30), (o["ip"], o["port"]))
            if seq % max(1, int(tick_hz)) == 0:  # a voice or chat burst now and then
                for o in rng.sample(others, k=min(len(others), 1)):
                    s.sendto(_datagram(4, seq, rng.randint(150, 400)), (o["ip"], o["port"]))
            try:
                while s.recv(2048):
                    pass
            except (BlockingIOError, ConnectionRefusedError):
                pass
            time.sleep(1.0 / tick_hz * rng.uniform(0.85, 1.15))
    except OSError as err:
        log.info("lobby member %s: %s", me["ip"], err)
    finally:
        s.close()


def _nat_check(ip: str, port: int, answer: bool, stop: threading.Event) -> None:
    """One port of a NAT-type check server: answers each probe with a short reply (the address it saw),
    or, with ``answer`` false, reads and drops it (a port that only listens for the console's mapping)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(0.3)
    while not stop.is_set():
        try:
            data, addr = s.recvfrom(2048)
        except TimeoutError:
            continue
        if answer:
            s.sendto(_datagram(8, len(data), 16 + len(data) % 24), addr)
    s.close()


def _console(me: dict[str, Any], params: dict[str, Any], rng: random.Random, until: float) -> None:
    """Matches from one UDP socket (sometimes a fresh one per match): a NAT-type check, a datagram to
    the relay, then ``me["hz"]`` updates a second to each of the match's 1-7 peers for 10-60 s."""
    nat, relay, pool = params["natcheck"], params.get("relay"), params["pool"]
    s: socket.socket | None = None
    seq = 0
    try:
        while time.time() < until - 3:
            if s is None or rng.random() < 0.6:
                if s is not None:
                    s.close()
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((me["ip"], rng.randint(1025, 65535) if rng.random() < 0.7 else 0))
                s.setblocking(False)
            for p in nat["ports"]:
                for _ in range(rng.randint(2, 5)):
                    seq += 1
                    s.sendto(_datagram(7, seq, rng.randint(16, 80)), (nat["ip"], p["port"]))
                    time.sleep(rng.uniform(0.005, 0.05))
            if relay and rng.random() < 0.7:
                s.sendto(_datagram(9, seq, rng.randint(200, 700)), (relay["ip"], relay["port"]))
            peers = [(p["ip"], p["port"]) for p in rng.sample(pool, k=min(len(pool), rng.randint(1, 7)))]
            now = time.time()
            end, give_up = min(until - 1, now + rng.uniform(10, 60)), now + rng.uniform(2, 5)
            size = rng.uniform(60, 300)
            heard: set[tuple[str, int]] = set()
            while time.time() < end:
                seq += 1
                for p in peers:
                    if rng.random() < 0.97:
                        s.sendto(_datagram(3, seq, max(30, int(rng.gauss(size, size / 4)))), p)
                try:
                    while True:
                        heard.add(s.recvfrom(2048)[1])
                except (BlockingIOError, ConnectionRefusedError):
                    pass
                if give_up and time.time() > give_up:  # NAT punching failed: stop trying the silent peers
                    peers, give_up = [p for p in peers if p in heard], 0.0
                time.sleep(1.0 / me["hz"] * rng.uniform(0.85, 1.15))
            time.sleep(min(max(0.0, until - time.time()), rng.uniform(2, 15)))  # menus between matches
    except OSError as err:
        log.info("console %s: %s", me["ip"], err)
    finally:
        if s is not None:
            s.close()


def run_game(params: dict[str, Any]) -> None:
    """params: ``server`` ({ip, port, tick_hz}) or None, ``players`` (list of {ip, start}), ``lobby``
    (list of {ip, port, start, stay}), ``lobby_hz``, ``consoles`` (list of {ip, start, hz}) with the
    ``pool`` of their remote peers ({ip, port, tick_hz, state: up, silent or closed}), ``natcheck`` ({ip, ports: [{port,
    answer}]}) and ``relay`` ({ip, port}), ``seed``, ``until``, ``t0``."""
    rng = random.Random(params["seed"])
    until, t0 = params["until"], params["t0"]
    stop = threading.Event()
    threads = []
    srv = params.get("server")
    if srv:
        threads.append(threading.Thread(target=_server, args=(srv["ip"], srv["port"], srv["tick_hz"], stop),
                                        daemon=True))
        threading.Thread(target=_session_server, args=(srv["ip"], srv["port"], stop), daemon=True).start()
    consoles = params.get("consoles", [])
    if consoles:
        services = [(_nat_check, (params["natcheck"]["ip"], p["port"], p["answer"], stop))
                    for p in params["natcheck"]["ports"]]
        if params.get("relay"):
            services.append((_nat_check, (params["relay"]["ip"], params["relay"]["port"], False, stop)))
        for p in params["pool"]:  # a peer that answers, one whose NAT drops the console (silent), or a closed port
            if p["state"] != "closed":
                services.append((_server, (p["ip"], p["port"], p["tick_hz"], stop)) if p["state"] == "up"
                                else (_nat_check, (p["ip"], p["port"], False, stop)))
        for target, args in services:
            threading.Thread(target=target, args=args, daemon=True).start()

    def console(spec: dict[str, Any], seed: int) -> None:
        time.sleep(max(0.0, t0 + spec["start"] - time.time()))
        _console(spec, params, random.Random(seed), until)

    for spec in consoles:
        threads.append(threading.Thread(target=console, args=(spec, rng.getrandbits(32)), daemon=True))

    def player(spec: dict[str, Any], seed: int) -> None:
        time.sleep(max(0.0, t0 + spec["start"] - time.time()))
        _player(spec["ip"], (srv["ip"], srv["port"]), random.Random(seed), until, srv["tick_hz"] * 0.9)

    for spec in params.get("players", []):
        threads.append(threading.Thread(target=player, args=(spec, rng.getrandbits(32)), daemon=True))
    lobby = params.get("lobby", [])
    for me in lobby:
        others = [o for o in lobby if o is not me]
        threads.append(threading.Thread(
            target=_lobby_member, args=(me, others, random.Random(rng.getrandbits(32)), until, t0 + me["start"],
                                        params.get("lobby_hz", 30)), daemon=True))
    for t in threads:
        t.start()
    for t in threads[1 if srv else 0:]:
        t.join(timeout=max(0.0, until - time.time() + 3))
    stop.set()
