"""HostEvidence: host verdicts and P2P endpoints from earlier flows' scores, checked by hand."""

from __future__ import annotations

import numpy as np

from p2pdetect.models.host_evidence import HostEvidence, endpoint_name, evidence_scores

H = "192.0.2.10"          # the host running P2P
WEB = "198.51.100.80"     # a web server it also uses


def _cols(rows):
    """rows: (src_ip, src_port, dst_ip, dst_port, proto, t_ms)."""
    sip, sport, dip, dport, proto, t = zip(*rows)
    n = len(rows)
    return {"src_ip": np.array(sip, dtype=object), "src_port": np.array(sport), "dst_ip": np.array(dip, dtype=object),
            "dst_port": np.array(dport), "protocol": np.array(proto), "bidirectional_first_seen_ms": np.array(t) - 10,
            "bidirectional_last_seen_ms": np.array(t), "src2dst_bytes": np.full(n, 100),
            "dst2src_bytes": np.full(n, 50), "bidirectional_packets": np.full(n, 4)}


def _peer(i):
    return f"203.0.113.{i}"


def test_three_peers_make_a_p2p_host_and_two_make_a_p2p_endpoint():
    ev = HostEvidence(0.8, model_id="m")
    # DHT-like exchanges from H:6881/udp; the model is sure about three of them
    rows = [(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
    out = ev.update(_cols(rows), np.array([0.9, 0.95, 0.99]))
    # the first is the host's only P2P exchange yet: uncorroborated, just below the threshold
    np.testing.assert_array_equal(out, [np.nextafter(0.8, 0), 0.95, 0.99])
    recs = ev.pop_records()
    assert [r["ip"] for r in recs] == [H]
    r = recs[0]
    assert r["endpoints"] == [f"{H}:6881/udp"] and r["p2p_peers"] == 3 and r["peers"] == 3 and r["flows"] == 3
    assert r["score"] == 0.9 and r["bytes_up"] == 300 and r["bytes_down"] == 150 and r["model"] == "m"
    # a 2-packet query to a new node, which the model alone would miss, inherits the endpoint's score
    later = ev.update(_cols([(_peer(9), 51000, H, 6881, 17, 9000)]), np.array([0.1]))
    assert later[0] == 0.95  # the 2nd best peer score on the endpoint
    # the host's web flow (service port) is not raised; nor is another host's flow
    other = ev.update(_cols([(H, 50123, WEB, 443, 6, 9100), (_peer(20), 50000, WEB, 443, 6, 9200)]),
                      np.array([0.2, 0.3]))
    np.testing.assert_array_equal(other, [0.2, 0.3])
    # the peers themselves did not become P2P hosts: one flagged peer each
    assert list(ev.p2p_hosts()) == [H]


def test_a_broadcast_address_is_no_p2p_host_and_feeds_no_evidence():
    """Devices announcing themselves to 255.255.255.255 on high ports, all scored P2P by a model: the
    broadcast address is no host, so it never becomes a P2P host and corroborates none of them."""
    ev = HostEvidence(0.8)
    rows = [(f"198.51.100.{i}", 49154, "255.255.255.255", 6667, 17, 1000 * i) for i in range(1, 8)]
    out = ev.update(_cols(rows), np.full(7, 0.95))
    np.testing.assert_array_equal(out, np.full(7, np.nextafter(0.8, 0)))   # never corroborated
    assert list(ev.p2p_hosts()) == [] and ev.pop_records() == []
    # a P2P host's local peer discovery to a multicast group reads the sender's evidence
    ev.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 9000 + i) for i in range(1, 4)]), np.array([0.9] * 3))
    lsd = ev.update(_cols([(H, 6881, "239.192.152.143", 6771, 17, 9500)]), np.array([0.1]))
    assert lsd[0] == 0.9 and list(ev.p2p_hosts()) == [H]


def test_two_peers_are_not_enough():
    ev = HostEvidence(0.8)
    rows = [(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
    ev.update(_cols(rows), np.array([0.9, 0.95, 0.1]))
    assert ev.pop_records() == [] and list(ev.p2p_hosts()) == []
    assert ev.update(_cols([(_peer(9), 51000, H, 6881, 17, 9000)]), np.array([0.1]))[0] == 0.1


def test_failed_connects_of_a_p2p_host_between_high_ports_inherit_its_score():
    ev = HostEvidence(0.8)
    ev.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]), np.array([0.9] * 3))
    syn = _cols([(H, 51515, _peer(50), 6346, 6, 5000), (H, 51516, _peer(51), 3306, 6, 5001),
                 (H, 51517, _peer(52), 40000, 6, 5002), (H, 51518, _peer(53), 40000, 6, 5003),
                 (H, 51519, _peer(54), 40000, 6, 5004)])
    syn["dst2src_bytes"][:2] = 0  # nothing came back: dials to peers that are gone
    syn["bidirectional_packets"][2:] = [90, 33, 2000]
    syn["dst2src_bytes"][3] = 0
    syn["dst2src_bytes"][4] = 2_500_000
    out = ev.update(syn, np.array([0.05] * 5))
    assert out[0] == 0.9          # high port to high port
    assert out[1] == 0.05         # 3306 is a registered service port
    assert out[2] == 0.05         # long, light and answered: the host's chat or game session is its own
    assert out[3] == 0.9          # long, nothing came back: a dial retried, still the host's
    assert out[4] == 0.9          # a transfer of megabytes with a peer seen too little to judge alone
    off = HostEvidence(0.8, high_ports=False)
    off.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]), np.array([0.9] * 3))
    assert off.update(syn, np.array([0.05] * 5))[0] == 0.05


def test_a_transfer_between_high_ports_of_a_host_with_two_p2p_peers_inherits_its_score():
    """A swarm of three seen from one of them: two peers are all the host has, too few for a P2P
    host, yet its megabyte transfers between high ports take its second peer's score
    (bulk_peers=2); its lighter sessions, a host with one such peer, evidence older than idle_s
    and bulk_peers=3 (off) do not."""
    def transfer(peer, t, down=2_500_000):
        c = _cols([(H, 51000 + t % 1000, peer, 40000, 6, t)])
        c["dst2src_bytes"][0] = down
        c["bidirectional_packets"][0] = 2000
        return c
    ev = HostEvidence(0.8)
    ev.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 3)]), np.array([0.9, 0.95]))
    assert list(ev.p2p_hosts()) == []
    assert ev.update(transfer(_peer(1), 5000), np.array([0.3]))[0] == 0.9
    assert ev.update(transfer(_peer(7), 6000, down=200_000), np.array([0.3]))[0] == 0.3   # a session
    assert ev.update(transfer(_peer(7), 900_000 + 3000), np.array([0.3]))[0] == 0.3        # lapsed
    off = HostEvidence(0.8, bulk_peers=3)
    off.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 3)]), np.array([0.9, 0.95]))
    assert off.update(transfer(_peer(1), 5000), np.array([0.3]))[0] == 0.3
    one = HostEvidence(0.8)
    one.update(_cols([(H, 6881, _peer(1), 40001, 17, 1000)]), np.array([0.95]))
    assert one.update(transfer(_peer(2), 5000), np.array([0.3]))[0] == 0.3


