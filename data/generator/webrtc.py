"""WebRTC calls and data channels (aiortc): ICE (STUN binding checks), DTLS, SRTP media and SCTP data.

Why: a WebRTC call is the ordinary traffic closest to a P2P transfer at the endpoint level: two hosts
that pick random high UDP ports, talk directly, send about as much as they receive, and keep
consent-freshness STUN going for the whole call. Some calls go through a TURN relay (coturn), as calls
behind symmetric NAT do. Both ends of a call live in this worker process and exchange their SDP in
memory (the signalling server's HTTPS is ordinary traffic the other scenarios already have).

aioice gathers host candidates from the interfaces' addresses and skips only 127.0.0.1; every peer
here has its own 127.x address on ``lo`` instead, so gathering is pointed at that address through a
context variable (each call's offer and answer are gathered in their own context).
Needs the ``aiortc`` package (PyPI); relayed calls need coturn's ``turnserver`` (Debian ``coturn``).
"""

from __future__ import annotations

import asyncio
import contextvars
import fractions
import logging
import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TURNSERVER = "turnserver"
_LOCAL_IP: contextvars.ContextVar[str] = contextvars.ContextVar("webrtc_local_ip")
_BLOB = os.urandom(1 << 16)


def _patch_gathering() -> None:
    """Make aioice offer exactly the address of the peer whose description is being made."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [_LOCAL_IP.get()]


class _BoundLoop(asyncio.SelectorEventLoop):
    """An event loop whose outgoing sockets leave from the current peer's address.

    aioice opens its TURN socket without a local address; on loopback the kernel would then pick
    127.0.0.1, which is no peer's address.
    """

    async def create_datagram_endpoint(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("remote_addr") and not kwargs.get("local_addr"):
            kwargs["local_addr"] = (_LOCAL_IP.get(), 0)
        return await super().create_datagram_endpoint(*args, **kwargs)

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if not kwargs.get("local_addr") and not kwargs.get("sock"):
            kwargs["local_addr"] = (_LOCAL_IP.get(), 0)
        return await super().create_connection(*args, **kwargs)


def _tracks(rng: random.Random) -> tuple[Any, Any]:
    """Track classes for synthetic speech (talk spurts and pauses) and a moving camera picture."""
    import numpy as np
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
    from av import AudioFrame, VideoFrame

    class Speech(AudioStreamTrack):
        """20 ms frames of 48 kHz noise shaped into talk spurts, so Opus packet sizes vary like speech."""

        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(rng.getrandbits(32))
            self.t = 0
            self.talking_until = 0

        async def recv(self) -> Any:
            rate, n = 48000, 960
            if hasattr(self, "_timestamp"):
                self._timestamp += n
                await asyncio.sleep(self._start + self._timestamp / rate - time.time())
            else:
                self._start, self._timestamp = time.time(), 0
            self.t += 1
            if self.t >= self.talking_until:  # next spurt or pause, 0.4-3 s
                self.talking_until = self.t + int(self.rng.uniform(20, 150))
                self.level = float(self.rng.choice([0, 0, 800, 3000, 6000]))
            pcm = (self.rng.standard_normal(n) * self.level).astype(np.int16)
            frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.pts, frame.sample_rate, frame.time_base = self._timestamp, rate, fractions.Fraction(1, rate)
            return frame

    class Camera(VideoStreamTrack):
        """A 320x240 picture that pans, with a noisy moving patch: VP8 frames of realistic variety."""

        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(rng.getrandbits(32))
            y, x = np.mgrid[0:240, 0:320]
            self.base = ((x + y) % 256).astype(np.uint8)
            self.n = 0

        async def recv(self) -> Any:
            pts, time_base = await self.next_timestamp()
            self.n += 1
            img = np.roll(self.base, self.n * 2, axis=1)
            cx = (self.n * 3) % 260
            img[80:140, cx : cx + 60] = self.rng.integers(0, 255, (60, 60), dtype=np.uint8)
            frame = VideoFrame.from_ndarray(np.stack([img, img, img], axis=-1), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    return Speech, Camera


async def _data_traffic(channel: Any, mode: str, rng: random.Random, end: float) -> None:
    """Chat messages at human pace, or a file sent in 16 KB chunks with back-pressure."""
    while time.time() < end and channel.readyState == "open":
        if mode == "file":
            for _ in range(rng.randint(20, 400)):
                if channel.readyState != "open" or time.time() > end:
                    return
                channel.send(_BLOB[: 16384])
                while channel.bufferedAmount > 256 * 1024 and time.time() < end:
                    await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(1, 8))
        else:
            off = rng.randrange(0, 60000)
            channel.send(_BLOB[off : off + int(rng.lognormvariate(4.5, 1.0)) % 2000 + 5].hex())
            await asyncio.sleep(min(max(0.0, end - time.time()), rng.expovariate(1 / 2.5)))


async def _call(spec: dict[str, Any], turn: dict[str, Any] | None, rng: random.Random, end: float) -> None:
    """One call from ``spec['caller']`` to ``spec['callee']`` until ``end``."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
    from aiortc.rtcicetransport import RTCIceTransportPolicy
    from aiortc.contrib.media import MediaBlackhole

    Speech, Camera = _tracks(rng)
    if spec.get("relay") and turn:
        server = RTCIceServer(urls=f"turn:{turn['ip']}:{turn['port']}?transport=udp", username=turn["user"],
                              credential=turn["password"])
        a_cfg = RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    else:
        a_cfg = RTCConfiguration(iceServers=[])  # never the default public STUN server
    a, b = RTCPeerConnection(a_cfg), RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sinks = MediaBlackhole(), MediaBlackhole()
    a.on("track", sinks[0].addTrack)
    b.on("track", sinks[1].addTrack)
    channels: list[Any] = []
    b.on("datachannel", channels.append)
    for pc in (a, b):
        if spec["audio"]:
            pc.addTrack(Speech())
        if spec["video"]:
            pc.addTrack(Camera())
    if spec["data"]:
        channels.append(a.createDataChannel(spec["data"], ordered=True))
    try:
        _LOCAL_IP.set(spec["caller"])
        await a.setLocalDescription(await a.createOffer())
        _LOCAL_IP.set(spec["callee"])
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        _LOCAL_IP.set(spec["caller"])
        await a.setRemoteDescription(b.localDescription)
        for s in sinks:
            await s.start()
        deadline = time.time() + 15
        while a.connectionState != "connected" and time.time() < deadline:
            await asyncio.sleep(0.1)
        if a.connectionState != "connected":
            log.info("call %s -> %s did not connect (%s)", spec["caller"], spec["callee"], a.connectionState)
        await asyncio.sleep(0.5)
        talk = [asyncio.ensure_future(_data_traffic(c, spec["data"], random.Random(rng.getrandbits(32)), end))
                for c in channels]
        await asyncio.sleep(max(0.0, end - time.time()))
        for t in talk:
            t.cancel()
    finally:
        for s in sinks:
            await s.stop()
        await a.close()
        await b.close()


