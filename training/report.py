"""The evaluation report: metrics.json + a self-contained report.html (plots as base64 PNG).

Rendered from the metrics dict alone (training.evaluate), with matplotlib's Agg backend: the
page needs no network and no scripts. The report directory is written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
from pathlib import Path

from p2pdetect.errors import OutputError
from p2pdetect.outputs import check_output_dir, commit_dir, new_output_dir

SECTIONS = ["out-of-distribution", "real-captures", "hosts", "first-verdicts", "recall-at-fpr", "flows",
            "summary", "data", "metrics", "curves", "confusion", "histograms", "calibration",
            "per-capture", "per-app", "importance", "early-detection", "ablation"]
#: Sections present only when the data has them.
OPTIONAL_SECTIONS = ["early-verdicts"]
REPORT_FILES = ("metrics.json", "report.html")


def _plot(draw, w: float = 5.0, h: float = 3.6) -> str:
    """A data: URI of a PNG drawn by draw(ax)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h), dpi=90)
    try:
        draw(ax)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{100 * v:.2f}%" if pct else f"{v:.4g}"
    return html.escape(str(v))


def _auc(v) -> str:
    return "–" if v is None else f"{v:.6f}"


def _table(rows: list[dict], cols: list[tuple[str, str, bool]], limit: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in cols)
    body = []
    for r in rows[:limit] if limit else rows:
        body.append("<tr>" + "".join(f"<td>{_fmt(r.get(k), pct)}</td>" for k, _, pct in cols) + "</tr>")
    more = (f'<p class="note">{len(rows) - limit} more rows in metrics.json</p>'
            if limit and len(rows) > limit else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _rates_rows(sec: dict) -> list[dict]:
    rows = []
    for kind in ("flow", "byte"):
        r = sec.get(kind)
        if r:
            rows.append({"weight": f"{kind}-weighted", **r})
    return rows


RATE_COLS = [("weight", "", False), ("precision", "precision", True), ("recall", "recall", True),
             ("f1", "F1", True), ("fpr", "FPR", True), ("tp", "TP", False), ("fp", "FP", False),
             ("fn", "FN", False), ("tn", "TN", False)]
GROUP_COLS = [("name", "name", False), ("flows", "flows", False), ("p2p", "p2p", False),
              ("other", "other", False), ("recall", "recall (p2p)", True),
              ("byte_recall", "byte recall", True), ("fpr", "FPR (other)", True),
              ("missed", "missed", False), ("false_positives", "false pos.", False)]

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}.note{color:#555;font-size:.9em}
.warn{background:#fff4d6;border:1px solid #e0c060;padding:.5em}img{max-width:100%;margin:.3em}
.kpi{display:inline-block;margin:.3em 1.2em .3em 0}.kpi b{font-size:1.4em;display:block}"""


def render_html(m: dict) -> str:
    """The report page for a metrics dict."""
    o = m["overall"]
    fr, br = o["flow"], o.get("byte") or {}
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>p2pdetect evaluation "
             f"{html.escape(m['model']['bundle_id'])}</title><style>{CSS}</style></head><body>",
             f"<h1>p2pdetect evaluation report</h1>"]
    from p2pdetect.training.report_ood import lead_sections

    parts.append(lead_sections(m))
    dist = o.get("distribution") or {}
    label = ("in distribution: captures the model trained on, or fresh seeds of their scenarios"
             if dist.get("in_distribution") else "the evaluated model on these captures")
    # summary
    kpis = [("P2P flow recall", fr["recall"]), ("byte-weighted recall", br.get("recall")),
            ("FPR (other flows)", fr["fpr"]), ("precision", fr["precision"]), ("ROC AUC", o["roc_auc"]),
            ("recall, TCP P2P nDPI calls Unknown (MSE)", o["p2p_ndpi_unknown"].get("tcp", {}).get("recall"))]
    parts.append(f"<section id='summary'><h2>Summary ({html.escape(label)})</h2>" + "".join(
        f"<div class='kpi'><b>{_fmt(v, pct=True) if name != 'ROC AUC' else _auc(v)}</b>{html.escape(name)}</div>"
        for name, v in kpis))
    md = m["model"]
    parts.append(f"<p>Model <code>{html.escape(md['bundle_id'])}</code> ({md['trees']} trees, port features "
                 f"{'on' if md['port_features'] else 'off'}) at its threshold {md['threshold']:.6g} "
                 f"(chosen at training time for a false-positive rate of {_fmt(md['target_fpr'], True)} on captures "
                 f"the scoring model had not seen).</p></section>")
    # data
    d = m["data"]
    seen = d["seen_in_training"]
    warn = (f"<p class='warn'>{len(seen['captures'])} evaluated capture(s) ({seen['flows']} flows) were in this "
            f"model's training data (matched by SHA-256); their flows flatter the model. Metrics over "
            f"unseen captures only are given below where both kinds are present.</p>" if seen["captures"] else
            "<p>No evaluated capture was in the model's training data (matched by SHA-256).</p>")
    skipped = "".join(f"<li>{html.escape(s)}</li>" for s in d["skipped"])
    parts.append(f"<section id='data'><h2>Data</h2><p>{d['captures']} captures, {d['p2p']} p2p and "
                 f"{d['other']} other labelled flows; {d['unlabelled_dropped']} unlabelled flows dropped. "
                 f"Byte weights: {html.escape(d['byte_weight'])}.</p>{warn}"
                 + (f"<p>Skipped captures:</p><ul>{skipped}</ul>" if skipped else "") + "</section>")
    # metrics
    parts.append("<section id='metrics'><h2>Metrics at the bundle's threshold</h2>"
                 + _table(_rates_rows(o), RATE_COLS))
    src = o.get("by_label_source") or {}
    if len(src) > 1 or "nDPI" in src:
        rows = [{"weight": f"{name}, {kind}-weighted", **r[kind]} for name, r in src.items() for kind in ("flow", "byte")]
        parts.append("<h3>By label source</h3><p class='note'>nDPI: real captures labelled by nDPI's verdict "
                     "(identified apps only); labels file: generator captures, labels by construction.</p>"
                     + _table(rows, RATE_COLS))
    if "unseen_only" in m:
        parts.append("<h3>Captures not seen in training only</h3>" + _table(_rates_rows(m["unseen_only"]), RATE_COLS))
    parts.append("</section>")
    # curves
    c = m["curves"]
    if c["roc"]:
        roc = _plot(lambda ax: (ax.plot(c["roc"]["fpr"], c["roc"]["tpr"], lw=2),
                                ax.plot([0, 1], [0, 1], "k:", lw=1), ax.set_xscale("symlog", linthresh=1e-3),
                                ax.set_xlabel("false-positive rate"), ax.set_ylabel("recall (TPR)"),
                                ax.set_title(f"ROC (AUC {c['roc_auc']:.4f})")))
        pr = _plot(lambda ax: (ax.plot(c["pr"]["recall"], c["pr"]["precision"], lw=2),
                               ax.set_xlabel("recall"), ax.set_ylabel("precision"),
                               ax.set_title(f"Precision-recall (AP {c['pr_auc']:.4f})")))
        parts.append(f"<section id='curves'><h2>ROC and precision-recall curves</h2>{_img(roc, 'ROC curve')}"
                     f"{_img(pr, 'PR curve')}</section>")
    else:
        parts.append("<section id='curves'><h2>ROC and precision-recall curves</h2>"
                     "<p>Needs flows of both classes.</p></section>")
    # confusion
    def conf(ax):
        mat = [[fr["tn"], fr["fp"]], [fr["fn"], fr["tp"]]]
        ax.imshow([[v ** 0.5 for v in row] for row in mat], cmap="Blues")
        top = max(max(row) for row in mat) or 1
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{mat[i][j]:,}", ha="center", va="center", fontsize=13,
                        color="white" if mat[i][j] > 0.3 * top else "black")
        ax.set_xticks([0, 1], ["verdict other", "verdict p2p"])
        ax.set_yticks([0, 1], ["label other", "label p2p"])
        ax.set_title("Confusion matrix (flows)")
    parts.append(f"<section id='confusion'><h2>Confusion matrix</h2>{_img(_plot(conf, 4.2, 3.4), 'confusion matrix')}"
                 "</section>")
    # histograms
    hst = m["histograms"]

    def hist(ax):
        e = hst["edges"]
        for cls, colr in (("other", "tab:blue"), ("p2p", "tab:red")):
            ax.stairs(hst[cls], e, label=cls, color=colr, fill=True, alpha=0.45)
        ax.axvline(md["threshold"], color="k", ls="--", lw=1, label="threshold")
        ax.set_yscale("symlog")
        ax.set_xlabel("score P(p2p)")
        ax.set_ylabel("flows")
        ax.legend()
        ax.set_title("Score histograms per class")
    parts.append(f"<section id='histograms'><h2>Score histograms</h2>{_img(_plot(hist, 6.5, 3.6), 'score histograms')}"
                 "</section>")
    # calibration
    cal = m["calibration"]
    calp = _plot(lambda ax: (ax.plot([0, 1], [0, 1], "k:", lw=1),
                             ax.plot(cal["mean_score"], cal["fraction_p2p"], "o-"),
                             ax.set_xlabel("mean score in bin"), ax.set_ylabel("fraction p2p"),
                             ax.set_title("Calibration (10 score bins)")), 4.5, 3.6)
    parts.append(f"<section id='calibration'><h2>Calibration</h2>{_img(calp, 'calibration curve')}"
                 "<p class='note'>Scores are trained with class weights (scale_pos_weight), so they "
                 "overstate P(p2p) at the training prevalence; the threshold, not 0.5, is the decision.</p></section>")
    # groups
    cap_cols = GROUP_COLS + [("seen_in_training", "in training", False)]
    caps = sorted(m["per_capture"], key=lambda r: (-(r["missed"] + r["false_positives"]), r["name"]))
    parts.append("<section id='per-capture'><h2>Per capture</h2><p class='note'>Worst first (missed + false "
                 "positives).</p>" + _table(caps, cap_cols, limit=60) + "</section>")
    apps = sorted(m["per_app"], key=lambda r: (-r["p2p"], -r["flows"]))
    parts.append("<section id='per-app'><h2>Per application</h2><p class='note'>Recall for P2P applications, "
                 "FPR for ordinary ones. Apps come from the labels (generator app names, or nDPI's "
                 "application for DPI-labelled captures).</p>" + _table(apps, GROUP_COLS, limit=80))
    if m.get("p2p_by_ndpi_app"):
        parts.append("<h3>P2P flows by nDPI's verdict</h3><p class='note'>Where nDPI says <code>Unknown</code> "
                     "(e.g. MSE-encrypted BitTorrent over TCP) only flow statistics can find the flow.</p>"
                     + _table(m["p2p_by_ndpi_app"], GROUP_COLS[:5] + [GROUP_COLS[5]]))
    parts.append("</section>")
    # importance
    imp = m["importance"][:25]

    def impplot(ax):
        names = [r["feature"] for r in imp][::-1]
        ax.barh(names, [r["mean_abs_shap"] for r in imp][::-1], color="tab:purple")
        ax.set_xlabel("mean |SHAP| (log-odds)")
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title("Top features by mean |SHAP|")
    parts.append(f"<section id='importance'><h2>Global feature importance</h2>{_img(_plot(impplot, 7, 6), 'feature importance')}"
                 + _table(m["importance_groups"], [("group", "group", False), ("gain_share", "gain share", True),
                                                   ("mean_abs_shap", "mean |SHAP|", False)])
                 + _table(m["importance"], [("feature", "feature", False), ("group", "group", False),
                                            ("gain_share", "gain share", True),
                                            ("mean_abs_shap", "mean |SHAP|", False)], limit=40)
                 + "</section>")
    # early verdicts (real snapshots)
    ev = m.get("early_verdicts")
    if ev:
        rows = [{"weight": w, **ev[w]} for w in ("flow", "byte") if w in ev]
        parts.append(f"<section id='early-verdicts'><h2>Early verdicts at {ev['packets']} packets</h2>"
                     f"<p class='note'>{html.escape(ev['meaning'])} {ev['flows_reaching']:,} flows reach it.</p>"
                     + _table(rows, [("weight", "", False), ("precision", "precision", True),
                                     ("recall", "recall", True), ("fpr", "FPR", True)]) + "</section>")
    # early detection
    ed = m.get("early_detection")
    if ed:
        pts = ed["points"]

        def early(ax):
            ks = [p["k"] for p in pts]
            ax.plot(ks, [p["recall"] for p in pts], "o-", label="recall")
            ax.plot(ks, [p["roc_auc"] for p in pts], "s-", label="ROC AUC")
            ax.plot(ks, [p["fpr"] for p in pts], "^-", label="FPR")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("packets seen (k)")
            ax.legend()
            ax.set_title("Early detection")
        parts.append(f"<section id='early-detection'><h2>Early detection</h2><p class='note'>"
                     f"{html.escape(ed['meaning'])}</p>{_img(_plot(early, 6, 3.6), 'early detection curve')}"
                     + _table(pts, [("k", "k", False), ("recall", "recall", True), ("fpr", "FPR", True),
                                    ("precision", "precision", True), ("roc_auc", "ROC AUC", False)]) + "</section>")
    # ablation
    ab = m.get("ablation")
    if ab:
        rows = []
        for name in ("with_ports", "without_ports"):
            s = ab[name]
            rows.append({"weight": name.replace("_", " "), "precision": s["flow"]["precision"],
                         "recall": s["flow"]["recall"], "byte_recall": s["byte"]["recall"],
                         "fpr": s["flow"]["fpr"], "roc_auc": s["roc_auc"],
                         "unknown": s["p2p_ndpi_unknown"].get("tcp", {}).get("recall")})
        for name in ("with_ports", "without_ports"):
            for sname, r in (ab[name].get("by_label_source") or {}).items():
                rows.append({"weight": f"{name.replace('_', ' ')}: {sname}", "precision": r["flow"]["precision"],
                             "recall": r["flow"]["recall"], "byte_recall": r["byte"]["recall"],
                             "fpr": r["flow"]["fpr"], "roc_auc": None, "unknown": None})
        parts.append(f"<section id='ablation'><h2>Port ablation</h2><p>Method: {html.escape(ab['method'])}. Removed "
                     f"features: {html.escape(', '.join(ab['port_features']))}. Recall drop without port "
                     f"features: {_fmt(ab.get('recall_drop_points'))} points.</p>"
                     + _table(rows, [("weight", "model", False), ("precision", "precision", True),
                                     ("recall", "recall", True), ("byte_recall", "byte recall", True),
                                     ("fpr", "FPR", True), ("roc_auc", "ROC AUC", False),
                                     ("unknown", "recall, TCP nDPI Unknown", True)]) + "</section>")
    else:
        parts.append("<section id='ablation'><h2>Port ablation</h2><p>Not run; pass <code>--ablation</code>."
                     "</p></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: str | os.PathLike, metrics: dict) -> Path:
    """Write metrics.json and report.html into out, atomically (temp dir, then rename)."""
    out = check_report_path(out)
    page = render_html(metrics)
    tmp = new_output_dir(out)
    try:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, default=_default) + "\n", encoding="utf-8")
        (tmp / "report.html").write_text(page, encoding="utf-8")
        commit_dir(tmp, out)
    except OSError as err:
        raise OutputError(f"{out}: cannot write the report ({err.strerror or err}); check free space "
                          f"and permissions") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_report_path(out: str | os.PathLike) -> Path:
    """Fail early when a report directory cannot be written (an earlier report is replaced)."""
    return check_output_dir(out, "report", lambda p: {q.name for q in p.iterdir()} <= set(REPORT_FILES))


def _default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)
