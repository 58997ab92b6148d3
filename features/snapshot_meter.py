"""The scorer's meter process: nfstream's metering loop, plus early snapshots and a live clock.

nfstream reports a flow only when it expires, and its clock is packet time: on an idle
interface nothing ever expires. Its plugins (Python per packet) would halve the packet rate.
So the scorer runs its own copy of nfstream's per-meter loop (`nfstream.meter.meter_workflow`,
nfstream 6.6, one meter) built from nfstream's own pieces (engine, NFlow, NFCache, idle
scan, cleanup), with these changes and nothing else:

* **early snapshots**: when a flow reaches `early_packets` packets (one C counter read per
  packet) or has lasted `early_seconds` (a deadline queue checked on the idle-scan tick),
  the meter copies the flow's current values (`NFlow.sync` + `flow_row`, what expiry does)
  without expiring it. The flow keeps metering, so its final record is identical to
  batch extraction's;
* **evidence snapshots**: with `evidence_packets` (the model's snapshot_packets), every flow
  is also copied when it reaches that many packets, the snapshot the model was trained on and
  the flow table holds: its verdict is host evidence (models/host_evidence.py) whatever the
  early-verdict settings, so final verdicts equal batch scoring's. It goes out as
  EARLY_EVIDENCE when an early verdict falls on the same packet, else as EVIDENCE (not a verdict);
* **live clock**: on an idle interface the pcap read blocks (measured, see _LiveClock);
  a thread wakes it every `tick_s` with pcap_breakloop, and the loop then advances its
  clock to the wall clock and runs the idle scan, so idle flows expire without traffic
  and a stop request is seen within `tick_s`;
* **end order at the last flush**: at the end of a file (or a stop) nfstream expires the
  flows still active in the order they were created, so in a capture shorter than the idle
  timeout a transfer that began first is reported first, before the flows that ended long
  before it. This meter reports them in the order their last packets came, the order idle
  expiry gives on a long capture or a live link: a flow's host context and endpoint evidence
  are then the flows that ended before it, however long the capture;
* **chunked hand-off**: flows cross to the parent as features.meter.flow_row tuples in
  chunks (not pickled NFlow objects one by one); SIGINT/SIGTERM make the meter expire and
  hand over every active flow. The counters ride along, and go out on their own
  ("stats") every `stats_s` when no flow is handed over, so the parent's packet and byte
  counts are current while flows are still active.

Messages on the queue: ("flows", rows, stages, t_first, *counters) with stages a bytes of
EARLY/FINAL/EVIDENCE/EARLY_EVIDENCE per row and t_first the wall time of the chunk's first row; ("stats", *counters);
("error", text); ("done", *counters). counters = (packets metered, packets ignored, packets
dropped by the kernel (live), final flows, active flows, bytes metered (frame lengths)); all
cumulative except active flows.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass

#: Stages of a handed-over row: an early verdict's snapshot, a flow that ended, a snapshot taken
#: only as host evidence (at the model's snapshot_packets, when no early verdict falls there),
#: and an early verdict's snapshot that is also that evidence snapshot.
EARLY, FINAL, EVIDENCE, EARLY_EVIDENCE = 0, 1, 2, 3


def evidence_stages(stages):
    """Which rows of a stage array (numpy uint8) are the model's evidence snapshots."""
    return (stages == EVIDENCE) | (stages == EARLY_EVIDENCE)


def _last_packet_ms(flow) -> int:
    return flow._C.bidirectional_last_seen_ms


@dataclass(frozen=True)
class MeterSpec:
    """Everything the meter process needs (picklable; fork context copies it anyway)."""

    source: str
    live: bool
    streamer_kwargs: dict
    early_packets: int          # 0 disables the packet trigger
    early_seconds: float        # 0 disables the time trigger
    chunk_flows: int
    chunk_wait_s: float
    bpf_filter: str | None = None
    snapshot_length: int = 128
    promiscuous_mode: bool = True
    tick_s: float = 0.5         # live clock period
    drain_s: float = 1.2        # live: keep reading this long after a stop request
    stats_s: float = 0.25       # counters go out at least this often when flows do not
    evidence_packets: int = 0   # a snapshot of every flow at this many packets (0: none)


