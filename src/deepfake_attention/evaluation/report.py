"""The self-contained HTML report of ``evaluate``: tables and matplotlib figures embedded as
base64 PNG data URIs, so the one file can be mailed or archived and viewed anywhere.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (Agg canvas, no pyplot state),
at 100 dpi. Every section is always present; one that could not be computed says why.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..explain.render import overlay
from ..files import atomic_write_bytes
from .sections import Example

DPI = 100
LOC_METRICS = {"pixel_auc": "pixel AUC", "pointing_game": "pointing", "energy": "energy", "iou": "IoU", "pearson": "Pearson"}
MAP_NAMES = {"attention": "attention gate", "gradcampp": "Grad-CAM++", "baseline": "mean-mask baseline", "random": "random map"}
EXAMPLE_GROUPS = (
    ("fake/high", "fakes, most confident (highest P(fake))"),
    ("fake/low", "fakes, least confident (lowest P(fake): misses first)"),
    ("real/low", "reals, most confident (lowest P(fake))"),
    ("real/high", "reals, least confident (highest P(fake): false alarms first)"),
)
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1150px}
table{border-collapse:collapse;margin:.5rem 0}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}
.banner{background:#b00020;color:#fff;padding:.6rem 1rem;font-weight:700}.note{color:#8a6d00}
img{max-width:100%;border:1px solid #ddd;margin:.3rem}small{color:#555}h2{margin-top:2rem;border-bottom:2px solid #eee}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _n(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else _e(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_n(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _img(fig: Figure, alt: str) -> str:
    """The figure as an ``<img>`` with a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img src='data:image/png;base64,{data}' alt='{_e(alt)}'>"


def _missing(section: dict[str, Any] | None, what: str) -> str:
    reason = (section or {}).get("unavailable") or f"{what} was not computed for this run."
    return f"<p class='note'>{_e(reason)}</p>"


def _classification(m: dict[str, Any]) -> str:
    c = m["classification"]
    ci = c.get("auc_ci")
    auc = _n(c["auc_roc"]) + (f" (95% CI {ci['low']:.3f}-{ci['high']:.3f}, {ci['n']} stratified bootstrap replicates)" if ci else "")
    parts = ["<h2 id='classification'>Detection</h2>", _missing(c, "") if c.get("unavailable") else ""]
    parts.append(_table(("metric", "value"), [
        ("threshold", c["threshold"]), ("accuracy", c["accuracy"]), ("precision", c["precision"]), ("recall", c["recall"]),
        ("F1", c["f1"]), ("AUC-ROC", auc), ("average precision", c["average_precision"]), ("EER", c["eer"]), ("reals / fakes", f"{c['n_real']} / {c['n_fake']}"),
    ]))
    op = c["operating_point"]
    if op.get("threshold") is not None:
        ev = op["evaluation"]
        parts.append(f"<p>Threshold for a target FPR of {op['target_fpr']:g}: <b>{op['threshold']:.4f}</b>, {_e(op['label'])}; "
                     f"on the evaluation set it gives FPR {_n(ev['fpr'])}, TPR {_n(ev['tpr'])}, accuracy {_n(ev['accuracy'])}.</p>")
    fig = _figure(7.5, 3.2)
    ax = fig.add_subplot(1, 2, 1)
    if c.get("roc"):
        ax.plot(c["roc"]["fpr"], c["roc"]["tpr"], lw=2, label=f"AUC {c['auc_roc']:.3f}")
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        conf = c["confusion"]
        ax.plot(conf["fp"] / max(1, conf["fp"] + conf["tn"]), conf["tp"] / max(1, conf["tp"] + conf["fn"]), "o", color="C3", label=f"threshold {c['threshold']:.3f}")
        ax.plot(c["eer"], 1 - c["eer"], "s", color="C2", label=f"EER {c['eer']:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC curve", xlim=(0, 1), ylim=(0, 1.02))
    ax = fig.add_subplot(1, 2, 2)
    conf = c["confusion"]
    grid = np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > grid.max() / 2 else "black", fontsize=12)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "fake"], yticklabels=["real", "fake"], xlabel="predicted", ylabel="actual", title="confusion matrix")
    parts.append(_img(fig, "ROC curve and confusion matrix"))
    return "\n".join(parts)