def test_a_transfer_between_two_hosts_with_two_p2p_peers_each_inherits_the_lower_score_on_any_port():
    """Two peers of a small swarm, each with flows called P2P with two peers, trade megabytes on 443
    (a peer listening there to pass firewalls): the transfer takes the lower of their second peers'
    scores. A host with two such peers downloading from a server that has none keeps its own score."""
    P = _peer(60)
    ev = HostEvidence(0.8)
    ev.update(_cols([(H, 6881, _peer(1), 40001, 17, 1000), (H, 6881, _peer(2), 40002, 17, 1100),
                     (P, 6881, _peer(3), 40003, 17, 1200), (P, 6881, _peer(4), 40004, 17, 1300)]),
              np.array([0.9, 0.95, 0.85, 0.99]))
    c = _cols([(H, 51000, P, 443, 6, 5000), (H, 51001, WEB, 443, 6, 5100), (H, 51002, P, 443, 6, 5200)])
    c["dst2src_bytes"][:] = [2_500_000, 2_500_000, 20_000]
    c["bidirectional_packets"][:] = 2000
    np.testing.assert_array_equal(ev.update(c, np.array([0.3, 0.3, 0.3])), [0.85, 0.3, 0.3])


def test_a_p2p_hosts_transfer_with_a_peer_on_a_service_port_takes_its_score_when_fairly_p2p():
    """Seen from a P2P host's own link, its transfer with a peer listening on 3478 (whose one flow makes
    it no P2P host) takes the host's score when the model found it fairly P2P (service_floor); a
    download the model finds ordinary, a short exchange, a served endpoint and service_floor=0 do not."""
    def flows(**kw):
        ev = HostEvidence(0.8, **kw)
        ev.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]), np.array([0.9] * 3))
        c = _cols([(H, 51000, _peer(60), 3478, 6, 9000), (H, 51001, WEB, 443, 6, 9100),
                   (H, 51002, _peer(61), 3478, 6, 9200)])
        c["dst2src_bytes"][:] = [2_500_000, 2_500_000, 20_000]
        c["bidirectional_packets"][:] = 2000
        return ev, ev.update(c, np.array([0.75, 0.3, 0.75]))

    ev, out = flows()
    assert list(ev.p2p_hosts()) == [H]
    np.testing.assert_array_equal(out, [0.9, 0.3, 0.75])
    np.testing.assert_array_equal(flows(service_floor=0)[1], [0.75, 0.3, 0.75])
    np.testing.assert_array_equal(flows(service_floor=0.8)[1], [0.75, 0.3, 0.75])
    # nor does a download from a server whose clients return from many ports (a served endpoint)
    ev, _ = flows()
    ev.update(_cols([(f"198.18.0.{1 + k % 4}", 50000 + k, WEB, 443, 6, 10_000 + 100 * k) for k in range(16)]),
              np.zeros(16))
    c = _cols([(H, 51003, WEB, 443, 6, 20_000)])
    c["dst2src_bytes"][0] = 2_500_000
    c["bidirectional_packets"][0] = 2000
    assert ev.update(c, np.array([0.75]))[0] == 0.75


def _mesh_rows(nodes, port, t0=0):
    """Each node calls every other node on `port` (answered TCP), in turn."""
    rows = []
    for a in nodes:
        for b in nodes:
            if a != b:
                rows.append((a, 40000 + len(rows), b, port, 6, t0 + 100 * len(rows)))
    return rows


def test_flows_between_nodes_of_a_mesh_of_listeners_are_p2p_whatever_their_scores():
    """mesh_peers: peers that all listen on 443 and call each other there (BitTorrent over TLS) trade
    with no flow between high ports and scores a web session gets; each calls three listening hosts
    and is called by three that listen too, which no client or server does. Their flows are P2P,
    the early ones once the mesh forms (held), and they are P2P hosts; not the first node's first
    calls, made before any host was seen both to call and to be called (not held). A peer that only
    calls (behind a NAT, a tunnel's exit) is one once it called three mesh nodes, and its flows with
    them are P2P (the calls before, judged again). A server whose clients call it, a host that serves and browses, and
    mesh_peers=0 are not."""
    swarm = [f"203.0.113.{i}" for i in range(1, 5)]
    rows = _mesh_rows(swarm, 443)
    clients = [f"198.18.0.{i}" for i in range(1, 6)]
    # a web server with five clients; one of them (a host that serves too) is called by two others
    rows += [(c, 50000 + k, WEB, 443, 6, 2000 + 10 * k) for k, c in enumerate(clients)]
    rows += [(clients[k], 51000 + k, clients[0], 8080, 6, 2100 + 10 * k) for k in (1, 2)]
    rows += [(clients[0], 52000, WEB, 443, 6, 2200)]
    rows += _mesh_rows(swarm, 443, t0=5000)   # the swarm trades on
    leecher = "198.18.1.1"
    rows += [(leecher, 53000 + k, swarm[k], 8080, 6, 7000 + 100 * k) for k in range(4)]   # no P2P endpoint
    keys = list(range(len(rows)))
    ev = HostEvidence(0.8, hold_s=60)
    out = ev.update(_cols(rows), np.full(len(rows), 0.2), keys=keys)
    got = dict(zip(keys, out))
    for k, score in ev.flush():
        got[k] = score
    n = 12   # the swarm's flows
    flagged = [got[k] >= 0.8 for k in keys]
    assert flagged[:n] == [False] * 3 + [True] * (n - 3) and not any(flagged[n:-n - 4]) and all(flagged[-n - 4:-4])
    assert all(flagged[-4:])   # the leecher's fourth call at once, the three before it when judged again
    np.testing.assert_array_equal(out[-4:] >= 0.8, [False, False, False, True])
    assert sorted(ev.p2p_hosts()) == sorted(swarm)
    off = HostEvidence(0.8, hold_s=60, mesh_peers=0)
    out = off.update(_cols(rows), np.full(len(rows), 0.2))
    assert out.max() < 0.8 and not off.held.any() and not list(off.p2p_hosts())
    # three nodes make no mesh of mesh_peers=3 (each calls two)
    three = HostEvidence(0.8, hold_s=60)
    out = three.update(_cols(_mesh_rows(swarm[:3], 443) + _mesh_rows(swarm[:3], 443, t0=5000)), np.full(12, 0.2))
    assert out.max() < 0.8 and max(s for _, s in three.flush()) < 0.8


