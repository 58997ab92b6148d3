"""Feature values on hand-checkable flows, host context, and the feature/identity boundary."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from craft import Pkt, tcp_flow, write_pcap
from p2pdetect.features import ExtractConfig, FlowFeaturizer, HostContext, feature_columns, port_feature_columns
from p2pdetect.features.derived import splt_entropy
from p2pdetect.features.extract import extract_capture, meter_rows
from p2pdetect.features.meter import flow_rows, make_streamer
from p2pdetect.features.schema import IDENTITY_COLUMNS
from p2pdetect.errors import BadConfigError


def _h(counts: list[int]) -> float:
    n = sum(counts)
    return -sum(c / n * math.log2(c / n) for c in counts)


@pytest.fixture(scope="module")
def one_flow(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("f") / "one.pcap"
    # handshake (3 x 0 bytes), then 100 up, 300 down, 300 down, 50 up
    write_pcap(path, tcp_flow(1000.0, "127.0.0.1", 40000, "127.0.0.2", 443, [100, -300, -300, 50]))
    table = extract_capture(path)
    assert table.num_rows == 1
    return {k: v[0] for k, v in table.to_pydict().items()}


def test_counters_and_ratios(one_flow):
    f = one_flow
    assert (f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["protocol"]) == \
        ("127.0.0.1", 40000, "127.0.0.2", 443, 6)
    # accounting mode 3: transport payload bytes
    assert f["src2dst_bytes"] == 150 and f["dst2src_bytes"] == 600
    assert f["src2dst_packets"] == 4 and f["dst2src_packets"] == 3
    assert f["bytes_ratio"] == pytest.approx(150 / 600)
    assert f["packets_ratio"] == pytest.approx(4 / 3)
    assert f["bidirectional_duration_ms"] == 60


def test_first_packets_entropy_and_handshake(one_flow):
    f = one_flow
    assert [f[f"splt_ps_{i}"] for i in range(8)] == [0, 0, 0, 100, 300, 300, 50, -1]
    assert [f[f"splt_dir_{i}"] for i in range(8)] == [0, 1, 0, 0, 1, 1, 0, -1]
    assert f["splt_packets"] == 7
    assert f["splt_ps_entropy"] == pytest.approx(_h([3, 1, 2, 1]))
    assert f["splt_dir_changes"] == 4
    assert f["splt_up_share"] == pytest.approx(4 / 7)
    assert (f["hs_first_payload_index"], f["hs_first_payload_size"], f["hs_first_payload_dir"]) == (3, 100, 0)
    assert (f["hs_second_payload_size"], f["hs_second_payload_dir"]) == (300, 1)
    assert f["dst_port_wellknown"] == 1 and f["both_ports_ephemeral"] == 0


def test_entropy_edge_cases():
    ps = np.array([[-1, -1, -1], [5, 5, 5], [1, 2, -1], [1, 2, 3]])
    np.testing.assert_allclose(splt_entropy(ps), [0.0, 0.0, 1.0, math.log2(3)])
    big = np.tile(ps, (7000, 1))  # crosses the chunk size
    np.testing.assert_allclose(splt_entropy(big, chunk=1000), np.tile(splt_entropy(ps), 7000))


def _cols(rows: list[tuple]) -> dict[str, np.ndarray]:
    sip, sport, dip, dport, proto, end = zip(*rows)
    return {"src_ip": np.array(sip, dtype=object), "src_port": np.array(sport),
            "dst_ip": np.array(dip, dtype=object), "dst_port": np.array(dport),
            "protocol": np.array(proto), "bidirectional_last_seen_ms": np.array(end),
            # every flow an answered exchange of 10 packets, 50 bytes each way
            "bidirectional_packets": np.full(len(rows), 10), "dst2src_packets": np.full(len(rows), 5),
            "bidirectional_bytes": np.full(len(rows), 100), "src2dst_bytes": np.full(len(rows), 50),
            "dst2src_bytes": np.full(len(rows), 50)}


PEER, WEB = "127.0.0.10", "127.0.0.20"
FLOWS = [
    # three peers contact PEER:6881 over TCP, each from its own port
    ("127.0.1.1", 50001, PEER, 6881, 6, 1000),
    ("127.0.1.2", 50002, PEER, 6881, 6, 2000),
    ("127.0.1.3", 50003, PEER, 6881, 6, 3000),
    # one client contacts WEB:443 from three ports
    ("127.0.2.1", 40001, WEB, 443, 6, 4000),
    ("127.0.2.1", 40002, WEB, 443, 6, 5000),
    ("127.0.2.1", 40003, WEB, 443, 6, 6000),
    # PEER:6881 over UDP (uTP/DHT on the same port), from a host it already spoke TCP with
    ("127.0.1.1", 50001, PEER, 6881, 17, 7000),
    # a fourth TCP peer
    ("127.0.1.4", 50004, PEER, 6881, 6, 8000),
    # a fourth web connection
    ("127.0.2.1", 40004, WEB, 443, 6, 9000),
]


def test_host_context_counts_by_hand():
    out = HostContext(window_s=300).transform(_cols(FLOWS))
    # flow 0 sees nothing before it
    assert out["dst_ep_remote_ips"][0] == 0 and np.isnan(out["dst_ep_ip_port_ratio"][0])
    # flow 2: PEER:6881/tcp has seen 2 remote ips on 2 remote ports
    assert (out["dst_ep_remote_ips"][2], out["dst_ep_remote_ports"][2]) == (2, 2)
    assert out["dst_ep_ip_port_ratio"][2] == 1.0
    # flow 5: WEB:443/tcp has seen 1 ip on 2 ports; the client host has 1 peer
    assert (out["dst_ep_remote_ips"][5], out["dst_ep_remote_ports"][5]) == (1, 2)
    assert out["dst_ep_ip_port_ratio"][5] == 0.5
    assert out["src_host_fanout"][5] == 1
    # flow 6 (UDP): port 6881 was used on TCP by PEER, and 127.0.1.1 already used 50001/tcp
    assert out["dst_tcp_udp_same_port"][6] == 1 and out["src_tcp_udp_same_port"][6] == 1
    assert out["pair_tcp_and_udp"][6] == 1
    assert out["dst_ep_remote_ips"][6] == 0  # the UDP endpoint is new
    # flow 7: PEER:6881/tcp has 3 ips on 3 ports; PEER's fan-out is 3 hosts
    assert (out["dst_ep_remote_ips"][7], out["dst_ep_remote_ports"][7]) == (3, 3)
    assert out["dst_host_fanout"][7] == 3
    assert out["dst_tcp_udp_same_port"][7] == 1  # the UDP flow on 6881 came before
    assert out["pair_tcp_and_udp"][7] == 0
    # flow 8: WEB:443 has 1 ip on 3 ports
    assert (out["dst_ep_remote_ips"][8], out["dst_ep_remote_ports"][8]) == (1, 3)
    assert out["dst_tcp_udp_same_port"][8] == 0


def test_a_broadcast_or_multicast_address_is_not_a_host():
    """Devices announcing themselves to the LAN's broadcast address (MikroTik, Tuya discovery) on high
    ports: counted as a host, 255.255.255.255 trades with every one of them, between high ports."""
    from p2pdetect.features.host_context import NO_HISTORY, group_address

    rows = [(f"192.168.1.{i}", 49154, "255.255.255.255", 6667, 17, 1000 * i) for i in range(1, 6)]
    rows += [(f"192.168.1.{i}", 6771, "239.192.152.143", 6771, 17, 6000 + i) for i in range(1, 3)]
    rows.append(("192.168.1.1", 49154, "192.168.1.9", 51413, 17, 9000))
    out = HostContext().transform(_cols(rows))
    for name, value in NO_HISTORY.items():
        if name.startswith("dst_"):   # the group's side reads no history, however many devices spoke to it
            np.testing.assert_array_equal(out[name][:7], [value] * 7, err_msg=name)
    # and the group is no peer of the devices: their first unicast peer is their first peer
    assert out["src_host_fanout"][4] == 0 and out["src_host_high_port_peers"][7] == 0
    assert out["src_host_flows"][7] == 0
    assert [group_address(a) for a in ("255.255.255.255", "239.192.152.143", "ff02::1", "192.168.1.255",
                                       "10.0.0.1", "2001:db8::1", "not an ip")] == [
        True, True, True, False, False, False, False]


def test_no_history_is_what_a_first_flow_gets():
    from p2pdetect.features.host_context import CONTEXT_COLUMNS, NO_HISTORY

    out = HostContext().transform(_cols(FLOWS[:1]))
    assert sorted(NO_HISTORY) == sorted(CONTEXT_COLUMNS)
    for name, value in NO_HISTORY.items():
        np.testing.assert_array_equal(out[name], [value], err_msg=name)


def test_host_context_window_forgets_old_flows():
    out = HostContext(window_s=2.5).transform(_cols(FLOWS))
    # flow 2 at t=3000 ms sees flows ending at >= 500 ms: both earlier peers
    assert out["dst_ep_remote_ips"][2] == 2
    # flow 7 at t=8000 ms sees flows ending at >= 5500 ms: only the UDP one, not the TCP peers
    assert out["dst_ep_remote_ips"][7] == 0 and out["dst_host_fanout"][7] == 1


def test_host_context_is_causal():
    """A flow's context does not change when the flows after it are removed."""
    full = HostContext().transform(_cols(FLOWS))
    for k in range(1, len(FLOWS)):
        part = HostContext().transform(_cols(FLOWS[:k]))
        for name, col in part.items():
            np.testing.assert_array_equal(col, full[name][:k], err_msg=name)


