"""Flow sources for the scorer: a capture file or a live interface (through the meter
process in features.snapshot_meter), or a plain list of chunks in tests. Each yields MeterChunks, and
None when nothing more is queued (so a partial micro-batch is scored without waiting).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from p2pdetect.features.reader import PreparedCapture, prepare_capture
from p2pdetect.features.config import ExtractConfig
from p2pdetect.errors import BadCaptureError, P2PDetectError
from p2pdetect.serve.config import ScoreConfig
from p2pdetect.features.snapshot_meter import (EARLY, EARLY_EVIDENCE, EVIDENCE, FINAL, MeterSpec,
                                               meter_process)


__all__ = ["EARLY", "EARLY_EVIDENCE", "EVIDENCE", "FINAL", "MeterChunk", "MeterSource", "MeterStats",
           "SourceError", "capture_source", "check_bpf", "check_interface", "chunks_from_rows", "early_capture_source",
           "interface_source", "live_filter"]

#: Bytes captured of each live packet: headers only (invariant 4, docs/architecture.md).
#: IPv6 packets longer than this are lost live: nfstream meters IPv6 only when captured whole
#: (docs/scoring.md, "Live capture"); a longer snap length would capture payload.
LIVE_SNAPLEN = 128
#: Linux capability number of CAP_NET_RAW (include/uapi/linux/capability.h).
CAP_NET_RAW = 13


class SourceError(P2PDetectError):
    """A live interface cannot be captured (missing, no permission, meter failure)."""


@dataclass
class MeterStats:
    """The meter's running counters (cumulative, except active)."""

    packets: int = 0
    ignored: int = 0
    dropped: int = 0
    flows: int = 0      # final flow records reported so far
    active: int = 0     # flows the meter holds now
    bytes: int = 0      # frame lengths (on the wire) of the packets metered


@dataclass
class MeterChunk:
    """Flows handed over by the meter together: nfstream value rows, in meter order."""

    rows: Sequence[tuple]      # features.meter.flow_row tuples
    stages: bytes              # per row: EARLY, FINAL, EVIDENCE or EARLY_EVIDENCE (features.snapshot_meter)
    t_first: float             # wall time the chunk's first flow was reported (latency origin)
    stats: MeterStats = field(default_factory=MeterStats)


def chunks_from_rows(rows: Iterable[tuple], *, chunk_flows: int = 256, stage: int = FINAL,
                     stages: bytes | None = None, t_first: float = 0.0) -> Iterator[MeterChunk]:
    """Chunks from features.meter.flow_row tuples (e.g. features.extract.meter_rows, or
    meter_stream with its `stages`, one per row): the scorer fed without a meter process."""
    def chunk(batch: list, k: int) -> MeterChunk:
        return MeterChunk(batch, bytes([stage]) * len(batch) if stages is None else stages[k:k + len(batch)],
                          t_first)

    batch: list = []
    k = 0
    for r in rows:
        batch.append(r)
        if len(batch) == chunk_flows:
            yield chunk(batch, k)
            k += len(batch)
            batch = []
    if batch:
        yield chunk(batch, k)