def test_flows_on_a_two_way_udp_socket_are_p2p_whatever_their_scores():
    """socket_peers: a peer seen from its own link (a vantage view) uses one UDP socket, here on
    udp/80 to pass firewalls, to call peers on their ports (3478, 22, 993) and to answer peers that
    call it; no client socket is called and no server socket calls clients on their many ports. Its
    flows are P2P once the socket shows both (the earlier ones judged again), as are TCP to its port
    80 (BitTorrent listens for TCP and uTP on one port) and its TCP to a port a peer's uTP came from,
    and the host is a P2P host. Not with socket_peers=0, nor a resolver that answers clients and asks
    authorities (all on 53), nor a QUIC server."""
    calls = [(H, 80, _peer(i), port, 17, 1000 * i) for i, port in ((1, 3478), (2, 22), (3, 993))]
    calls += [(H, 80, _peer(9), 7000, 17, 3500)]   # a query to a peer that left: unanswered
    called = [(_peer(i), 40000 + i, H, 80, 17, 5000 + 1000 * i) for i in (4, 5, 6)]
    later = [(_peer(7), 41000, H, 80, 6, 9000), (H, 80, _peer(8), 6881, 17, 9500),
             (H, 50001, _peer(1), 3478, 6, 9800)]   # TCP to a peer's port its uTP came from
    rows = calls + called + later
    web = (H, 50002, WEB, 443, 6, 9900)
    keys = list(range(len(rows)))
    cols = _cols(rows + [web])
    cols["dst2src_bytes"][3] = 0
    ev = HostEvidence(0.8, hold_s=60, socket_peers=3)
    out = ev.update(cols, np.full(len(rows) + 1, 0.2), keys=keys + [-1])
    got = dict(zip(keys + [-1], out))
    for k, score in ev.flush():
        got[k] = score
    # the socket's first flow is not held (a client's fresh port would wait for nothing), the next six
    # (the unanswered query too) are judged again once the third caller made it two-way, the rest are
    # P2P at once; not the web
    assert [got[k] >= 0.8 for k in keys] == [False] + [True] * 9 and got[-1] < 0.8
    np.testing.assert_array_equal(out[:-1] >= 0.8, [False] * 7 + [True] * 3)
    assert list(ev.p2p_hosts()) == [H]
    off = HostEvidence(0.8, hold_s=60, socket_peers=0)
    out = off.update(cols, np.full(len(rows) + 1, 0.2))
    assert out.max() < 0.8 and max((s for _, s in off.flush()), default=0) < 0.8
    resolver, quic = "192.0.2.53", "192.0.2.43"
    rows = [(f"198.18.0.{i}", 50000 + i, resolver, 53, 17, 100 * i) for i in range(1, 6)]
    rows += [(resolver, 53, f"198.51.100.{i}", 53, 17, 1000 + 100 * i) for i in range(1, 6)]
    rows += [(f"198.18.1.{i}", 51000 + i, quic, 443, 17, 2000 + 100 * i) for i in range(1, 6)]
    for k in (2, 3):
        ev = HostEvidence(0.8, hold_s=60, socket_peers=k)
        out = ev.update(_cols(rows), np.full(len(rows), 0.2))
        assert out.max() < 0.8 and max((s for _, s in ev.flush()), default=0) < 0.8 and not list(ev.p2p_hosts())


def test_a_udp_socket_whose_peers_take_tcp_on_the_same_ports_is_two_way():
    """A peer behind a NAT is never called, but its one UDP socket (uTP) calls peers on the very
    (ip, port)s its host also calls over TCP: endpoints that take TCP and UDP on one port, on as many
    ports as peers. Its TCP transfers between high ports (scored as web downloads) are P2P once that
    shows, the earlier ones judged again. A browser whose QUIC and TCP go to web servers on 443 from
    a socket per server is not."""
    rows = [(H, 50000 + i, _peer(i), 6000 + i, 6, 1000 * i) for i in (1, 2)]      # TCP transfers
    rows += [(H, 64602, _peer(i), 6000 + i, 17, 5000 + 1000 * i) for i in (1, 2)]  # uTP, same endpoints
    rows += [(H, 50003, _peer(1), 6001, 6, 9000)]
    keys = list(range(len(rows)))
    # every flow between high ports of a host without evidence is held (hold_floor=0), the socket's first
    # flow too; with a floor over its score, TCP between high ports is still held for this rule, the
    # socket's first flow (a client's query from a fresh port would wait for nothing) is not
    for floor, first in ((0.0, True), (0.15, False)):
        ev = HostEvidence(0.8, hold_s=60, socket_peers=2, hold_floor=floor)
        out = ev.update(_cols(rows), np.full(len(rows), 0.1), keys=keys)
        got = dict(zip(keys, out))
        for k, score in ev.flush():
            got[k] = score
        assert [got[k] >= 0.8 for k in keys] == [True] * 2 + [first, True, True], floor
        np.testing.assert_array_equal(out >= 0.8, [False] * 4 + [True])
    browser = [(H, 50000 + i, f"198.51.100.{i}", 443, 6, 100 * i) for i in range(1, 6)]
    browser += [(H, 60000 + i, f"198.51.100.{i}", 443, 17, 1000 + 100 * i) for i in range(1, 6)]
    ev = HostEvidence(0.8, hold_s=60, socket_peers=2)
    out = ev.update(_cols(browser), np.full(len(browser), 0.2))
    assert out.max() < 0.8 and max((s for _, s in ev.flush()), default=0) < 0.8


def test_a_udp_socket_that_sends_bulk_to_two_peers_is_two_way():
    """A seeder seen from its own link, behind a NAT: its one uTP socket starts megabyte uploads to
    peers on two ports, scored as the model scores a download, and nothing calls it. Its flows
    are P2P once the second transfer shows (the first judged again). A game's sessions from one socket
    to as many players (small packets, a real-time session) are not."""
    def cols(pkt_bytes):
        rows = [(H, 52535, _peer(i), 47000 + i, 17, 1000 * i) for i in (1, 2, 3)]
        c = _cols(rows)
        c["bidirectional_packets"] = np.full(3, 2000)
        c["src2dst_bytes"] = np.full(3, 2000 * pkt_bytes)
        c["bidirectional_first_seen_ms"] = c["bidirectional_last_seen_ms"] - 100_000
        return c
    for pkt_bytes, p2p in ((1000, True), (150, False)):
        ev = HostEvidence(0.8, hold_s=60, socket_peers=2)
        out = ev.update(cols(pkt_bytes), np.full(3, 0.3), keys=[0, 1, 2])
        got = dict(zip(range(3), out))
        for k, score in ev.flush():
            got[k] = score
        assert [got[k] >= 0.8 for k in range(3)] == [p2p] * 3, pkt_bytes


