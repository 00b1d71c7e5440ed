"""The HTML report of an ``analyze`` run: counts, a table of rows and their panels."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..detector import Detector
    from .options import RunSummary

MAX_ROWS = 500
"""Rows shown in the report; ``results.csv`` always has them all."""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
.fake{color:#b00020;font-weight:600}.real{color:#1b5e20}.error{color:#8a6d00}.banner{background:#b00020;color:#fff;padding:.6rem 1rem;font-weight:700}
img{max-width:100%;border:1px solid #ccc}small{color:#555}
"""


def _cell(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _video_cell(extra: dict) -> str:
    """A video row's extras: sampled frames, frames without a face, tracks, warnings, timeline and annotated video."""
    frames = extra.get("frames") or []
    tracks = extra.get("tracks") or []
    parts = [f"<br><small>{len(frames)} sampled frames, {extra.get('frames_without_face', 0)} without a face; "
             f"{len(tracks)} face track(s), scored by {_cell(extra.get('aggregation'))} per track, max over tracks</small>"]
    for track in tracks:
        consistency = track.get("consistency", {}).get("mean")
        parts.append(f"<br><small>track {track['track_id']}: {track['frames']} frames, P(fake) {track['prob_fake']:.3f}, attention consistency "
                     f"{'n/a' if consistency is None else f'{consistency:.2f}'}, {len(track.get('low_consistency_samples', []))} low</small>")
    if extra.get("warning"):
        parts.append(f"<br><small class='error'>{_cell(extra['warning'])}</small>")
    if extra.get("timeline_png"):
        parts.append(f"<br><a href='{_cell(extra['timeline_png'])}'><img src='{_cell(extra['timeline_png'])}' alt='timeline' width='480'></a>")
    if extra.get("annotated_video"):
        parts.append(f"<br><a href='{_cell(extra['annotated_video'])}'>annotated video</a>")
    return "".join(parts)


def write_analysis_report(summary: "RunSummary", detector: "Detector", threshold: float) -> None:
    """Write ``report.html`` beside the results; panel images are linked relative to it."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>deepfake-attention report</title><style>{_STYLE}</style></head><body>"]
    if summary.untrained:
        parts.append("<p class='banner'>UNTRAINED placeholder model: every score below is meaningless.</p>")
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    parts.append(f"<h1>deepfake-attention: {len(summary.rows)} inputs</h1><p>{_cell(counts)}. Threshold {threshold:.3f}; "
                 f"model {_cell(detector.model_sha256[:12])}. Full rows: <a href='results.csv'>results.csv</a>, "
                 f"<a href='results.jsonl'>results.jsonl</a>, <a href='faces.csv'>faces.csv</a>, <a href='run.json'>run.json</a>.</p>")
    if summary.skipped:
        parts.append(f"<p><small>{len(summary.skipped)} entries inside the input folders are not inputs (hidden, not media, special "
                     "files, links to folders, output folders); run.json lists each with the reason.</small></p>")
    parts.append("<p><small>P(fake) is calibrated per face; an image scores the maximum over its faces, a video the maximum "
                 "over its face tracks of each track's frame scores (mean by default). "
                 "The attention gate shows where the model looks (absolute 0-1 scale); Grad-CAM++ shows what drove "
                 "the fake score, drawn with opacity proportional to P(fake).</small></p>")
    parts.append("<table><tr><th>#</th><th>input</th><th>status</th><th>P(fake)</th><th>label</th><th>faces</th><th>panel</th></tr>")
    for k, row in enumerate(summary.rows[:MAX_ROWS]):
        prob = "" if row.prob_fake is None else f"{row.prob_fake:.3f}"
        label = f"<span class='{_cell(row.label)}'>{_cell(row.label)}</span>" if row.label else f"<span class='error'>{_cell(row.error)}</span>"
        panel = f"<a href='{_cell(row.panel)}'><img src='{_cell(row.panel)}' alt='panel for {_cell(row.path)}' width='480'></a>" if row.panel else ""
        panel += "".join(f"<br><small>face {d.face_index}: {_cell(d.words)}</small>" for d in row.detections if d.words)
        if row.kind == "video":
            panel += _video_cell(row.extra)
        parts.append(f"<tr><td>{k}</td><td>{_cell(row.path)}</td><td>{_cell(row.status)}</td><td>{prob}</td><td>{label}</td><td>{row.faces}</td><td>{panel}</td></tr>")
    parts.append("</table>")
    if len(summary.rows) > MAX_ROWS:
        parts.append(f"<p>{len(summary.rows) - MAX_ROWS} more rows in results.csv.</p>")
    parts.append("</body></html>")
    (summary.out_dir / "report.html").write_text("\n".join(parts), encoding="utf-8")