def test_host_context_batches_equal_one_pass():
    rng = np.random.default_rng(0)
    rows = [(f"127.0.{rng.integers(4)}.{rng.integers(6)}", int(rng.choice([80, 6881, 50000 + i % 7])),
             f"127.1.{rng.integers(3)}.{rng.integers(5)}", int(rng.choice([443, 6881, 40000 + i % 5])),
             int(rng.choice([6, 17])), 1000 * i + int(rng.integers(-500, 500)))
            for i in range(600)]
    whole = HostContext(window_s=30).transform(_cols(rows))
    ctx = HostContext(window_s=30)
    pieces = [ctx.transform(_cols(rows[i:i + 37])) for i in range(0, len(rows), 37)]
    for name, col in whole.items():
        np.testing.assert_array_equal(np.concatenate([p[name] for p in pieces]), col, err_msg=name)


def _mixed_capture(path):
    pk = []
    for i in range(40):
        pk += tcp_flow(100.0 + i * 0.5, f"127.0.3.{i % 9 + 1}", 30000 + i, "127.0.0.10", 6881,
                       [68, -68, 16384, -16384, 16384][: 1 + i % 5])
        pk += tcp_flow(100.2 + i * 0.5, "127.0.4.1", 41000 + i, "127.0.0.20", 443, [517, -1448, -1448, 80])
        pk.append(Pkt(100.3 + i * 0.5, "127.0.5.1", 5353, "127.0.0.53", 53, proto=17, payload=40))
        pk.append(Pkt(100.31 + i * 0.5, "127.0.0.53", 53, "127.0.5.1", 5353, proto=17, payload=90))
    return write_pcap(path, pk)