def test_the_icmp_of_an_exchange_judged_p2p_is_p2p():
    """icmp_pair: a DHT node's query to a node that left draws a port unreachable. The query is P2P
    (the node's endpoint is), so its ICMP is too, whichever of the two ends first (the ICMP then waits
    for it). A router's time exceeded to the same host, with which it trades nothing, is not; nor with
    icmp_pair=False (the gone node is no P2P host, and no ICMP of the host was called P2P before)."""
    dht = [(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
    gone, router = _peer(9), "198.51.100.1"
    query = (H, 6881, gone, 41000, 17, 5000)
    for icmp_t in (5001, 4000):
        rows = dht + [query, (gone, 0, H, 0, 1, icmp_t), (router, 0, H, 0, 1, icmp_t + 1)]
        rows.sort(key=lambda r: r[5])
        scores = np.array([0.9 if r in dht else 0.3 for r in rows])
        for on in (True, False):
            ev = HostEvidence(0.8, hold_s=60, icmp_pair=on)
            out = ev.update(_cols(rows), scores, keys=list(range(len(rows))))
            got = dict(zip(range(len(rows)), out))
            for k, score in ev.flush():
                got[k] = score
            verdict = {rows[k][0]: got[k] >= 0.8 for k in range(len(rows)) if rows[k][4] == 1}
            assert verdict == {gone: on, router: False}, (icmp_t, on)
            assert got[rows.index(query)] >= 0.8
    # the ICMP ends first, the query after it is P2P only once the node's other exchanges end (judged
    # again when released): the ICMP waits twice as long, so it comes after the query's new verdict
    rows = [(gone, 0, H, 0, 1, 1000), query] + [(H, 6881, _peer(i), 40000 + i, 17, 5000 + 1000 * i) for i in (1, 2, 3)]
    ev = HostEvidence(0.8, hold_s=60)
    out = ev.update(_cols(rows), np.array([0.3, 0.3, 0.9, 0.9, 0.9]), keys=list(range(5)))
    got = dict(zip(range(5), out))
    for k, score in ev.flush():
        got[k] = score
    assert got[1] >= 0.8 and got[0] >= 0.8


def test_transfers_still_going_show_a_two_way_socket_before_they_end():
    """early_structure: a peer's socket calls two peers (short exchanges that end at once) and two
    peers call it for transfers that last minutes. Their evidence snapshots show the socket answers
    them, so it is two-way while the exchanges are still held; counted only as the transfers end, the
    socket proves two-way after their hold ran out."""
    calls = [(H, 80, _peer(i), port, 17, 1000 * i) for i, port in ((1, 3478), (2, 22))]
    snaps = [(_peer(i), 40000 + i, H, 80, 17, 1000 * i) for i in (3, 4)]
    ends = [(_peer(i), 40000 + i, H, 80, 17, 200_000 + i) for i in (3, 4)]
    rows = calls + snaps + ends
    early = np.array([False, False, True, True, False, False])
    for on in (True, False):
        ev = HostEvidence(0.8, hold_s=60, early_structure=on)
        out = ev.update(_cols(rows), np.full(6, 0.1), remember=~early, evidence=early, keys=list(range(6)))
        got = dict(zip(range(6), out))
        for k, score in ev.flush():
            got[k] = score
        # the socket's first flow is never held; the second is judged again 60 s after it ended
        assert [got[k] >= 0.8 for k in (0, 1, 4, 5)] == [False, on, True, True], on


def test_a_udp_socket_whose_port_its_peer_dials_over_tcp_is_two_way():
    """echo_socket: a peer behind a NAT, seen from the link of the one host it trades with (a vantage
    view), calls that host from its one UDP socket (uTP), and the host dials its TCP on that very port
    (it learned it from the peer: BitTorrent listens for TCP and uTP on one port). Whichever ends first,
    both flows are P2P (the first judged again) and so are later ones on that socket and port. A client's
    socket is never dialled back; a host that calls one server over UDP and TCP on one port (a game
    server) is not a peer, nor a server that dials its client on another port; nor with echo_socket=False."""
    X = _peer(1)
    utp = (X, 50431, H, 30016, 17, 1000)
    tcp = (H, 34223, X, 50431, 6, 2000)
    later = [(X, 50431, H, 30016, 17, 9000), (H, 34300, X, 50431, 6, 9500)]
    for first, second in ((utp, tcp), (tcp, utp)):
        rows = [first, second] + later
        ev = HostEvidence(0.8, hold_s=60)
        out = ev.update(_cols(rows), np.full(4, 0.3), keys=[0, 1, 2, 3])
        got = dict(zip(range(4), out))
        for k, score in ev.flush():
            got[k] = score
        assert [got[k] >= 0.8 for k in range(4)] == [True] * 4, first
        np.testing.assert_array_equal(out >= 0.8, [False, False, True, True])
        off = HostEvidence(0.8, hold_s=60, echo_socket=False)
        out = off.update(_cols(rows), np.full(4, 0.3))
        assert out.max() < 0.8 and max((s for _, s in off.flush()), default=0) < 0.8
    game = "198.51.100.27"
    rows = [(H, 50431, game, 27015, 17, 1000), (H, 34223, game, 27015, 6, 2000),   # one port, UDP and TCP
            (X, 50431, H, 30016, 17, 3000), (H, 34224, X, 50432, 6, 4000)]         # dialled on another port
    ev = HostEvidence(0.8, hold_s=60)
    out = ev.update(_cols(rows), np.full(4, 0.3))
    assert out.max() < 0.8 and max((s for _, s in ev.flush()), default=0) < 0.8 and not list(ev.p2p_hosts())


def test_a_real_time_session_on_a_p2p_endpoint_is_judged_on_its_own():
    """A call or a game on the UDP socket of a P2P endpoint (many small packets a second) keeps its
    own score; the endpoint's short exchanges, its slow sessions and its transfers inherit the
    endpoint's score, a burst of full packets lighter than bulk_bytes too (realtime_light=True: as a
    real-time session, as before session 35). A session of a dozen small packets 90 ms apart (a
    console's game being set up) is real-time from its 9th packet (realtime_packets=8; until session 36
    from its 33rd, short_packets, and such a session was a short exchange)."""
    def flows(rt, **kw):
        ev = HostEvidence(0.8, realtime_piat_ms=rt, **kw)
        ev.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]), np.array([0.9] * 3))
        c = _cols([(_peer(60 + i), 50000 + i, H, 6881, 17, 100_000) for i in range(8)])
        c["bidirectional_packets"][:] = [400, 400, 10, 400, 3000, 3000, 400, 12]
        c["bidirectional_first_seen_ms"][:] = 100_000 - np.array([8_000, 200_000, 8_000, 8_000, 60_000, 60_000, 8_000,
                                                                 1_000])
        c["src2dst_bytes"][3] = 900_000   # 2.2 kB a packet: a transfer, however fast
        c["src2dst_bytes"][4] = 450_000   # a game's hour: 150 B a packet, over bulk_bytes
        c["src2dst_bytes"][5] = 3_000_000   # 1 kB a packet: a transfer
        c["src2dst_bytes"][6] = 200_000   # 500 B a packet in 8 s: a burst of a transfer, under bulk_bytes
        return ev.update(c, np.array([0.3] * 8))

    # 400 packets in 8 s (20 ms apart): a real-time session; 400 in 200 s: not; 10 in 8 s: not;
    # 12 packets in 1 s: a real-time session, short by short_packets but not by realtime_packets
    np.testing.assert_array_equal(flows(100.0), [0.3, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9, 0.3])
    np.testing.assert_array_equal(flows(100.0, realtime_packets=32), [0.3, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9, 0.9])
    np.testing.assert_array_equal(flows(100.0, realtime_light=True), [0.3, 0.9, 0.9, 0.9, 0.3, 0.9, 0.3, 0.3])
    np.testing.assert_array_equal(flows(100.0, realtime_packet_bytes=0, realtime_light=True),
                                  [0.3, 0.9, 0.9, 0.9, 0.9, 0.9, 0.3, 0.3])
    np.testing.assert_array_equal(flows(0.0), [0.9] * 8)   # 0 turns the rule off


