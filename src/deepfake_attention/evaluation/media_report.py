"""The report of ``evaluate_media``: a self-contained HTML page (tables per level, the media-level
ROC curves, the files without a score) and the few lines the command line prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes
from .report import _STYLE, _e, _figure, _img, _n, _table

LEVEL_TITLES = {"media_level": "Media level (one score per file)", "face_level": "Face level (every scored face, with its file's label)"}
MAX_LISTED = 200


def _files(counts: dict[str, int]) -> str:
    """``12 (1 no face, 0 errors)``: a group's files and those without a score."""
    return f"{counts['total']} ({counts['no_face']} no face, {counts['error']} err)"


def _auc(entry: dict[str, Any]) -> str:
    ci = entry.get("auc_ci")
    return _n(entry["auc"]) + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "")


def _group_rows(level: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for name, group in [("all fakes (overall)", level["overall"])] + [(t, g) for t, g in level["by_type"].items()]:
        s, m = group["scored"], group["missing_at_half"]
        rows.append((name, _files(group["files"]["fake"]), _files(group["files"]["real"]), f"{s['n_fake']} / {s['n_real']}",
                     _auc(s), _auc(m), s["tpr"], s["fpr"], m["tpr"], m["fpr"]))
    return rows


def _level(name: str, level: dict[str, Any], threshold: float) -> str:
    unit = "faces" if level["unit"] == "face" else "files"
    parts = [f"<h2 id='{name}'>{_e(LEVEL_TITLES[name])}</h2>",
             (f"<p><small>Each manipulation type: its fakes against <b>all</b> reals. TPR and FPR at threshold {threshold:.3f}. "
              f"'scored': {unit} with a score only; 'at 0.5': every file without a face or unreadable counted once at P(fake) = 0.5.</small></p>"),
             _table(("fakes", "fake files (no face, errors)", "real files (no face, errors)", f"scored {unit} fake / real", "AUC scored [95% CI]",
                     "AUC at 0.5 [95% CI]", "TPR", "FPR", "TPR at 0.5", "FPR at 0.5"), _group_rows(level)),
             "<p>Reals by source: false-positive rate at the threshold.</p>",
             _table(("source", "real files (no face, errors)", f"scored {unit}", "FPR", "FPR at 0.5"),
                    [(s, _files(g["files"]), g["scored"]["n"], g["scored"]["fpr"], g["missing_at_half"]["fpr"]) for s, g in level["by_source"].items()])]
    notes = {g.get("unavailable") for g in [level["overall"], *level["by_type"].values()] for g in (g["scored"], g["missing_at_half"])} - {None}
    parts += [f"<p class='note'>{_e(note)}</p>" for note in sorted(notes)]
    return "\n".join(parts)


def _roc(level: dict[str, Any]) -> str:
    curves = [("all fakes", level["overall"]["scored"])] + [(t, g["scored"]) for t, g in level["by_type"].items()]
    curves = [(name, entry) for name, entry in curves if entry.get("roc")]
    if not curves:
        return "<p class='note'>No ROC curve: a group needs scored reals and fakes.</p>"
    fig = _figure(4.2, 3.6)
    ax = fig.add_subplot()
    for k, (name, entry) in enumerate(curves):
        ax.plot(entry["roc"]["fpr"], entry["roc"]["tpr"], color=f"C{k}", lw=2.5 if k == 0 else 1.3, label=f"{name} (AUC {entry['auc']:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC, media level, scored files", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    return _img(fig, "media-level ROC curves")


def _listed(title: str, entries: list[dict[str, Any]], empty: str) -> str:
    if not entries:
        return f"<h2>{_e(title)}</h2><p>{_e(empty)}</p>"
    more = f"<p class='note'>{len(entries) - MAX_LISTED} more in metrics.json</p>" if len(entries) > MAX_LISTED else ""
    return (f"<h2>{_e(title)} ({len(entries)})</h2>"
            + _table(("file", "label", "type / source", "message"), [(e["path"], e["label"], e["group"], e["message"]) for e in entries[:MAX_LISTED]]) + more)


def write_media_report(metrics: dict[str, Any], path: str | Path) -> Path:
    """Write the report of one ``evaluate_media`` run (``metrics`` as in ``metrics.json``) to ``path``."""
    path = Path(path)
    model, counts, media = metrics["model"], metrics["counts"], metrics["media"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>deepfake-attention media evaluation</title><style>{_STYLE}</style></head><body>"]
    if not model["trained"]:
        parts.append("<p class='banner'>UNTRAINED placeholder model: every number below is meaningless.</p>")
    parts.append(f"<h1>deepfake-attention media evaluation</h1><p>{_summary_line(counts)}. Model {_e(model['sha256'][:12])}, "
                 f"face detector {_e(model['face_detector'])}, input {model['size']} px, T = {model['temperature']:g}, threshold {metrics['threshold']:.3f}. "
                 f"<small>{_e(metrics['scores'])}.</small></p>")
    parts.append(f"<p><small>{_e(media['convention'])} The analysis (rows, per-frame scores, tracks) is in "
                 f"<a href='{_e(metrics['analysis']['report'])}'>{_e(metrics['analysis']['report'])}</a>; labelled scores per file in files.csv; "
                 "all numbers in metrics.json beside this file.</small></p>")
    parts += [f"<p class='note'>{_e(note)}</p>" for note in metrics["notes"]]
    parts += [_level("media_level", media["media_level"], metrics["threshold"]), _roc(media["media_level"]),
              _level("face_level", media["face_level"], metrics["threshold"])]
    parts.append(_listed("Unreadable files", metrics["errors"], "Every file could be read."))
    parts.append(_listed("Files without a face", metrics["no_face"], "A face was found in every readable file."))
    parts.append(f"<p><small>Command: {_e(metrics['command'])}</small></p></body></html>")
    atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))
    return path


def _summary_line(counts: dict[str, int]) -> str:
    return (f"{counts['files']} files ({counts['real']} real, {counts['fake']} fake; {counts['images']} images, {counts['videos']} videos): "
            f"{counts['ok']} scored, {counts['no_face']} without a face, {counts['error']} unreadable; {counts['faces']} scored faces")


def media_text_summary(metrics: dict[str, Any], *, max_errors: int = 10) -> str:
    """A few lines for the command line: counts, then per level a line per group, the reals' FPR per source, the errors."""
    media, threshold = metrics["media"], metrics["threshold"]
    lines = ["WARNING: UNTRAINED placeholder model - every number is meaningless."] if not metrics["model"]["trained"] else []
    lines.append(_summary_line(metrics["counts"]))
    for name, level in ((k, media[k]) for k in ("media_level", "face_level")):
        lines.append(f"{LEVEL_TITLES[name]}, threshold {threshold:.3f}; AUC scored / with no-face and unreadable files at 0.5:")
        width = max([len(t) for t in level["by_type"]] + [len("overall")])
        for group, entry in [("overall", level["overall"])] + list(level["by_type"].items()):
            s, m = entry["scored"], entry["missing_at_half"]
            lines.append(f"  {group:<{width}}  {entry['files']['fake']['total']:>5} fakes  AUC {_auc(s)} / {_auc(m)}  TPR {_n(s['tpr'])}  FPR {_n(s['fpr'])}")
        lines.append("  reals by source, FPR: " + ", ".join(f"{s} {_n(g['scored']['fpr'])} ({g['files']['total']} files)" for s, g in level["by_source"].items()))
    for entry in metrics["errors"][:max_errors]:
        lines.append(f"error: {entry['path']}: {entry['message']}")
    if len(metrics["errors"]) > max_errors:
        lines.append(f"... {len(metrics['errors']) - max_errors} more errors in metrics.json")
    return "\n".join(lines)