def test_batch_and_streaming_featurisation_identical(tmp_path):
    """Invariant 1: extract (whole capture) and micro-batches of NFlow objects give equal rows."""
    cap = _mixed_capture(tmp_path / "mixed.pcap")
    config = ExtractConfig(idle_timeout=1)
    batch = extract_capture(cap, config)
    fz = FlowFeaturizer(config, capture=str(cap))
    flows = meter_rows(cap, config)
    pieces = [pa.table({k: pa.array(v.tolist()) for k, v in fz.transform_rows(flows[i:i + 7]).items()})
              for i in range(0, len(flows), 7)]
    stream = pa.concat_tables(pieces)
    assert stream.num_rows == batch.num_rows > 80
    for name in batch.column_names:
        a, b = batch.column(name).to_pylist(), stream.column(name).to_pylist()
        assert a == b or np.allclose(np.array(a, float), np.array(b, float), equal_nan=True), name


def test_model_features_exclude_identity():
    for port_features in (True, False):
        cols = feature_columns(32, port_features=port_features)
        assert not set(cols) & set(IDENTITY_COLUMNS)
        assert not any(c.endswith("_ip") or c in ("src_port", "dst_port") for c in cols)
        assert len(cols) == len(set(cols))
    assert set(port_feature_columns()) <= set(feature_columns(32))
    assert not set(port_feature_columns()) & set(feature_columns(32, port_features=False))
    assert "application_name" not in feature_columns(32)


def test_feature_columns_are_numeric(tmp_path):
    table = extract_capture(_mixed_capture(tmp_path / "m.pcap"))
    for c in feature_columns(32):
        assert pa.types.is_integer(table.schema.field(c).type) or pa.types.is_floating(
            table.schema.field(c).type), c


def test_flow_rows_helper_matches_fields(tmp_path):
    cap = _mixed_capture(tmp_path / "m.pcap")
    rows = flow_rows(make_streamer(str(cap), ExtractConfig()))
    assert rows and all(isinstance(r, tuple) for r in rows)