def test_a_flow_between_two_p2p_hosts_inherits_the_lower_score_whatever_its_ports_or_protocol():
    """Peers on 443 and 80 trade there; an ordinary server is no P2P host, so its flows stay."""
    g = "192.0.2.20"  # a second P2P host
    ev = HostEvidence(0.8)
    ev.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
                    + [(g, 7001, _peer(i), 41000 + i, 17, 4000 + i) for i in range(1, 4)]),
              np.array([0.9] * 3 + [0.85] * 3))
    assert sorted(ev.p2p_hosts()) == [H, g]
    flows = _cols([(H, 50000, g, 443, 6, 9000), (H, 50001, WEB, 443, 6, 9001), (g, 50002, WEB, 80, 6, 9002),
                   (g, 0, H, 0, 1, 9003), (H, 0, WEB, 0, 1, 9004)])   # ICMP between the peers, and to the server
    np.testing.assert_array_equal(ev.update(flows, np.array([0.01] * 5)), [0.85, 0.01, 0.01, 0.85, 0.01])
    off = HostEvidence(0.8, pairs=False)
    off.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
                     + [(g, 7001, _peer(i), 41000 + i, 17, 4000 + i) for i in range(1, 4)]),
               np.array([0.9] * 3 + [0.85] * 3))
    assert off.update(flows, np.array([0.01, 0.01, 0.01]))[0] == 0.01


def test_icmp_is_p2p_only_through_evidence():
    """ICMP carries no application's behaviour: however sure the model is, an ICMP flow between a
    P2P host and a relay that is no P2P host stays below the threshold (a console's relays, a
    call's server); between two P2P hosts, or on a P2P ICMP endpoint, it inherits a score as any
    flow does."""
    below = np.nextafter(0.8, 0)
    g, relay = "192.0.2.20", "198.51.100.7"
    swarm = _cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
                  + [(g, 7001, _peer(i), 41000 + i, 17, 4000 + i) for i in range(1, 4)])
    icmp = _cols([(relay, 0, H, 0, 1, 9000), (g, 0, H, 0, 1, 9001)])
    ev = HostEvidence(0.8)
    ev.update(swarm, np.array([0.9] * 3 + [0.85] * 3))
    np.testing.assert_array_equal(ev.update(icmp, np.array([0.99, 0.01])), [below, 0.85])
    # its call still feeds the evidence: once two peers' ICMP to the host was called P2P, the
    # host's ICMP endpoint is P2P and a third peer's ICMP inherits its score
    more = _cols([("198.51.100.8", 0, H, 0, 1, 9100), ("198.51.100.9", 0, H, 0, 1, 9200)])
    np.testing.assert_array_equal(ev.update(more, np.array([0.99, 0.3])), [below, 0.99])
    off = HostEvidence(0.8, icmp_on_evidence=False)   # the model's own score stands (corroborated)
    off.update(swarm, np.array([0.9] * 3 + [0.85] * 3))
    np.testing.assert_array_equal(off.update(icmp, np.array([0.99, 0.01])), [0.99, 0.85])


def test_icmp_completes_a_p2p_host_but_never_makes_one():
    """A traceroute (UDP probes from one high port to ports 33434 and up, answered by port
    unreachable) draws ICMP from every target, which the model scores as a gone peer's: ICMP alone
    makes no P2P host, so the tracing host's probes stay on their own scores. Beside a TCP/UDP peer
    called P2P (a DHT node whose gone peers answer with port unreachable) its ICMP peers count."""
    tr = "192.0.2.30"
    probes = [(tr, 38899, _peer(10 + i), 33434 + k, 17, 1000 * i + k) for i in range(3) for k in range(3)]
    unreach = [(_peer(10 + i), 0, tr, 0, 1, 1000 * i + 5) for i in range(3)]
    later = _cols([(tr, 38899, _peer(13), 33434, 17, 5000), (_peer(13), 0, tr, 0, 1, 5005)])
    for beside, host in ((1, False), (0, True)):
        ev = HostEvidence(0.8, icmp_beside=beside)
        ev.update(_cols(probes + unreach), np.array([0.5] * len(probes) + [0.99] * len(unreach)))
        out = ev.update(later, np.array([0.5, 0.99]))
        assert (ev.host_score(tr) > 0, out[0] > 0.5, out[1] >= 0.8) == (host, host, host), beside
        assert bool(ev.pop_records()) == host
    # one DHT exchange called P2P, then two gone peers' port unreachable: a P2P host of three peers
    ev = HostEvidence(0.8)
    ev.update(_cols([(tr, 6881, _peer(20), 40000, 17, 100)] + unreach[:2]), np.array([0.9, 0.99, 0.99]))
    assert ev.host_score(tr) == 0.9 and [r["p2p_peers"] for r in ev.pop_records()] == [3]


