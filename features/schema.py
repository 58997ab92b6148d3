"""The flow table's columns: identity, audit, model features (grouped), labels; and its version.

Column names follow nfstream's where a column comes straight from it. Model features are
numeric only; identity columns (addresses, raw ports, times, capture) never feed a model
(DESIGN.md invariant 3). The feature reference in docs/features.md documents every column.
"""

from __future__ import annotations

#: Bump when a column's meaning, unit or the column set changes. Bundles record it.
SCHEMA_VERSION = 9

#: Parquet metadata keys.
META_SCHEMA_VERSION = b"p2pdetect.schema_version"
META_CONFIG = b"p2pdetect.extract_config"

IDENTITY_COLUMNS = [
    "capture",            # source file name (or interface) the flow came from
    "flow_index",         # order in which the meter reported the flow, per capture
    "stage",              # "final": the whole flow; "early": a snapshot at ExtractConfig.snapshot_packets
    "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "ip_version",
    "bidirectional_first_seen_ms", "bidirectional_last_seen_ms",
]

AUDIT_COLUMNS = ["application_name", "application_category_name", "application_is_guessed"]

LABEL_COLUMNS = ["label", "app"]

_DIRS = ["bidirectional", "src2dst", "dst2src"]

#: nfstream volume counters per direction.
COUNTER_FEATURES = [f"{d}_{k}" for d in _DIRS for k in ("duration_ms", "packets", "bytes")]

#: nfstream size and inter-arrival statistics (statistical_analysis=True).
STAT_FEATURES = [
    f"{d}_{s}_{k}"
    for d in _DIRS
    for k in ("ps", "piat_ms")
    for s in ("min", "mean", "stddev", "max")
]

#: nfstream TCP flag counters.
FLAG_FEATURES = [
    f"{d}_{f}_packets" for d in _DIRS
    for f in ("syn", "cwr", "ece", "urg", "ack", "psh", "rst", "fin")
]

#: Derived flow-shape features, vectorised from the columns above and the first-N packets.
DERIVED_FEATURES = [
    "is_snapshot",
    "is_udp",
    "bytes_ratio", "packets_ratio",
    "splt_packets", "splt_ps_entropy", "splt_dir_changes", "splt_up_share",
    "hs_first_payload_index", "hs_first_payload_size", "hs_first_payload_dir",
    "hs_second_payload_size", "hs_second_payload_dir",
    "full_size_share", "ps_mean_over_max",
    "rtt_ms", "piat_mean_over_rtt", "piat_max_over_rtt", "duration_over_rtt",
]

#: Features that measure absolute time: they depend on the network path (its RTT, rate,
#: loss) more than on the application. A model may be trained without them (timing ablation).
TIMING_FEATURES = (
    [f"{d}_duration_ms" for d in _DIRS]
    + [f"{d}_{s}_piat_ms" for d in _DIRS for s in ("min", "mean", "stddev", "max")]
    + ["rtt_ms", "src_ep_lifetime_s", "dst_ep_lifetime_s"]
)

#: Coarse facts derived from port numbers (never the numbers themselves). The port
#: ablation drops exactly these.
PORT_FEATURES = [
    "both_ports_ephemeral", "src_port_wellknown", "dst_port_wellknown",
    "src_tcp_udp_same_port", "dst_tcp_udp_same_port",
    "src_host_high_port_peers", "dst_host_high_port_peers",
]

#: The port facts that say which port a flow uses (below 1024 or not) rather than how its host
#: uses its ports: a peer listening on 443 or 25 looks like a server to them
#: (TrainConfig.port_number_features=False leaves them out; docs/evaluation.md, session 13).
PORT_NUMBER_FEATURES = ["both_ports_ephemeral", "src_port_wellknown", "dst_port_wellknown"]

#: Endpoint and host evidence: how each endpoint (ip, port, proto) and host (ip) of the flow
#: behaved across earlier flows (causal, windowed; features/host_context.py).
HOST_FEATURES = [
    f"{side}_{name}" for side in ("src", "dst") for name in (
        "ep_remote_ips", "ep_remote_ports", "ep_ip_port_ratio", "ep_flows", "ep_failed_share",
        "ep_lifetime_s", "host_fanout", "host_flows", "host_failed_share", "host_small_udp_peers",
        "host_tcp_udp_peers", "host_up_share")
] + ["pair_tcp_and_udp"]

SPLT_KINDS = ("ps", "dir", "piat_ms")


def splt_columns(splt_n: int, kind: str | None = None) -> list[str]:
    """Fixed-width first-N packet columns, e.g. splt_ps_0 .. splt_ps_31."""
    kinds = SPLT_KINDS if kind is None else (kind,)
    return [f"splt_{k}_{i}" for k in kinds for i in range(splt_n)]


def feature_columns(splt_n: int = 32, *, port_features: bool = True,
                    timing_features: bool = True, sequence_features: bool = True,
                    port_number_features: bool = True) -> list[str]:
    """Model input columns, in the order a model sees them (without the port, the timing or
    the packet-sequence group for the ablations, or without the port-number facts)."""
    cols = (COUNTER_FEATURES + STAT_FEATURES + FLAG_FEATURES + splt_columns(splt_n)
            + DERIVED_FEATURES + HOST_FEATURES)
    if port_features:
        cols = cols + port_feature_columns(port_number_features)
    drop = set()
    if not timing_features:
        drop |= set(timing_feature_columns(splt_n))
    if not sequence_features:
        drop |= set(sequence_feature_columns(splt_n))
    return [c for c in cols if c not in drop] if drop else cols


#: The payload sizes of a flow's first two payload packets: one message each (a Kad hello is 35
#: bytes, a BitTorrent handshake 68), so an implementation's message layout too.
HANDSHAKE_SIZE_FEATURES = ["hs_first_payload_size", "hs_second_payload_size"]


def sequence_feature_columns(splt_n: int = 32) -> list[str]:
    """The size and direction of each of the first packets, one column per position, and the
    sizes of the first two payload packets: an implementation's message layout more than P2P
    behaviour (the sequence ablation removes these; summaries of the sequence such as
    splt_ps_entropy, splt_dir_changes and where and which way payload starts stay)."""
    return splt_columns(splt_n, "ps") + splt_columns(splt_n, "dir") + HANDSHAKE_SIZE_FEATURES


def timing_feature_columns(splt_n: int = 32) -> list[str]:
    """Every model feature that measures absolute time (the timing ablation removes these)."""
    return TIMING_FEATURES + splt_columns(splt_n, "piat_ms")


def port_feature_columns(port_numbers: bool = True) -> list[str]:
    """Every model feature derived from port numbers (the port ablation removes these); without
    port_numbers, only how hosts use their ports (PORT_NUMBER_FEATURES left out)."""
    return [c for c in PORT_FEATURES if port_numbers or c not in PORT_NUMBER_FEATURES]


def identity_columns() -> list[str]:
    return list(IDENTITY_COLUMNS)


def feature_group(name: str) -> str:
    """The group a feature column belongs to (for reports and the feature reference)."""
    for group, cols in (("counter", COUNTER_FEATURES), ("stat", STAT_FEATURES),
                        ("flag", FLAG_FEATURES), ("derived", DERIVED_FEATURES),
                        ("port", PORT_FEATURES), ("host", HOST_FEATURES)):
        if name in cols:
            return group
    if name.startswith("splt_"):
        return "splt"
    raise KeyError(name)