def effective_capabilities() -> int | None:
    """This process's effective capability mask (None when /proc does not say)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def _has_net_raw() -> bool:
    """CAP_NET_RAW itself, not the user id: root in a container started without NET_RAW
    (or under `setpriv --bounding-set -net_raw`) cannot open a packet socket either."""
    caps = effective_capabilities()
    return os.geteuid() == 0 if caps is None else bool(caps >> CAP_NET_RAW & 1)


def check_interface(name: str) -> None:
    """Fail early, in one line, when `name` cannot be captured live."""
    if not name or "/" in name or name in (".", ".."):
        raise SourceError(f"{name!r} is not a network interface name; see 'ip link'")
    if name != ANY and not Path("/sys/class/net", name).exists():
        raise SourceError(f"interface {name!r} does not exist here; pick one from 'ip link'")
    if not _has_net_raw():
        if os.geteuid() == 0:
            raise SourceError(f"live capture on {name!r} needs CAP_NET_RAW, which this root process "
                              f"lacks (a container or sandbox without NET_RAW?); grant it, e.g. "
                              f"docker run --cap-add NET_RAW")
        raise SourceError(f"live capture on {name!r} needs root or CAP_NET_RAW; run as root "
                          f"(sudo $(command -v p2pdetect) score ...: sudo does not search a venv), or grant "
                          f"it: sudo setcap cap_net_raw+ep $(readlink -f $(command -v python3))")


def check_bpf(expression: str, snaplen: int = 128) -> None:
    """Compile a BPF filter up front (libpcap inside nfstream's engine) so a typo is one
    clear line before capture starts, not a failure inside the meter process."""
    import ctypes

    import _lib_engine

    class BpfProgram(ctypes.Structure):
        _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]

    pcap = ctypes.CDLL(_lib_engine.__file__)
    pcap.pcap_open_dead.restype = ctypes.c_void_p
    pcap.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    pcap.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(BpfProgram), ctypes.c_char_p,
                                  ctypes.c_int, ctypes.c_uint32]
    pcap.pcap_geterr.restype = ctypes.c_char_p
    pcap.pcap_geterr.argtypes = [ctypes.c_void_p]
    pcap.pcap_freecode.argtypes = [ctypes.POINTER(BpfProgram)]
    pcap.pcap_close.argtypes = [ctypes.c_void_p]
    handle = pcap.pcap_open_dead(1, snaplen)  # DLT_EN10MB
    prog = BpfProgram()
    try:
        if pcap.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) != 0:
            why = pcap.pcap_geterr(handle).decode(errors="replace")
            raise SourceError(f"--bpf {expression!r} is not a valid BPF filter ({why}); "
                              f"see 'man pcap-filter'")
        pcap.pcap_freecode(ctypes.byref(prog))
    finally:
        pcap.pcap_close(handle)


class MeterSource:
    """Runs features.snapshot_meter in a child process and yields its chunks; stop() ends it cleanly.

    Iterating yields MeterChunk objects, and None whenever the queue is empty (the batcher
    then scores what it holds).
    After stop() (e.g. on SIGTERM) the meter flushes every active flow as final and the
    iteration ends once they are all handed over: nothing is lost.
    """

    def __init__(self, spec: MeterSpec, *, queue_chunks: int = 64, poll_s: float = 0.05,
                 prepared: PreparedCapture | None = None, owns_prepared: bool = False) -> None:
        self.spec = spec
        #: called with the meter's counters as each message arrives (at least every
        #: MeterSpec.stats_s while the meter runs): live metrics without waiting for flows
        self.on_stats: Callable[[MeterStats], None] | None = None
        self.prepared = prepared  # the capture as read
        self._owns_prepared = owns_prepared  # remove its rewritten copy when the meter ends
        self.poll_s = poll_s
        self.stats = MeterStats()
        self._ctx = mp.get_context("fork")
        self._queue = self._ctx.Queue(maxsize=queue_chunks)
        self._proc: mp.Process | None = None
        self._stopping = False
        self._closed = False
        self.started_at: float | None = None  # perf_counter() when metering began

    @property
    def name(self) -> str:
        return str(self.prepared.info.path) if self.prepared is not None else self.spec.source

    def queue_depth(self) -> int:
        try:
            return self._queue.qsize()
        except NotImplementedError:  # macOS
            return 0

    def stop(self) -> None:
        """Ask the meter to flush its active flows and end (idempotent, signal-safe)."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.pid is not None and proc.exitcode is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def adopt(self, prepared: PreparedCapture) -> bool:
        """Take the walk's result for a meter started before the walk (early_capture_source):
        True when the meter already reads what the walk says to read (the capture as it is),
        False when it must read a rewritten copy instead (the caller closes this source)."""
        if self.spec.live or Path(prepared.source) != Path(self.spec.source):
            return False
        self.prepared = prepared
        return True

    def start(self) -> "MeterSource":
        """Start metering now (flows wait in the queue until iterated); idempotent."""
        if self._proc is None:
            self.started_at = time.perf_counter()
            self._proc = self._ctx.Process(target=meter_process, args=(self.spec, self._queue),
                                           name="p2pdetect-meter", daemon=True)
            self._proc.start()
        return self

    def close(self) -> None:
        """Kill and reap the meter process without reading its flows (an abandoned run)."""
        self._finish(drain=False)

    def __iter__(self) -> Iterator[MeterChunk | None]:
        self.start()
        try:
            while True:
                try:
                    msg = self._queue.get_nowait()
                except queue.Empty:
                    yield None  # drained: what waits can be scored now
                    try:
                        msg = self._queue.get(timeout=self.poll_s)
                    except queue.Empty:
                        if not self._proc.is_alive() and self._queue.empty():
                            raise SourceError(f"{self.name}: the meter process ended unexpectedly "
                                              f"(exit status {self._proc.exitcode})") from None
                        continue
                kind = msg[0]
                if kind == "flows":
                    _, rows, stages, t_first, *counters = msg
                    self._update(MeterStats(*counters))
                    yield MeterChunk(rows, stages, t_first, self.stats)
                elif kind == "stats":
                    self._update(MeterStats(*msg[1:]))
                elif kind == "done":
                    self._update(MeterStats(*msg[1:]))
                    return
                elif kind == "error":
                    err = BadCaptureError if not self.spec.live else SourceError
                    raise err(f"{self.name}: the meter cannot read this source ({msg[1]})")
        finally:
            self._finish()

    def _update(self, stats: MeterStats) -> None:
        self.stats = stats
        if self.on_stats is not None:
            self.on_stats(stats)

    def _finish(self, drain: bool = True) -> None:
        """Reap the meter: ask it to stop and drain its queue (drain), or kill it outright.

        Never read the queue after a kill: a message cut in half would block the read.
        """
        proc = self._proc
        if proc is None or self._closed:
            if self._owns_prepared and proc is None:
                self.prepared.close()
            return
        self._closed = True
        if proc.is_alive() and drain:
            self.stop()
            deadline = time.monotonic() + 5
            while proc.is_alive() and time.monotonic() < deadline:
                try:  # keep the queue drained so the meter's feeder thread can finish
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
        if proc.is_alive():
            proc.kill()
        proc.join()
        self._queue.close()
        self._queue.cancel_join_thread()
        if self._owns_prepared:
            self.prepared.close()


def _spec(source: str, live: bool, extract: ExtractConfig, config: ScoreConfig, **live_opts) -> MeterSpec:
    return MeterSpec(source=source, live=live, streamer_kwargs=extract.streamer_kwargs(),
                     early_packets=config.early_packets, early_seconds=float(config.early_seconds),
                     evidence_packets=extract.snapshot_packets, chunk_flows=config.chunk_flows,
                     chunk_wait_s=config.chunk_wait_s if live else config.file_chunk_wait_s, **live_opts)


def capture_source(path: str | os.PathLike | PreparedCapture, extract: ExtractConfig, config: ScoreConfig, *,
                   strict: bool = False) -> MeterSource:
    """A capture file, metered as fast as it can be read: walked and decoded first
    (features.reader; a rewritten copy, when the meter needs one, lives as long as the
    source), unless given already prepared (then the caller closes it)."""
    owns = not isinstance(path, PreparedCapture)
    prepared = prepare_capture(path, strict=strict) if owns else path
    return MeterSource(_spec(prepared.source, False, extract, config), queue_chunks=config.queue_chunks,
                       poll_s=min(0.05, config.max_wait_s / 2), prepared=prepared, owns_prepared=owns)


def early_capture_source(path: str | os.PathLike, extract: ExtractConfig, config: ScoreConfig) -> MeterSource:
    """A capture file metered as it is, before its walk: start it, then walk the capture
    (features.reader.prepare_capture) while it meters, and hand the result to
    MeterSource.adopt. The walk (a Python pass over every record header, ~1.5 s per million
    packets) then overlaps metering instead of preceding it. Nothing is written before the
    walk has passed: the chunks wait in the queue; a capture the walk refuses, or one the
    meter must read through a rewritten copy, has its early meter closed unread."""
    return MeterSource(_spec(str(path), False, extract, config), queue_chunks=config.queue_chunks,
                       poll_s=min(0.05, config.max_wait_s / 2))


#: The pseudo-interface that captures every interface (Linux cooked headers).
ANY = "any"


def live_filter(bpf_filter: str | None, metrics_port: int | None = None) -> str | None:
    """The BPF filter live capture runs: the user's, and never the scorer's own metrics port.

    Prometheus scrapes of the scorer are TCP connections to `metrics_port` on this host; they
    are the scorer's own traffic, not the network's. Dropped in the kernel (BPF) rather than
    after metering: no packet of theirs costs the meter anything, none is counted as metered,
    and no flow of theirs enters the host context or host evidence of this host.
    """
    if not metrics_port:
        return bpf_filter
    own = f"not (tcp port {int(metrics_port)})"
    return own if not bpf_filter else f"({bpf_filter}) and {own}"


def interface_source(name: str, extract: ExtractConfig, config: ScoreConfig, *,
                     bpf_filter: str | None = None, promiscuous_mode: bool = True,
                     metrics_port: int | None = None) -> MeterSource:
    """A live interface, headers only (snapshot length LIVE_SNAPLEN); `any` captures them all.
    With `metrics_port`, TCP on that port (the scorer's own metrics scrapes) is not captured."""
    check_interface(name)
    return MeterSource(_spec(name, True, extract, config, bpf_filter=live_filter(bpf_filter, metrics_port),
                             snapshot_length=LIVE_SNAPLEN, promiscuous_mode=promiscuous_mode),
                       queue_chunks=config.queue_chunks, poll_s=min(0.05, config.max_wait_s / 2))