def test_a_flow_is_p2p_on_its_own_score_only_with_a_second_peer_between_high_ports():
    """One high-scoring exchange with one remote host is not P2P behaviour, nor are sessions with
    servers on service ports: a client's TLS sessions with one server, or with two, stay below
    the threshold however sure the model is, until the host trades with two peers between high
    ports."""
    below = np.nextafter(0.8, 0)
    server = [(H, 33500 + i, WEB, 443, 6, 1000 * i) for i in range(1, 5)] + [(H, 33600, "198.51.100.81", 80, 6, 5000)]
    ev = HostEvidence(0.8)
    np.testing.assert_array_equal(ev.update(_cols(server), np.full(5, 0.99)), [below] * 5)
    assert ev.pop_records() == []
    # two peers between high ports corroborate: the first of them is alone, the second is not,
    # and from then on the host's flows stand on their own scores (the server's too)
    later = ev.update(_cols([(H, 6881, _peer(1), 40001, 17, 6000), (H, 6881, _peer(2), 40002, 17, 6500),
                             (H, 33700, WEB, 443, 6, 7000)]), np.array([0.9, 0.9, 0.99]))
    np.testing.assert_array_equal(later, [below, 0.9, 0.99])
    # either host's peers count: a flow to a host that has other P2P peers is corroborated
    ev2 = HostEvidence(0.8)
    ev2.update(_cols([(_peer(1), 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(2, 4)]),
               np.array([0.9, 0.9]))
    assert ev2.update(_cols([(H, 50000, _peer(1), 6881, 6, 5000)]), np.array([0.9]))[0] == 0.9
    # the other peer's call must be recent (within idle_s)
    ev3 = HostEvidence(0.8, idle_s=60)
    ev3.update(_cols([(H, 6881, _peer(1), 40001, 17, 1000)]), np.array([0.9]))
    assert ev3.update(_cols([(H, 6881, _peer(2), 40002, 17, 90_000)]), np.array([0.9]))[0] == below
    # any ports: the two servers corroborate each other
    anyp = HostEvidence(0.8, corroborate_high_ports=False)
    np.testing.assert_array_equal(anyp.update(_cols(server), np.full(5, 0.99)), [below] * 4 + [0.99])
    # corroborate_peers=1: every flow on its own score
    off = HostEvidence(0.8, corroborate_peers=1)
    np.testing.assert_array_equal(off.update(_cols(server), np.full(5, 0.99)), [0.99] * 5)


def test_a_bulk_transfer_stands_on_its_own_score():
    """A TCP transfer of bulk_bytes or more is P2P on the model's own score without a second peer
    (corroborate_bulk=False, the default): a peer listening on a service port (443, 3478) to pass
    firewalls trades megabytes with peers none of whose flows is between high ports. A lighter
    session with the same peer, or the transfer with corroborate_bulk=True, is still capped."""
    below = np.nextafter(0.8, 0)
    rows = [(H, 40001, _peer(1), 443, 6, 1000), (H, 40002, _peer(1), 443, 6, 2000),
            (H, 40003, _peer(2), 443, 17, 3000)]   # an HTTP/3 download: UDP is still capped
    cols = _cols(rows)
    cols["src2dst_bytes"] = np.array([300_000, 100, 300_000])
    cols["bidirectional_packets"] = np.array([400, 40, 400])
    np.testing.assert_array_equal(HostEvidence(0.8).update(cols, np.full(3, 0.95)), [0.95, below, below])
    np.testing.assert_array_equal(HostEvidence(0.8, corroborate_bulk=True).update(cols, np.full(3, 0.95)),
                                  [below] * 3)


def test_servers_of_one_application_on_one_high_port_need_not_corroborate():
    """corroborate_ports=True (off by default, docs/evaluation.md session 13): a client of two
    servers on the same high port (log sinks on 11095, PLCs on 44818) is one application's client,
    not a swarm; peers on their own ports are, and so are peers that all use the host's own port
    (a one-port swarm: 51413 everywhere)."""
    below = np.nextafter(0.8, 0)
    sink = [(H, 50000 + i, f"198.51.100.{i % 2}", 11095, 6, 1000 * i) for i in range(1, 5)]   # two sinks
    ev = HostEvidence(0.8, corroborate_ports=True)
    np.testing.assert_array_equal(ev.update(_cols(sink), np.full(4, 0.99)), [below] * 4)
    # a peer on another port is a second key: corroborated from there on
    assert ev.update(_cols([(H, 50100, _peer(1), 40001, 6, 6000)]), np.array([0.9]))[0] == 0.9
    # one-port swarm: from and to 51413, each peer counts on its own
    swarm = [(H, 51413, _peer(i), 51413, 17, 1000 * i) for i in range(1, 4)]
    np.testing.assert_array_equal(HostEvidence(0.8, corroborate_ports=True).update(_cols(swarm), np.full(3, 0.9)),
                                  [below, 0.9, 0.9])
    # peers dialled on their own ports
    dialled = [(H, 50000 + i, _peer(i), 6881 + i, 6, 1000 * i) for i in range(1, 3)]
    np.testing.assert_array_equal(HostEvidence(0.8, corroborate_ports=True).update(_cols(dialled), np.full(2, 0.9)),
                                  [below, 0.9])
    # withdrawn peers take their port keys with them (a scanner's servers)
    browse = HostEvidence(0.8, corroborate_ports=True)
    browse.update(_cols(_browse("192.0.2.50", 25)), np.full(25, 0.95))
    assert browse._hosts["192.0.2.50"].hp_keys == {} and browse._hosts["192.0.2.50"].hp_flagged == {}
    # the default counts peers only: the two sinks corroborate each other
    np.testing.assert_array_equal(HostEvidence(0.8).update(_cols(sink), np.full(4, 0.99)), [below] + [0.99] * 3)


def test_early_snapshots_read_but_do_not_feed_the_evidence():
    ev = HostEvidence(0.8)
    rows = [(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
    ev.update(_cols(rows), np.array([0.99] * 3), remember=False)
    assert list(ev.p2p_hosts()) == [] and ev.pop_records() == []


def test_evidence_snapshots_called_p2p_feed_the_evidence_but_not_the_counts():
    ev = HostEvidence(0.8)
    snaps = [(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
    # a snapshot reads the evidence before it feeds it
    got = ev.update(_cols(snaps), np.array([0.99, 0.5, 0.99]), remember=False, evidence=np.array([True] * 3))
    np.testing.assert_array_equal(got, [np.nextafter(0.8, 0), 0.5, 0.99])   # the first uncorroborated
    assert list(ev.p2p_hosts()) == []            # two peers called P2P, three are needed
    ev.update(_cols([(H, 6881, _peer(4), 40004, 17, 4000)]), np.array([0.9]), remember=False,
              evidence=np.array([True]))
    [rec] = ev.pop_records()
    assert rec["ip"] == H and rec["p2p_peers"] == rec["peers"] == 3 and rec["flows"] == 0   # snapshots are not flows
    assert rec["endpoints"] == [endpoint_name(H, 6881, 17)]
    # a later flow of the host between high ports, short: flagged from its first verdict
    assert ev.update(_cols([(H, 50000, _peer(9), 40009, 17, 5000)]), np.array([0.1]))[0] == 0.9
    # in one batch, per row: the same as row by row
    one = HostEvidence(0.8)
    rows = snaps + [(H, 6881, _peer(4), 40004, 17, 4000), (H, 50000, _peer(9), 40009, 17, 5000)]
    mask = np.array([False] * 4 + [True])
    got = one.update(_cols(rows), np.array([0.99, 0.5, 0.99, 0.9, 0.1]), remember=mask, evidence=~mask)
    assert got[-1] == 0.9


def test_records_repeat_while_it_lasts_and_the_evidence_lapses():
    ev = HostEvidence(0.8, report_s=10, idle_s=60)
    ev.update(_cols([(H, 6881, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]), np.array([0.9] * 3))
    assert len(ev.pop_records()) == 1
    ev.update(_cols([(H, 6881, _peer(4), 40004, 17, 14_000)]), np.array([0.9]))
    assert len(ev.pop_records()) == 1   # 11 s after the first record
    ev.update(_cols([(H, 6881, _peer(5), 40005, 17, 80_000)]), np.array([0.1]))  # 66 s without a P2P flow
    assert list(ev.p2p_hosts()) == []
    final = ev.finish()
    assert final == []


def test_a_hosts_first_flows_are_judged_again_once_it_is_a_p2p_host():
    """hold_s: a final verdict below the threshold of a host with a flow called P2P (or capped for
    want of corroboration) is held and judged again hold_s later with the evidence as it stands
    then: the DHT query a host sent between its first call and its third peer is P2P too. A flow
    between high ports before any evidence is held too, when its own score is at least hold_floor (0 by
    default: every one; hold_unknown). A web session is not raised."""
    rows = [(H, 50000, _peer(9), 40009, 17, 1000),   # a short query between high ports, before any evidence
            (H, 50001, "198.51.100.1", 443, 6, 1500),   # web: nothing called P2P yet, not held
            (H, 6881, _peer(1), 40001, 17, 2000),   # the first call: capped (no second peer yet)
            (H, 50003, _peer(8), 40008, 17, 2500),   # a short query after it, scored low
            (H, 6881, _peer(2), 40002, 17, 3000),
            (H, 6881, _peer(3), 40003, 17, 4000),   # the third peer called P2P: a P2P host
            (H, 50002, "198.51.100.1", 443, 6, 5000)]   # web again, now held: its host has evidence
    scores = np.array([0.1, 0.1, 0.9, 0.3, 0.95, 0.99, 0.1])
    below = np.nextafter(0.8, 0)
    ev = HostEvidence(0.8, hold_s=60)
    out = ev.update(_cols(rows), scores, keys=list("abcdefg"))
    np.testing.assert_array_equal(out, [0.1, 0.1, below, 0.3, 0.95, 0.99, 0.1])   # provisional for held rows
    np.testing.assert_array_equal(ev.held, [True, False, True, True, False, False, True])
    assert ev.pop_released() == []
    # a flow 61 s after the first call releases it and the queries before and after it: all P2P now
    ev.update(_cols([("192.0.2.7", 50000, "198.51.100.2", 53, 17, 62_600)]), np.array([0.1]), keys=["h"])
    released = dict(ev.pop_released())
    assert set(released) == {"a", "c", "d"} and min(released.values()) >= 0.8
    assert dict(ev.flush()) == {"g": 0.1}   # the end of the stream releases the rest, not raised
    # hold_unknown: the query before any evidence is held and raised too, once it scores hold_floor
    for floor, first, held in ((0.0, 0.1, True), (0.3, 0.2, False), (0.3, 0.6, True)):
        unknown = HostEvidence(0.8, hold_s=60, hold_floor=floor)
        unknown.update(_cols(rows), np.r_[first, scores[1:]], keys=list("abcdefg"))
        assert unknown.held[0] == held and not unknown.held[1]
        assert (dict(unknown.flush()).get("a", first) >= 0.8) == held
    # without hold_unknown a flow before any evidence is never held
    never = HostEvidence(0.8, hold_s=60, hold_unknown=False)
    never.update(_cols(rows), np.r_[0.6, scores[1:]])
    assert not never.held[0] and never.held[2]
    # without the hold they stay as they were
    off = HostEvidence(0.8, hold_s=0)
    np.testing.assert_array_equal(off.update(_cols(rows), scores), [0.1, 0.1, below, 0.3, 0.95, 0.99, 0.1])
    assert not off.held.any() and off.flush() == []


def test_held_verdicts_are_bounded():
    ev = HostEvidence(0.8, hold_s=60, max_held=2, hold_unknown=True, hold_floor=0.0)
    rows = [(H, 50000 + i, _peer(i), 40000 + i, 17, 1000 * i) for i in range(1, 4)]
    ev.update(_cols(rows), np.full(3, 0.3))
    assert ev.held.all() and [k for k, _ in ev.pop_released()] == [0]   # the oldest went early
    assert [k for k, _ in ev.flush()] == [1, 2]


def test_table_evidence_equals_streaming_in_any_batches():
    rng = np.random.default_rng(1)
    rows = [(H if rng.random() < 0.5 else _peer(int(rng.integers(1, 30))), int(rng.choice([6881, 50000 + i])),
             _peer(int(rng.integers(30, 60))), int(rng.choice([443, 40000 + i])), int(rng.choice([6, 17])), 100 * i)
            for i in range(400)]
    scores = rng.random(400)
    cols = _cols(rows)
    whole, recs = evidence_scores({**cols, "capture": np.full(400, "c"), "flow_index": np.arange(400)}, scores, 0.7)
    ev = HostEvidence(0.7)
    got = np.full(400, np.nan)
    for i in range(0, 400, 37):
        part = ev.update({k: v[i:i + 37] for k, v in cols.items()}, scores[i:i + 37], keys=range(i, i + 37))
        got[i:i + 37][~ev.held] = part[~ev.held]
        for k, score in ev.pop_released():
            got[k] = score
    assert np.isnan(got).sum() == len(ev._held) > 0   # some verdicts are still held at the end
    for k, score in ev.flush():
        got[k] = score
    np.testing.assert_array_equal(got, whole)
    assert ev.finish() == recs["c"]


def test_endpoint_names():
    assert endpoint_name("192.0.2.1", 6881, 17) == "192.0.2.1:6881/udp"
    assert endpoint_name("2001:db8::1", 443, 6) == "[2001:db8::1]:443/tcp"


def _returning_clients(server, n, t0=0):
    """n flows to server:54128/tcp from 4 clients, each from a new port per request."""
    return [(f"198.18.0.{1 + k % 4}", 50000 + k, server, 54128, 6, t0 + 100 * k) for k in range(n)]


def test_a_server_whose_clients_return_from_many_ports_is_not_a_peer():
    """Karagiannis's {IP, port} test: 4 clients, a new port per request, and a model that calls
    every flow P2P. Once the endpoint is seen to be served, its flows feed no evidence, and what
    they fed before is withdrawn: the server is no P2P host, its clients' flows are not raised."""
    srv, thr = "198.18.1.1", 0.8
    ev = HostEvidence(thr)
    out = ev.update(_cols(_returning_clients(srv, 40)), np.full(40, 0.95))
    # the first is uncorroborated; the 14th makes it served (14 ports over 4 IPs: over 3 per IP,
    # 10 more ports than IPs)
    assert out[0] < thr and (out[1:13] >= thr).all() and (out[13:] < thr).all()
    assert list(ev.p2p_hosts()) == [] and ev.endpoint_score(srv, 54128, 6) == 0.0
    assert ev.host_score("198.18.0.1") == 0.0
    # turned off, the server stays a P2P host and every later flow is flagged
    off = HostEvidence(thr, served_ratio=0)
    assert (off.update(_cols(_returning_clients(srv, 40)), np.full(40, 0.95))[3:] >= thr).all()
    assert list(off.p2p_hosts())[:1] == [srv]


def test_a_served_endpoints_flows_are_not_p2p_on_their_own_score():
    """Clients of an application server on a high port that also trade with two peers the model
    calls P2P (so every flow of theirs is corroborated): once the server's endpoint is seen to be
    served, the model's confident calls on flows to it are capped below the threshold (served_cap;
    session 21: 52 of a fold's 59 false positives on generated ordinary traffic were such flows)."""
    srv, thr = "198.18.1.1", 0.8
    own = [(f"198.18.0.{1 + k % 4}", 6881, _peer(10 + k), 40000 + k, 17, k) for k in range(8)]
    rows = own + _returning_clients(srv, 40, t0=100)
    out = HostEvidence(thr).update(_cols(rows), np.full(48, 0.95))
    assert (out[9:8 + 13] >= thr).all() and (out[8 + 13:] < thr).all()
    off = HostEvidence(thr, served_cap=False).update(_cols(rows), np.full(48, 0.95))
    assert (off[9:] >= thr).all()


def test_a_peer_that_its_peers_reconnect_to_again_and_again_stays_a_peer():
    """The same returning pattern on a host that starts flows called P2P itself (a small
    swarm's peer, reconnected to after every drop): its endpoint is judged as before."""
    peer, thr = "198.18.1.1", 0.8
    ev = HostEvidence(thr)
    own = [(peer, 6881, _peer(i), 40000 + i, 17, i) for i in range(1, 3)]   # its DHT queries
    out = ev.update(_cols(own + _returning_clients(peer, 40, t0=100)), np.full(42, 0.95))
    assert (out[3:] >= thr).all() and peer in set(ev.p2p_hosts())
    assert ev.endpoint_score(peer, 54128, 6) == 0.95


def test_a_peer_that_calls_its_peers_stays_a_peer_whatever_those_calls_score():
    """The returning pattern on a host that calls peers' listening high ports itself, and is
    answered, though the model calls none of those calls P2P (a seed dialling leechers that
    redial it every second): a server never calls its clients' high ports, so its endpoint is
    judged as before."""
    peer, thr = "198.18.1.1", 0.8
    ev = HostEvidence(thr)
    own = [(peer, 40100 + i, f"198.18.0.{i}", 51413, 6, i) for i in range(1, 3)]
    rows = own + _returning_clients(peer, 40, t0=100)
    out = ev.update(_cols(rows), np.array([0.1, 0.1] + [0.95] * 40))
    assert (out[3:] >= thr).all() and peer in set(ev.p2p_hosts())
    # its calls to a service port (a backend on 443) or unanswered do not make it a peer
    for port, back in ((443, 50), (51413, 0)):
        cols = _cols(rows)
        cols["dst_port"][:2] = port
        cols["dst2src_bytes"][:2] = back
        out = HostEvidence(thr).update(cols, np.array([0.1, 0.1] + [0.95] * 40))
        assert (out[2 + 13:] < thr).all(), (port, back)


def test_listening_state_is_bounded():
    """At most max_listen listening endpoints per host, max_peers remote IPs and ports each;
    an endpoint once seen served keeps no counts; max_hosts hosts in all."""
    srv = "198.18.1.1"
    ev = HostEvidence(0.8, max_listen=8, max_peers=16, max_hosts=50)
    scan = [(_peer(i % 200), 40000 + i, srv, 1024 + i, 6, i) for i in range(40)]   # 40 ports hit
    many = [(f"10.0.{i // 250}.{i % 250}", 50000, srv, 1024, 6, 100 + i) for i in range(100)]
    ev.update(_cols(scan + many), np.zeros(140))
    h = ev._hosts[srv]
    assert len(h.listen) <= 8 and all(len(a) <= 16 and len(b) <= 16 for a, b in h.listen.values())
    assert len(ev._hosts) <= 50
    ev.update(_cols(_returning_clients(srv, 40, t0=1000)), np.zeros(40))
    assert (54128, 6) not in h.listen   # endpoints beyond max_listen are not counted
    fresh = HostEvidence(0.8)
    fresh.update(_cols(_returning_clients(srv, 40)), np.zeros(40))
    s = fresh._hosts[srv]
    assert (54128, 6) in s.served and (54128, 6) not in s.listen


def test_an_endpoint_that_only_p2p_hosts_call_is_a_tracker():
    """tracker_clients: a short exchange with an endpoint (of a host that is no P2P host) that
    tracker_clients IPs or more called, every one of them a P2P host, takes the caller's host score:
    the announces of a swarm's peers to their tracker on 80. A web server that an ordinary host
    uses too lends nothing, nor does an endpoint that fewer than tracker_clients P2P hosts call."""
    tracker, web, plain, thr = "198.18.1.1", "198.18.1.2", "192.0.2.99", 0.8
    peers = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    swarm = [(p, 6881, _peer(10 * k + i), 40000 + i, 17, 1000 * k + 10 * i)
             for k, p in enumerate(peers) for i in range(3)]   # each calls three DHT nodes: a P2P host
    rows = swarm + [(p, 50000 + k, tracker, 80, 6, 10_000 + k) for k, p in enumerate(peers)]
    rows += [(p, 51000 + k, web, 443, 6, 11_000 + k) for k, p in enumerate([plain] + peers)]
    # a fourth peer announces before it has any evidence, then trades: its announce waits and is raised
    late = "192.0.2.4"
    rows += [(late, 50009, tracker, 80, 6, 12_000)] + [(late, 6881, _peer(40 + i), 40000 + i, 17, 13_000 + i)
                                                       for i in range(3)]
    scores = np.r_[np.full(len(swarm), 0.95), np.full(8, 0.3), np.full(3, 0.95)]
    keys = list(range(len(rows)))

    def final(**kw):
        ev = HostEvidence(thr, hold_s=60, **kw)
        out = ev.update(_cols(rows), scores, keys=keys)
        for k, v in ev.flush():   # the announces are held: their callers have evidence
            out[k] = v
        return out[len(swarm):len(swarm) + 8]

    out = final()
    assert (out[:3] >= thr).all() and (out[3:7] < thr).all() and out[7] >= thr
    assert (final(tracker_clients=0)[[0, 1, 2, 7]] < thr).all()
    assert (final(tracker_clients=5)[[0, 1, 2, 7]] < thr).all()   # four P2P hosts called it, not five
    # peers that announce again and again, each time from a new port, make the tracker a served
    # endpoint (Karagiannis's {IP, port} test): its callers still count
    again = [(p, 52000 + 10 * j + k, tracker, 80, 6, 20_000 + 100 * j + k)
             for j in range(6) for k, p in enumerate(peers)]
    ev = HostEvidence(thr, hold_s=60)
    out = ev.update(_cols(swarm + again), np.r_[np.full(len(swarm), 0.95), np.full(len(again), 0.3)])
    assert (80, 6) in ev._hosts[tracker].served and (out[-3:] >= thr).all()


def _browse(client, n, port=27015, t0=0, fresh_socket=False):
    """n UDP queries from client to n game servers, all on one port."""
    return [(client, (40000 + k) if fresh_socket else 44751, f"198.18.2.{1 + k}", port, 17, t0 + 10 * k)
            for k in range(n)]


def test_a_server_browser_is_not_a_peer():
    """A client querying 40 game servers on one UDP port (one socket, or a fresh one per query),
    answering nothing and trading no TCP, looks like a DHT node to a model that never saw one.
    From its 20th server it is a scanner: its queries feed no evidence, and what the first 19 fed
    is withdrawn, so it is no P2P host and its later queries are not flagged."""
    c, thr = "192.0.2.50", 0.8
    for fresh in (False, True):
        ev = HostEvidence(thr)
        out = ev.update(_cols(_browse(c, 40, fresh_socket=fresh)), np.full(40, 0.95))
        assert (out[1:19] >= thr).all() and (out[19:] < thr).all()
        assert list(ev.p2p_hosts()) == [] and ev.host_score(c) == 0.0
    off = HostEvidence(thr, scan_peers=0)
    assert (off.update(_cols(_browse(c, 40)), np.full(40, 0.95))[1:] >= thr).all()


def test_dht_nodes_and_one_port_swarms_are_not_scanners():
    """Queries to 40 nodes on 40 ports (a DHT node), or to 40 peers on one port by a host that
    peers also reach (a swarm whose peers all listen on one port), stay P2P."""
    c, thr = "192.0.2.50", 0.8
    dht = [(c, 44751, f"198.18.2.{1 + k}", 20000 + k, 17, 10 * k) for k in range(40)]
    ev = HostEvidence(thr)
    assert (ev.update(_cols(dht), np.full(40, 0.95))[1:] >= thr).all() and c in set(ev.p2p_hosts())
    reached = [(_peer(1), 51413, c, 51413, 17, 0)]
    ev = HostEvidence(thr)
    out = ev.update(_cols(reached + _browse(c, 40, port=51413, t0=10)), np.full(41, 0.95))
    assert (out[1:] >= thr).all() and c in set(ev.p2p_hosts())
