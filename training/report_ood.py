"""The report's leading sections: out-of-distribution figures beside the heuristic baseline.

Rendered first (before the in-distribution figures of training.report) from the metrics dict:
leave-one-group-out groups, the real captures' FPR, host-level recall and FPR, first verdicts
through the real scorer, recall at fixed FPRs, and the missed and falsely flagged flows.
"""

from __future__ import annotations

import html

from p2pdetect.training.report import _fmt, _table

LEAD_SECTIONS = ["out-of-distribution", "real-captures", "hosts", "first-verdicts", "recall-at-fpr", "flows"]

_PAIR_COLS = [("recall", "flow recall"), ("byte_recall", "byte recall"), ("fpr", "FPR"),
              ("host_recall", "host recall"), ("host_fpr", "host FPR")]


def _cells(fig: dict | None) -> dict:
    if not fig:
        return {k: None for k, _ in _PAIR_COLS}
    return {"recall": fig["flow"]["recall"], "byte_recall": fig["byte"]["recall"], "fpr": fig["flow"]["fpr"],
            "host_recall": fig["host"]["recall"], "host_fpr": fig["host"]["fpr"]}


def _side_by_side(rows: list[dict]) -> str:
    """Model and baseline per group, each figure in two adjacent columns."""
    head = ["group", "captures", "p2p flows", "other flows"]
    for _, title in _PAIR_COLS:
        head += [f"{title}: model", "baseline"]
    body = []
    for r in rows:
        mc, bc = _cells(r.get("model")), _cells(r.get("baseline"))
        cells = [_fmt(r["group"]), _fmt(r.get("captures")), _fmt(r.get("p2p_flows")), _fmt(r.get("other_flows"))]
        for k, _ in _PAIR_COLS:
            better = (mc[k] is not None and bc[k] is not None
                      and ((mc[k] > bc[k]) if "fpr" not in k else (mc[k] < bc[k])))
            cells += [f"<b>{_fmt(mc[k], True)}</b>" if better else _fmt(mc[k], True), _fmt(bc[k], True)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def _ood(m: dict) -> str:
    o = m.get("out_of_distribution")
    if not o:
        return ("<section id='out-of-distribution'><h2>Out of distribution</h2><p class='warn'>Not run: pass "
                "<code>--group-by implementation|scenario|network</code>. Without it, every figure below is the "
                "given model on the given captures, which measures out-of-distribution quality only where "
                "those captures are unlike its training data.</p></section>")
    rows = list(o["groups"]) + ([o["pooled"]] if o.get("pooled") else [])
    skipped = [f"<li>{html.escape(r['group'])}: {html.escape(s)}</li>" for r in o["groups"] for s in r["skipped"]]
    rat = [{"group": r["group"], **{f"r{p['fpr_target']}": p["recall"] for p in (r["model"] or {}).get("recall_at_fpr", [])}}
           for r in rows if r.get("model")]
    return (f"<section id='out-of-distribution'><h2>Out of distribution: leave one {html.escape(o['group_by'])} out</h2>"
            f"<p class='note'>{html.escape(o['method'])} Bold: the model ahead of the baseline.</p>"
            + _side_by_side(rows)
            + (f"<p>Groups no model could be trained without (baseline only):</p><ul>{''.join(skipped)}</ul>"
               if skipped else "")
            + "<h3>Recall at a fixed FPR (model, per group)</h3>"
            + _table(rat, [("group", "group", False), ("r0.001", "at FPR 0.1 %", True),
                           ("r0.005", "at FPR 0.5 %", True), ("r0.01", "at FPR 1 %", True)])
            + "</section>")


def _real(m: dict) -> str:
    o = m.get("out_of_distribution") or {}
    real = [r for r in o.get("groups", []) if r["group"] == "real"]
    parts = ["<section id='real-captures'><h2>Real captures (labels from nDPI)</h2>"]
    if real:
        parts.append("<p class='note'>Real captures scored out of fold (grouped folds over the real files; each "
                     "model trained on everything else).</p>" + _side_by_side(real))
    src = (m["overall"].get("by_label_source") or {}).get("nDPI")
    bsrc = (m.get("baseline", {}).get("by_label_source") or {}).get("nDPI")
    if src:
        seen = m["data"]["seen_in_training"]["captures"]
        parts.append(f"<p>The evaluated model on the real captures{' (some were in its training data)' if seen else ''}: "
                     f"FPR {_fmt(src['flow']['fpr'], True)} ({src['flow']['fp']} of {src['flow']['fp'] + src['flow']['tn']} "
                     f"ordinary flows), recall {_fmt(src['flow']['recall'], True)} of {src['flow']['tp'] + src['flow']['fn']} "
                     f"P2P flows; heuristic baseline FPR {_fmt((bsrc or {}).get('flow', {}).get('fpr'), True)}, "
                     f"recall {_fmt((bsrc or {}).get('flow', {}).get('recall'), True)}.</p>")
    if not real and not src:
        parts.append("<p>No real captures were evaluated: add <code>../shared/captures/ndpi --labels-from-dpi "
                     "--skip-bad</code>.</p>")
    return "".join(parts) + "</section>"


def _seen(m: dict) -> str:
    """A warning that the evaluated model trained on (some of) these captures: in distribution."""
    seen = m["data"]["seen_in_training"]["captures"]
    return (f" <b>In distribution:</b> {len(seen)} of these {m['data']['captures']} captures were in the "
            f"evaluated model's training data." if seen else "")


def _hosts(m: dict) -> str:
    h, b = m["overall"].get("host") or {}, (m.get("baseline") or {}).get("host") or {}
    rows = [{"weight": name, **x} for name, x in (("model", h), ("heuristic baseline", b)) if x]
    return ("<section id='hosts'><h2>Hosts</h2><p class='note'>A host is an IP in a capture; a P2P host has a "
            "P2P-labelled flow, an ordinary host none; flagged when any of its flows is (the evaluated model on "
            "all evaluated captures)." + _seen(m) + "</p>"
            + _table(rows, [("weight", "", False), ("p2p_hosts", "P2P hosts", False), ("found", "found", False),
                            ("recall", "host recall", True), ("other_hosts", "ordinary hosts", False),
                            ("flagged_other", "flagged", False), ("fpr", "host FPR", True)]) + "</section>")


def _first(m: dict) -> str:
    fv = m.get("first_verdicts")
    if not fv:
        return ("<section id='first-verdicts'><h2>First verdicts through the scorer</h2><p>Not measured "
                "(<code>--no-early</code>, or the inputs were flow tables only).</p></section>")
    return (f"<section id='first-verdicts'><h2>First verdicts through the scorer</h2><p class='note'>"
            f"{html.escape(fv['meaning'])}{_seen(m)}</p>"
            + _table(fv["points"], [("k", "packets k", False), ("p2p_flows", "P2P flows", False),
                                    ("recall", "recall", True), ("other_flows", "other flows", False),
                                    ("fpr", "FPR", True), ("decided_early", "decided early", True)]) + "</section>")


def _recall_at(m: dict) -> str:
    pts = m["overall"].get("recall_at_fpr") or []
    return ("<section id='recall-at-fpr'><h2>Recall at a fixed FPR</h2><p class='note'>The evaluated model's "
            "scores on all evaluated flows, each cut at the most permissive threshold within the rate."
            + _seen(m) + "</p>"
            + _table(pts, [("fpr_target", "FPR at most", True), ("recall", "recall", True), ("fpr", "FPR reached", True),
                           ("threshold", "threshold", False)]) + "</section>")


FLOW_COLS = [("group", "group", False), ("capture", "capture", False), ("flow", "flow", False),
             ("packets", "packets", False), ("bytes", "bytes", False), ("app", "label app", False),
             ("ndpi", "nDPI", False), ("score", "score", False), ("threshold", "threshold", False),
             ("baseline", "baseline flags it", False), ("top_features", "top features (log-odds)", False)]


def _flows(m: dict) -> str:
    o = m.get("out_of_distribution") or {}
    src = o if o else m
    where = ("the leave-one-group-out models" if o else "the evaluated model")
    missed, fps = src.get("flows_missed") or [], src.get("flows_false_positive") or []
    return (f"<section id='flows'><h2>Missed and falsely flagged flows</h2><p class='note'>As judged by {where}; "
            "missed flows largest first, false positives highest score first; top features from LightGBM "
            "pred_contrib (log-odds pushed toward P2P when positive).</p>"
            f"<h3>Missed P2P flows ({len(missed)} listed)</h3>" + _table(missed, FLOW_COLS, limit=60)
            + f"<h3>Falsely flagged ordinary flows ({len(fps)} listed)</h3>" + _table(fps, FLOW_COLS, limit=60)
            + "</section>")


def lead_sections(m: dict) -> str:
    """HTML of the sections that lead the report."""
    return "".join(f(m) for f in (_ood, _real, _hosts, _first, _recall_at, _flows))