@pytest.mark.parametrize("kwargs, message", [
    ({"splt_n": 0}, r"The 'splt_n' parameter of ExtractConfig must be an int in \[1, 255\]. Got 0 instead."),
    ({"idle_timeout": -5}, r"The 'idle_timeout' parameter of ExtractConfig must be an int >= 1. Got -5"),
    ({"host_window_s": "x"}, r"'host_window_s' parameter of ExtractConfig must be a number > 0"),
    ({"peers_in_progress": 1, "snapshot_packets": 32}, r"'peers_in_progress' parameter of ExtractConfig must be a bool"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(BadConfigError, match=message):
        ExtractConfig(**kwargs)


def test_same_features_knows_when_snapshots_change_final_rows():
    assert ExtractConfig(snapshot_packets=32).same_features(ExtractConfig())
    on = ExtractConfig(snapshot_packets=32, peers_in_progress=True)
    assert on.same_features(ExtractConfig(snapshot_packets=32, peers_in_progress=True))
    assert not on.same_features(ExtractConfig(snapshot_packets=32))
    assert not on.same_features(ExtractConfig(snapshot_packets=16, peers_in_progress=True))


def test_host_context_snapshots_leave_state_untouched():
    """Early snapshots (remember=False) see the state but never change later flows' rows."""
    ctx = HostContext(window_s=2.5)
    snap_first = ctx.transform(_cols(FLOWS[:1]), remember=False)
    assert snap_first["dst_ep_remote_ips"][0] == 0
    head = ctx.transform(_cols(FLOWS[:3]))
    snap = ctx.transform(_cols([("127.0.1.9", 50009, PEER, 6881, 6, 60_000)]), remember=False)
    assert snap["dst_ep_remote_ips"][0] == 3  # sees the three peers, clock not advanced
    tail = ctx.transform(_cols(FLOWS[3:]))
    whole = HostContext(window_s=2.5).transform(_cols(FLOWS))
    for name, col in whole.items():
        np.testing.assert_array_equal(np.concatenate([head[name], tail[name]]), col, err_msg=name)


def test_host_context_mixed_chunks_equal_any_cut():
    """Snapshots and ended flows interleaved (per-row remember): one call equals any cut into
    pieces, so the scorer's rows do not depend on where its micro-batches end."""
    rng = np.random.default_rng(3)
    rows = [(f"127.0.{int(rng.integers(1, 6))}.1", int(rng.integers(40000, 40010)), f"127.1.{int(rng.integers(1, 6))}.1",
             int(rng.choice([443, 6881, 51413])), int(rng.choice([6, 17])), 1000 * i) for i in range(120)]
    cols = _cols(rows)
    ended = rng.random(120) < 0.6
    evidence = ~ended & (rng.random(120) < 0.7)   # the others: early-verdict snapshots only
    whole = HostContext(window_s=30).transform(cols, remember=ended, evidence=evidence)
    ctx = HostContext(window_s=30)
    cuts = [0, 7, 8, 40, 77, 120]
    parts = [ctx.transform({k: v[a:b] for k, v in cols.items()}, remember=ended[a:b], evidence=evidence[a:b])
             for a, b in zip(cuts, cuts[1:])]
    for name, col in whole.items():
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), col, err_msg=name)


def test_sample_mse_flows_unknown_to_ndpi_carry_every_feature(samples):
    """The committed MSE-over-TCP sample (real libtorrent peers, forced RC4): nDPI sees
    `Unknown`, and every model feature is there to tell it apart."""
    from p2pdetect.training.labels import label_table

    cap = next(p for p in samples if p.name == "p2p-tcp-mse.pcap")
    table = label_table(extract_capture(cap), "auto").to_pydict()
    mse = [i for i, (lab, proto, app) in enumerate(zip(table["label"], table["protocol"],
                                                        table["application_name"]))
           if lab == "p2p" and proto == 6 and app == "Unknown"]
    assert len(mse) >= 5
    for i in mse:
        assert table["bidirectional_packets"][i] > 0
        for c in feature_columns(32):
            v = table[c][i]
            assert v is not None, c
    # the MSE handshake: the first payload is a 96-608 byte Diffie-Hellman key (+ padding)
    sizes = [table["hs_first_payload_size"][i] for i in mse if table["hs_first_payload_index"][i] >= 0]
    assert sizes and all(96 <= s <= 608 for s in sizes), sizes


@pytest.mark.parametrize("in_progress", [False, True])
def test_snapshot_extraction_adds_early_rows_and_keeps_final_rows(samples, in_progress):
    """snapshot_packets=k: one early row per flow reaching k packets, seen at exactly k packets;
    the final rows are those of plain extraction, row for row. With peers_in_progress the host
    counts that include TCP connections in progress (from their snapshot on) are the exception:
    never fewer peers, here more."""
    import pyarrow.compute as pc

    cap = next(p for p in samples if p.name == "mixed-home.pcap")
    plain = extract_capture(cap)
    both = extract_capture(cap, ExtractConfig(snapshot_packets=16, peers_in_progress=in_progress))
    final = both.filter(pc.equal(both.column("stage"), "final"))
    early = both.filter(pc.equal(both.column("stage"), "early"))
    assert set(plain.column("stage").to_pylist()) == {"final"}
    assert final.num_rows == plain.num_rows
    counts = {f"{s}_host_{c}" for s in ("src", "dst") for c in ("fanout", "high_port_peers")}
    for name in plain.column_names:
        a, b = plain.column(name).to_pylist(), final.column(name).to_pylist()
        if in_progress and name in counts:
            assert (np.array(b) >= np.array(a)).all(), name
            continue
        assert a == b or np.allclose(np.array(a, float), np.array(b, float), equal_nan=True), name
    if in_progress:
        assert sum((np.array(final.column(n).to_pylist()) > np.array(plain.column(n).to_pylist())).sum()
                   for n in counts) > 0
    long_flows = sum(p >= 16 for p in plain.column("bidirectional_packets").to_pylist())
    assert early.num_rows == long_flows > 0
    assert set(early.column("bidirectional_packets").to_pylist()) == {16}
    assert set(early.column("splt_ps_16").to_pylist()) == {-1}  # nothing after the 16th packet


def test_host_evidence_by_hand():
    """Failed connects, small-UDP fan-out, TCP+UDP peers, high-port peers, up share, lifetime."""
    H = "127.0.0.50"
    rows = [
        (H, 6881, "127.0.3.1", 51000, 17, 1000),   # DHT-like query, answered
        (H, 6881, "127.0.3.2", 52000, 17, 2000),   # another
        (H, 40001, "127.0.3.1", 51000, 6, 3000),   # TCP to a peer already met over UDP
        (H, 40002, "127.0.3.9", 53000, 6, 4000),   # TCP attempt nobody answered
        (H, 40003, "127.0.4.1", 443, 6, 5000),     # web
        (H, 6881, "127.0.3.3", 54000, 17, 6000),   # the flow whose context we read
    ]
    cols = _cols(rows)
    cols["bidirectional_packets"] = np.array([2, 2, 40, 1, 30, 2])
    cols["dst2src_packets"] = np.array([1, 1, 20, 0, 15, 1])
    cols["bidirectional_bytes"] = np.array([180, 180, 9000, 0, 5000, 180])
    cols["src2dst_bytes"] = np.array([80, 80, 8000, 0, 500, 80])
    cols["dst2src_bytes"] = np.array([100, 100, 1000, 0, 4500, 100])
    out = HostContext(window_s=300).transform(cols)
    i = 5
    assert out["src_host_flows"][i] == 5
    assert out["src_host_failed_share"][i] == pytest.approx(1 / 5)
    assert out["src_host_small_udp_peers"][i] == 2
    assert out["src_host_tcp_udp_peers"][i] == 1          # 127.0.3.1 over TCP and UDP
    assert out["src_host_high_port_peers"][i] == 3         # not the web server on 443
    assert out["src_host_up_share"][i] == pytest.approx(8660 / (8660 + 5700))
    assert out["src_ep_flows"][i] == 2 and out["src_ep_failed_share"][i] == 0.0
    assert out["src_ep_lifetime_s"][i] == pytest.approx(5.0)  # 6881/udp first ended at 1 s
    assert out["dst_host_flows"][i] == 0 and np.isnan(out["dst_host_failed_share"][i])
    # the unanswered TCP attempt is a failed flow for its endpoint too
    assert out["dst_ep_flows"][3] == 0
    # once the window forgets the UDP flows, the TCP+UDP peer count falls back to 0
    late = HostContext(window_s=2.5).transform(cols)
    assert late["src_host_tcp_udp_peers"][i] == 0 and late["src_host_small_udp_peers"][i] == 0


def _transfers(down: int = 50) -> tuple[dict, np.ndarray, np.ndarray]:
    """A host trading with three peers between high ports over TCP: the three transfers start
    (evidence snapshots at 1.0-1.2 s) and end together (9.0-9.2 s)."""
    H = "127.0.3.1"
    rows = [(H, 40001 + k, f"127.0.4.{k + 1}", 51413, 6, 1000 + 100 * k) for k in range(3)]
    rows += [(H, 40001 + k, f"127.0.4.{k + 1}", 51413, 6, 9000 + 100 * k) for k in range(3)]
    cols = _cols(rows)
    cols["dst2src_bytes"] = np.array([down] * 3 + [50] * 3)
    ended = np.array([False] * 3 + [True] * 3)
    return cols, ended, ~ended


def test_host_context_counts_connections_in_progress():
    """An answered TCP connection counts as a peer from its evidence snapshot until its final row
    replaces it: a host's transfers that end together see each other."""
    cols, ended, evidence = _transfers()
    out = HostContext().transform(cols, remember=ended, evidence=evidence)
    # the starts see the transfers started before them; each final row sees the other two
    np.testing.assert_array_equal(out["src_host_high_port_peers"], [0, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(out["src_host_fanout"], [0, 1, 2, 2, 2, 2])
    # counted once: the flows, failures and volumes are still those of flows that ended
    np.testing.assert_array_equal(out["src_host_flows"], [0, 0, 0, 0, 1, 2])
    # without the evidence flags (early-verdict snapshots only) nothing enters before the end
    plain = HostContext().transform(cols, remember=ended)
    np.testing.assert_array_equal(plain["src_host_high_port_peers"], [0, 0, 0, 0, 1, 2])
    # an unanswered connection (nothing back) is no peer; nor is a UDP flow in progress
    cols_q, _, _ = _transfers(down=0)
    quiet = HostContext().transform(cols_q, remember=ended, evidence=evidence)
    np.testing.assert_array_equal(quiet["src_host_high_port_peers"], [0, 0, 0, 0, 1, 2])
    cols_u = {**cols, "protocol": np.full(6, 17)}
    udp = HostContext().transform(cols_u, remember=ended, evidence=evidence)
    np.testing.assert_array_equal(udp["src_host_high_port_peers"], [0, 0, 0, 0, 1, 2])


def test_host_context_connections_in_progress_leave_with_the_window():
    """A connection whose evidence snapshot is older than the window stops counting, and its
    final row, when it comes, enters as any ended flow."""
    cols, ended, evidence = _transfers()
    cols["bidirectional_last_seen_ms"] = np.array([1000, 1100, 1200, 9000, 9100, 9200])
    ctx = HostContext(window_s=5)
    out = ctx.transform(cols, remember=ended, evidence=evidence)
    # at 9.0 s the three starts (1.0-1.2 s) are out of the 5 s window
    np.testing.assert_array_equal(out["src_host_high_port_peers"], [0, 1, 2, 0, 1, 2])
    assert ctx.active_events == 3 and not ctx._open


def test_host_context_max_flows_bounds_memory():
    rows = [(f"127.0.{i % 7}.1", 40000 + i, "127.1.0.1", 6881, 6, 1000 + i) for i in range(100)]
    ctx = HostContext(window_s=3600, max_flows=10)
    ctx.transform(_cols(rows))
    assert ctx.active_events == 10


def test_rtt_estimate_from_the_handshake_or_the_first_reply():
    from p2pdetect.features.derived import rtt_estimate_ms

    ps = np.array([[0, 0, 0, 68, 68], [40, 60, 40, -1, -1], [0, 0, 0, 5, -1], [40, 40, -1, -1, -1]])
    dirs = np.array([[0, 1, 0, 0, 1], [0, 1, 0, -1, -1], [0, 0, 0, 1, -1], [0, 0, -1, -1, -1]])
    piat = np.array([[0, 30.0, 25.0, 1, 2], [0, 12.5, 3, -1, -1], [0, 5.0, 5, 9, -1], [0, 7.0, -1, -1, -1]])
    proto = np.array([6, 17, 6, 17])
    rtt = rtt_estimate_ms(ps, dirs, piat, proto)
    # TCP handshake: SYN->SYN/ACK + SYN/ACK->ACK = one round trip; UDP: first request to first reply
    assert rtt[0] == 55.0 and rtt[1] == 12.5
    # a TCP flow without a clean handshake, a UDP flow never answered: unknown
    assert np.isnan(rtt[2]) and np.isnan(rtt[3])