def _fake_types(m: dict[str, Any]) -> str:
    kinds = m.get("fake_types")
    if not kinds:
        return ""
    rows = [(name, t["n_fake"], t["auc"], f"{t['auc_ci']['low']:.3f}-{t['auc_ci']['high']:.3f}" if t["auc_ci"] else "-", t["tpr"]) for name, t in kinds["types"].items()]
    return "\n".join([
        "<h2 id='fake-types'>Per kind of fake</h2>",
        f"<p>Each kind's fakes against all {kinds['n_real']} reals (their false-positive rate at the threshold: {kinds['fpr']:.3f}). "
        "A fake's kind is its <code>video_id</code> prefix before <code>/</code>, else the folder under <code>fake/</code>.</p>",
        _table(("kind", "fakes", "AUC", "95% CI", "TPR at the threshold"), rows),
    ])


def _fitted_name(fitted: dict[str, Any]) -> str:
    """``fitted T = 1.234``, with ``, offset -0.567`` for an affine fit."""
    offset = f", offset {fitted['offset']:+.3f}" if fitted.get("kind") == "affine" else ""
    return f"fitted T = {fitted['temperature']:.3f}{offset}"


def _calibration(m: dict[str, Any]) -> str:
    cal = m["calibration"]
    rows = [(f"checkpoint T = {cal['temperature']:g}", cal["checkpoint"]["ece"], cal["checkpoint"]["brier"], cal["checkpoint"]["nll"])]
    curves = [(f"checkpoint T = {cal['temperature']:g}", cal["checkpoint"]["reliability"])]
    fitted = cal.get("fitted")
    if fitted:
        after = fitted["after"]
        rows.append((_fitted_name(fitted), after["ece"], after["brier"], after["nll"]))
        curves.append((_fitted_name(fitted), after["reliability"]))
    parts = ["<h2 id='calibration'>Calibration</h2>",
             "<p><small>ECE of P(fake) with 15 equal-width bins (fraction of fakes vs mean P(fake) per bin), Brier score and NLL.</small></p>",
             _table(("scaling", "ECE", "Brier", "NLL"), rows)]
    if fitted:
        fit = fitted["fit"]
        what = "T and an offset" if fitted.get("kind") == "affine" else "T"
        parts.append(f"<p>{what} fitted on the calibration split, T within [{fit['bounds'][0]:g}, {fit['bounds'][1]:g}]"
                     f"{' (at a bound: check the split)' if fit['at_bound'] else ''}; to keep today's decisions with it, "
                     f"use threshold {fitted['threshold_equivalent']:.4f}.</p>")
    else:
        parts.append("<p class='note'>No calibration split was given: the temperature was not refitted.</p>")
    fig = _figure(3.6, 3.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    for k, (name, diagram) in enumerate(curves):
        pts = [(c, a) for c, a in zip(diagram["confidence"], diagram["accuracy"]) if a is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", color=f"C{k}", label=f"{name} (ECE {diagram['ece']:.3f})")
    ax.set(xlabel="mean P(fake) in bin", ylabel="fraction of fakes", title="reliability diagram", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper left")
    parts.append(_img(fig, "reliability diagram"))
    return "\n".join(parts)


def _localization(m: dict[str, Any]) -> str:
    loc = m["localization"]
    parts = ["<h2 id='localisation'>Localisation</h2>",
             "<p><small>On fakes with a mask only. Each map is scored against the soft forgery mask M and against the blending "
             "boundary 4M(1-M): pixel-level AUC, pointing game (peak inside), energy inside, IoU of the map thresholded at 0.5 "
             "after min-max, Pearson correlation. The baseline uses one map for every face: the mean mask.</small></p>"]
    if not loc:
        return "\n".join(parts + [_missing(None, "Localisation (no fake with a readable mask)"), _focus(m["focus"])])
    parts.append(f"<p>{loc['count']} fakes with masks. Baseline: <b>{_e(loc['baseline'])}</b>, {_e(loc['baseline_description'])} ({loc['baseline_masks']} masks)"
                 + (": it has seen the test masks, so it is an upper bound for any fixed map." if loc["baseline"].startswith("optimistic") else ".") + "</p>")
    fig = _figure(8.0, 3.0)
    for k, target in enumerate(("mask", "boundary")):
        ax = fig.add_subplot(1, 2, k + 1)
        series = {"attention": loc["attention"][target], "gradcampp": loc["gradcampp"][target]}
        values = {name: [(s[metric]["map"]["mean"] if s[metric]["map"]["mean"] is not None else np.nan) for metric in LOC_METRICS] for name, s in series.items()}
        values["baseline"] = [(b["mean"] if (b := series["attention"][metric]["baseline"]) and b["mean"] is not None else np.nan) for metric in LOC_METRICS]
        x = np.arange(len(LOC_METRICS))
        for j, (name, vals) in enumerate(values.items()):
            ax.bar(x + (j - 1) * 0.27, vals, width=0.27, label=MAP_NAMES[name], color=f"C{j}")
        ax.set_xticks(x, list(LOC_METRICS.values()), fontsize=8)
        ax.set(title=f"against the {target}", ylim=(min(0, np.nanmin(sum(values.values(), [0.0]))), 1))
        ax.legend(fontsize=7)
        parts.append(f"<h3>against the {target}</h3>" + _table(
            ("metric", *(MAP_NAMES[n] for n in values), "count (undefined)"),
            [(LOC_METRICS[metric], *(v[i] if np.isfinite(v[i]) else None for v in values.values()),
              f"{series['gradcampp'][metric]['map']['count']} ({series['gradcampp'][metric]['map']['undefined']})") for i, metric in enumerate(LOC_METRICS)]))
    parts.append(_img(fig, "localisation bars"))
    return "\n".join(parts + [_focus(m["focus"])])


def _focus(focus: dict[str, Any]) -> str:
    rows = [(MAP_NAMES[n], (focus.get(f"{n}/real") or {}).get("mean"), (focus.get(f"{n}/fake") or {}).get("mean")) for n in ("attention", "gradcampp")]
    return ("<p>Focus: normalised entropy H(p)/log(HW) of each map as a distribution (1 = uniform, 0 = a single pixel), all faces:</p>"
            + _table(("map", "reals", "fakes"), rows))


def _faithfulness(m: dict[str, Any]) -> str:
    f = m["faithfulness"]
    parts = ["<h2 id='faithfulness'>Faithfulness</h2>",
             "<p><small>Average Drop % (lower is better) and % Increase in Confidence (higher is better), Grad-CAM++ paper Sec. 6.1: "
             "correctly classified fakes, P(fake) of the crop times the map (pixel space) vs of the crop.</small></p>",
             _table(("map", "Average Drop %", "Increase in Confidence %", "fakes"),
                    [(MAP_NAMES[n], f[n]["average_drop"], f[n]["increase_in_confidence"], f[n]["count"]) for n in ("gradcampp", "attention")])]
    causal = f.get("causal")
    if not causal:
        return "\n".join(parts + [_missing(None, "Deletion/insertion and the randomisation check")])
    names = [n for n in ("gradcampp", "attention", "random") if n in causal]
    parts.append(f"<p>Deletion (lower is better) and insertion (higher is better) AUC of P(fake), {causal['count']} fakes, {causal['steps']} steps:</p>")
    parts.append(_table(("map", "deletion AUC", "insertion AUC"),
                        [(MAP_NAMES[n], causal[n]["deletion"]["auc"]["mean"], causal[n]["insertion"]["auc"]["mean"]) for n in names]))
    fig = _figure(7.0, 2.8)
    for k, mode in enumerate(("deletion", "insertion")):
        ax = fig.add_subplot(1, 2, k + 1)
        for j, n in enumerate(names):
            ax.plot(causal[n][mode]["fractions"], causal[n][mode]["mean_curve"], color=f"C{j}", label=MAP_NAMES[n])
        ax.set(xlabel="fraction of pixels", ylabel="mean P(fake)", title=mode, ylim=(0, 1))
        ax.legend(fontsize=7)
    parts.append(_img(fig, "deletion and insertion curves"))
    rnd = f["randomization"]
    parts.append("<p>Model-randomisation sanity check (Adebayo et al. 2018): similarity of the trained model's maps with those of "
                 "copies whose weights are re-initialised. Low values mean the map depends on what the model learned. The attention gate "
                 "is computed before the classifier, so re-initialising the classifier alone leaves it unchanged (similarity 1).</p>")
    parts.append(_table(("weights re-initialised", "map", "Spearman", "SSIM"),
                        [(variant.replace("_", " "), MAP_NAMES[n], rnd[variant][n]["spearman"]["mean"], rnd[variant][n]["ssim"]["mean"])
                         for variant in ("classifier", "all_layers") for n in ("gradcampp", "attention")]))
    return "\n".join(parts)


def _video(m: dict[str, Any]) -> str:
    v = m["video"]
    parts = ["<h2 id='video'>Video level</h2>"]
    if not v:
        return "\n".join(parts + [_missing(None, "Video-level scoring (no row has a video_id and a frame)")])
    parts.append(f"<p>{v['frames']} frames of {v['videos']} videos; frame-level AUC {_n(v['frame_auc'])}. One face track per video: "
                 "track-mean-then-max is the mean of its frames, frame-max-then-mean the same here.</p>")
    for key in ("note", "unavailable"):
        if v.get(key):
            parts.append(f"<p class='note'>{_e(v[key])}</p>")
    parts.append(_table(("aggregation", "AUC", "AP", "accuracy", "reals", "fakes"),
                        [(k, r["auc"], r["average_precision"], r["accuracy"], r["n_real"], r["n_fake"]) for k, r in v["methods"].items()]))
    return "\n".join(parts)


def _robustness(m: dict[str, Any]) -> str:
    r = m["robustness"]
    parts = ["<h2 id='robustness'>Robustness</h2>"]
    if not r:
        return "\n".join(parts + [_missing(None, "Robustness (run with --robustness)")])
    if r.get("unavailable"):
        parts.append(_missing(r, ""))
    key = "auc" if r["clean"]["auc"] is not None else "accuracy"
    kinds = list(dict.fromkeys(e["kind"] for e in r["levels"].values()))
    fig = _figure(2.3 * len(kinds), 2.6)
    for k, kind in enumerate(kinds):
        ax = fig.add_subplot(1, len(kinds), k + 1)
        entries = [e for e in r["levels"].values() if e["kind"] == kind]
        ax.plot(range(len(entries)), [e[key] if e[key] is not None else np.nan for e in entries], "o-")
        ax.axhline(r["clean"][key], ls="--", color="grey", label="clean")
        ax.set_xticks(range(len(entries)), [f"{e['level']:g}" for e in entries])
        ax.set(title=kind, ylim=(0, 1.02), ylabel=key.upper() if k == 0 else None)
        ax.legend(fontsize=7)
    parts.append(_img(fig, "robustness curves"))
    parts.append(_table(("perturbation", "AUC", "accuracy", "mean P(fake) reals", "mean P(fake) fakes"),
                        [("clean", r["clean"]["auc"], r["clean"]["accuracy"], r["clean"]["mean_prob_real"], r["clean"]["mean_prob_fake"])]
                        + [(name, e["auc"], e["accuracy"], e["mean_prob_real"], e["mean_prob_fake"]) for name, e in r["levels"].items()]))
    return "\n".join(parts)


def _examples(examples: dict[str, list[Example]]) -> str:
    parts = ["<h2 id='examples'>Most and least confident examples</h2>",
             "<p>Each example: the crop as the model saw it, the <b>attention gate</b> (where the model looks, computed before any "
             "evidence is weighed; absolute 0-1 scale) and <b>Grad-CAM++</b> of fake-minus-real (what drove the fake score), drawn with "
             "opacity proportional to P(fake), so a confidently real face shows little colour. Colour: inferno, dark = 0, yellow = 1.</p>"]
    k = max((len(v) for v in examples.values()), default=0)
    if k == 0:
        return "\n".join(parts + ["<p class='note'>No examples kept (top_k = 0).</p>"])
    for group, label in EXAMPLE_GROUPS:
        items = examples.get(group, [])
        parts.append(f"<h3>{_e(label)}</h3>")
        if not items:
            parts.append("<p class='note'>none in this set</p>")
            continue
        fig = _figure(3 * len(items) * 1.05, 1.3)
        for j, ex in enumerate(items):
            tiles = (ex.crop, overlay(ex.crop, ex.attention, 1.0), overlay(ex.crop, ex.gradcampp, float(np.clip(ex.prob_fake, 0.0, 1.0))))
            for t, (tile, title) in enumerate(zip(tiles, (f"P(fake)={ex.prob_fake:.2f}", "attention", "Grad-CAM++"))):
                ax = fig.add_subplot(1, 3 * len(items), 3 * j + t + 1)
                ax.imshow(tile)
                ax.set_title(title, fontsize=7)
                ax.axis("off")
        parts.append(_img(fig, label))
    names = [(label, ex.path, ex.prob_fake) for group, label in EXAMPLE_GROUPS for ex in examples.get(group, [])]
    parts.append("<details><summary>files</summary>" + _table(("group", "file", "P(fake)"), names) + "</details>")
    return "\n".join(parts)


def write_eval_report(metrics: dict[str, Any], examples: dict[str, list[Example]], path: str | Path) -> Path:
    """Write the report of one ``evaluate`` run (``metrics`` as in ``metrics.json``) to ``path``."""
    path = Path(path)
    model, counts = metrics["model"], metrics["counts"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>deepfake-attention evaluation</title><style>{_STYLE}</style></head><body>"]
    if not model["trained"]:
        parts.append("<p class='banner'>UNTRAINED placeholder model: every number below is meaningless.</p>")
    parts.append(f"<h1>deepfake-attention evaluation</h1><p>{counts['evaluated']} of {counts['rows']} crops evaluated "
                 f"({counts['real']} real, {counts['fake']} fake, {counts['fake_with_mask']} fakes with masks); {counts['errors']} unreadable files. "
                 f"Model {_e(model['sha256'][:12])}, input {model['size']} px, checkpoint T = {model['temperature']:g}, threshold used {metrics['threshold']:.3f}. "
                 f"<small>{_e(metrics['scores'])}. All numbers: metrics.json beside this file.</small></p>")
    parts += [f"<p class='note'>{_e(note)}</p>" for note in metrics["notes"]]
    parts += [_classification(metrics), _fake_types(metrics), _calibration(metrics), _localization(metrics), _faithfulness(metrics), _video(metrics), _robustness(metrics), _examples(examples)]
    parts.append("<h2 id='errors'>Errors</h2>")
    parts.append(_table(("file", "column", "split", "message"), [(e["path"], e["column"], e["split"], e["message"]) for e in metrics["errors"]])
                 if metrics["errors"] else "<p>Every file could be read.</p>")
    parts.append(f"<p><small>Command: {_e(metrics['command'])}</small></p></body></html>")
    atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))
    return path


def text_summary(metrics: dict[str, Any]) -> str:
    """A few lines for the command line: counts, detection (per kind of fake too), calibration, localisation, robustness."""
    c, counts = metrics["classification"], metrics["counts"]
    lines = ["WARNING: UNTRAINED placeholder model - every number is meaningless."] if not metrics["model"]["trained"] else []
    lines.append(f"{counts['evaluated']} of {counts['rows']} crops evaluated ({counts['real']} real, {counts['fake']} fake); {counts['errors']} unreadable files")
    ci = c.get("auc_ci")
    lines.append(f"AUC {_n(c['auc_roc'])}" + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "") + f", AP {_n(c['average_precision'])}, EER {_n(c['eer'])}, "
                 f"accuracy {_n(c['accuracy'])} at threshold {c['threshold']:.3f}" + (f" ({c['unavailable']})" if c.get("unavailable") else ""))
    if metrics.get("fake_types"):
        lines.append("per kind of fake: " + ", ".join(f"{name} AUC {_n(t['auc'])} (TPR {_n(t['tpr'])})" for name, t in metrics["fake_types"]["types"].items()))
    cal = metrics["calibration"]
    fitted = cal.get("fitted")
    lines.append(f"ECE {_n(cal['checkpoint']['ece'])} at T = {cal['temperature']:g}"
                 + (f"; {_fitted_name(fitted)}: ECE {_n(fitted['after']['ece'])}" if fitted else ""))
    loc = metrics["localization"]
    if loc:
        auc = {n: loc[n]["mask"]["pixel_auc"]["map"]["mean"] for n in ("attention", "gradcampp")}
        lines.append(f"pixel AUC vs mask: attention {_n(auc['attention'])}, Grad-CAM++ {_n(auc['gradcampp'])}, "
                     f"{loc['baseline']} {_n((loc['gradcampp']['mask']['pixel_auc']['baseline'] or {}).get('mean'))}")
    rob = metrics["robustness"]
    if rob and rob["clean"]["auc"] is not None:
        name, worst = min(rob["levels"].items(), key=lambda item: item[1]["auc"] if item[1]["auc"] is not None else 2.0)
        lines.append(f"robustness: clean AUC {_n(rob['clean']['auc'])}, lowest {_n(worst['auc'])} under {name}")
    return "\n".join(lines)