def start_turn(workdir: Path, ip: str, port: int, user: str, password: str) -> subprocess.Popen[bytes]:
    """coturn on ``ip:port`` (UDP and TCP), relaying from ``ip``, long-term credentials ``user``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [TURNSERVER, "-n", "--listening-ip", ip, "--relay-ip", ip, "--listening-port", str(port),
           "--min-port", "49152", "--max-port", "65535", "--lt-cred-mech", "--user", f"{user}:{password}",
           "--realm", "example.test", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780", "--no-stun-backward-compatibility",
           "--allow-loopback-peers", "--pidfile", str(workdir / "turn.pid"), "--log-file", "stdout", "--simple-log"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def turn_available() -> bool:
    """Whether relayed calls can run here (coturn's turnserver is installed)."""
    return shutil.which(TURNSERVER) is not None


async def _main(params: dict[str, Any]) -> None:
    _patch_gathering()
    rng = random.Random(params["seed"])
    t0, until = params["t0"], params["until"]

    async def caller(specs: list[dict[str, Any]], seed: int) -> None:
        r = random.Random(seed)
        for spec in specs:
            await asyncio.sleep(max(0.0, t0 + spec["start"] - time.time()))
            end = min(until - 1, time.time() + spec["length"])
            if end - time.time() < 3:
                return
            try:
                await asyncio.wait_for(_call(spec, params.get("turn"), r, end), spec["length"] + 20)
            except (asyncio.TimeoutError, ConnectionError, OSError) as err:
                log.info("call %s -> %s: %r", spec["caller"], spec["callee"], err)
            except Exception:  # one broken call must not end the others; its traceback goes to the log
                log.exception("call %s -> %s failed", spec["caller"], spec["callee"])

    by_caller: dict[str, list[dict[str, Any]]] = {}
    for spec in params["calls"]:
        by_caller.setdefault(spec["caller"], []).append(spec)
    tasks = [asyncio.ensure_future(caller(sorted(v, key=lambda s: s["start"]), rng.getrandbits(32)))
             for v in by_caller.values()]
    await asyncio.wait(tasks, timeout=max(0.0, until - time.time() + 3))
    for t in tasks:
        t.cancel()


def run_webrtc(params: dict[str, Any]) -> None:
    """params: ``calls`` (list of {caller, callee, start, length, audio, video, data ('chat'|'file'|None),
    relay}), ``turn`` ({ip, port, user, password} or None), ``seed``, ``until``, ``t0``, ``workdir``."""
    turn = params.get("turn")
    server = start_turn(Path(params["workdir"]), turn["ip"], turn["port"], turn["user"], turn["password"]) if turn else None
    try:
        time.sleep(0.5 if server else 0)
        with asyncio.Runner(loop_factory=_BoundLoop) as runner:
            runner.run(_main(params))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=3)
            except subprocess.TimeoutExpired:
                server.kill()