class _LiveClock:
    """Wakes the meter's blocked pcap read every `period` seconds (libpcap's pcap_breakloop).

    Measured: on an idle Linux interface nfstream's capture_next (pcap_next_ex, TPACKET_V3,
    1000 ms buffer timeout) blocks until a packet arrives, so neither idle expiry nor a stop
    request could run. nfstream's engine library links libpcap 1.10 and exports its
    symbols; pcap_breakloop from another thread wakes the poll (eventfd), and the read
    returns PCAP_ERROR_BREAK (-2), which the loop takes as a clock tick.
    """

    def __init__(self, ffi, capture, period: float) -> None:
        import ctypes

        import _lib_engine

        breakloop = ctypes.CDLL(_lib_engine.__file__).pcap_breakloop
        breakloop.argtypes = [ctypes.c_void_p]
        breakloop.restype = None
        handle = int(ffi.cast("uintptr_t", capture))
        self._done = threading.Event()

        def run() -> None:
            while not self._done.wait(period):
                breakloop(handle)

        self._thread = threading.Thread(target=run, name="p2pdetect-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def meter_process(spec: MeterSpec, channel) -> None:
    """Entry point of the meter process: meter `spec.source`, put chunks on `channel`."""
    stop = [False]

    def _stop(signum, frame):
        stop[0] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    os.dup2(2, 1)  # the engine's C printf warnings must never reach the verdict stream
    try:
        run_meter(spec, channel, stop)
    except Exception as err:  # the parent turns it into one line and stops the run
        channel.put(("error", f"{type(err).__name__}: {err}"))


def run_meter(spec: MeterSpec, channel, stop: list) -> None:
    """Meter spec.source in this process, putting messages on channel (anything with put)."""
    from nfstream.engine import activate_capture, create_engine, setup_capture, setup_dissector
    from nfstream.flow import NFlow
    from nfstream.meter import NFCache, get_flow_key_from_pkt, meter_scan
    from nfstream.utils import NFMode

    from p2pdetect.features.meter import flow_row

    kw = spec.streamer_kwargs
    idle_timeout = int(kw["idle_timeout"]) * 1000
    active_timeout = int(kw["active_timeout"]) * 1000
    accounting_mode = kw["accounting_mode"]
    n_dissections = kw["n_dissections"]
    statistics = kw["statistical_analysis"]
    splt = kw["splt_analysis"]
    decode_tunnels = kw["decode_tunnels"]
    udps, sync, system_visibility_mode = (), False, 0
    mode = NFMode.INTERFACE if spec.live else NFMode.SINGLE_FILE
    early_n = spec.early_packets
    early_ms = int(spec.early_seconds * 1000)
    ev_n = spec.evidence_packets
    packet_trigger = bool(early_n or ev_n)

    ffi, lib = create_engine()
    dissector = setup_dissector(ffi, lib, n_dissections)
    if dissector == ffi.NULL and n_dissections:
        channel.put(("error", "nfstream cannot load its nDPI dissector"))
        return
    error = ffi.new("char[256]")
    # fan-out group: unique per process, so two scorers on one interface both see every packet
    capture = setup_capture(ffi, lib, spec.source, spec.snapshot_length, spec.promiscuous_mode,
                            mode, error, os.getpid() & 0xFFFF, 0)
    if capture is None or not activate_capture(capture, lib, error, spec.bpf_filter, mode):
        channel.put(("error", ffi.string(error).decode("utf-8", errors="ignore") or "cannot open source"))
        return

    clock = _LiveClock(ffi, capture, spec.tick_s) if spec.live else None
    cache = NFCache()
    pending: set = set()        # id() of flows still waiting for their early snapshot
    deadlines: deque = deque()  # (ms when the flow is `early_seconds` old, flow)
    rows: list = []
    stages = bytearray()
    t_first = [0.0]
    # packets processed, ignored, dropped (kernel, live only); final flows; active flows; bytes
    counters = [0, 0, 0, 0, 0, 0]
    last_sent = [time.monotonic()]
    stats = ffi.new("struct nf_stat *")
    capture_open = [True]
    early = bool(early_n or early_ms)

    def emit(flow, stage: int) -> None:
        if not rows:
            t_first[0] = time.time()
        rows.append(flow_row(flow))
        stages.append(stage)
        if len(rows) >= spec.chunk_flows:
            flush()

    def flush() -> None:
        now = time.monotonic()
        if not rows and now - last_sent[0] < spec.stats_s:
            return
        if spec.live and capture_open[0]:
            lib.capture_stats(capture, stats, int(mode))
            counters[2] = stats.dropped
        counters[4] = len(cache)
        last_sent[0] = now
        if rows:
            channel.put(("flows", rows[:], bytes(stages), t_first[0], *counters))
            rows.clear()
            stages.clear()
        else:
            channel.put(("stats", *counters))

    def snapshot(flow, stage: int = EARLY) -> None:
        if stage != EVIDENCE:
            pending.discard(id(flow))
        flow.sync(n_dissections, statistics, splt, ffi, lib, sync)
        if n_dissections and flow.application_is_guessed is None:
            # nfstream copies nDPI's answer only while detection runs or at expiry
            c = flow._C
            flow.application_name = ffi.string(c.application_name).decode("utf-8", errors="ignore")
            flow.application_category_name = ffi.string(c.category_name).decode("utf-8", errors="ignore")
            flow.application_is_guessed = c.guessed
        emit(flow, stage)

    def created(flow) -> None:
        pending.add(id(flow))
        if early_ms:
            deadlines.append((flow._C.bidirectional_first_seen_ms + early_ms, flow))

    class _Final:  # nfstream's idle scan puts expired flows here
        @staticmethod
        def put(flow) -> None:
            pending.discard(id(flow))
            counters[3] += 1
            emit(flow, FINAL)

    final = _Final()

    def check_deadlines(tick: int) -> None:
        while deadlines and deadlines[0][0] <= tick:
            flow = deadlines.popleft()[1]
            if id(flow) in pending:
                snapshot(flow)

    stop_at = [0.0]

    def should_stop() -> bool:
        """Files stop at once; live capture first drains the kernel ring, whose blocks reach
        us only when full or after libpcap's 1000 ms buffer timeout."""
        if not spec.live:
            return True
        if not stop_at[0]:
            stop_at[0] = time.monotonic() + spec.drain_s
        return time.monotonic() >= stop_at[0]

    meter_tick = meter_scan_tick = 0
    last_flush = time.monotonic()
    processed = ignored = nbytes = 0
    capture_next = lib.capture_next
    new = ffi.new
    imode = int(mode)  # (converting the enum per packet cost more than counting the bytes does)
    while True:
        nf_packet = new("struct nf_packet *")  # fresh each time: the engine does not reset every field
        ret = capture_next(capture, nf_packet, decode_tunnels, 1, 0, imode)
        if ret > 0:
            packet_time = nf_packet.time
            if packet_time > meter_tick:
                meter_tick = packet_time
            else:
                nf_packet.time = meter_tick  # force time order, as nfstream does
            if ret == 1:
                processed += 1
                nbytes += nf_packet.raw_size  # the frame's length on the wire, whatever the snap length
                key = get_flow_key_from_pkt(nf_packet)
                flow = cache.get(key)
                if flow is None:
                    flow = cache[key] = NFlow(nf_packet, ffi, lib, udps, sync, accounting_mode,
                                              n_dissections, statistics, splt, dissector,
                                              decode_tunnels, system_visibility_mode)
                    if early:
                        created(flow)
                else:
                    done = flow.update(nf_packet, idle_timeout, active_timeout, ffi, lib, udps, sync,
                                       accounting_mode, n_dissections, statistics, splt, dissector)
                    if done is None:
                        if packet_trigger:
                            k = flow._C.bidirectional_packets
                            if k == early_n and id(flow) in pending:
                                snapshot(flow, EARLY_EVIDENCE if k == ev_n else EARLY)
                            elif k == ev_n:
                                snapshot(flow, EVIDENCE)
                    else:  # idle or active expiry on this packet: report it, start a new flow
                        del cache[key]
                        final.put(done)
                        flow = cache[key] = NFlow(nf_packet, ffi, lib, udps, sync, accounting_mode,
                                                  n_dissections, statistics, splt, dissector,
                                                  decode_tunnels, system_visibility_mode)
                        if early:
                            created(flow)
            if meter_tick - meter_scan_tick >= 10:  # nfstream's idle scan, every 10 ms
                meter_scan(meter_tick, cache, idle_timeout, final, udps, sync, n_dissections,
                           statistics, splt, ffi, lib, dissector)
                meter_scan_tick = meter_tick
                if deadlines:
                    check_deadlines(meter_tick)
                now = time.monotonic()
                if now - last_flush >= spec.chunk_wait_s:
                    counters[0], counters[1], counters[5] = processed, ignored, nbytes
                    flush()
                    last_flush = now
                if stop[0] and should_stop():
                    break
        elif ret == 0:
            ignored += 1
        elif ret == -1 or (ret == -2 and spec.live):  # live: a clock tick (or buffer timeout)
            if stop[0] and should_stop():
                break
            if spec.live:  # advance to wall time, expire idle flows, hand over what waits
                wall = int(time.time() * 1000)
                if wall > meter_tick:
                    meter_tick = wall
                meter_scan(meter_tick, cache, idle_timeout, final, udps, sync, n_dissections,
                           statistics, splt, ffi, lib, dissector)
                meter_scan_tick = meter_tick
                check_deadlines(meter_tick)
                counters[0], counters[1], counters[5] = processed, ignored, nbytes
                flush()
                last_flush = time.monotonic()
        else:  # end of file
            break
    if clock is not None:
        clock.stop()
    if spec.live:
        lib.capture_stats(capture, stats, int(mode))
        counters[2] = stats.dropped
    capture_open[0] = False
    lib.capture_close(capture)
    # Expire every remaining flow (end of file, or asked to stop): nothing is lost. In the order
    # their last packets came (ties: creation order), the order idle expiry reports flows in.
    for flow in sorted(cache.values(), key=_last_packet_ms):
        final.put(flow.expire(udps, sync, n_dissections, statistics, splt, ffi, lib, dissector))
    cache.clear()
    counters[0], counters[1], counters[5] = processed, ignored, nbytes
    flush()
    lib.dissector_cleanup(dissector)
    channel.put(("done", *counters))
