"""The analysis stage (``analyze``): media files in, one result row per input out.

Takes images, videos and folders (and a checkpoint); gives ``results.jsonl`` / ``results.csv`` /
``faces.csv`` rows, rendered panels and maps, ``run.json`` and ``report.html``. The stages, in
the order the data flows:

- ``options``: :class:`AnalyzeOptions` (what the user asked) and :class:`RunSummary` (what happened);
- ``pipeline``: :func:`analyze`: discover inputs, decode and find faces in DataLoader workers,
  batch the model and Grad-CAM++, write rows in input order;
- ``image``: one image's load, row and panel (also what the web service uses);
- ``video_chunks`` (worker side: decode, faces, chunks), ``video`` (tracks, aggregation, rows),
  ``video_consistency`` (attention consistency along the tracks) and ``video_render`` (contact sheet, timeline, annotated video);
- ``results``: the row types and their writers; ``report``: the HTML report;
- ``sharding`` and ``ranks``: several processes under ``torchrun``, and ``--resume``.
"""

from .options import AnalyzeOptions, RunSummary
from .pipeline import analyze

__all__ = ["AnalyzeOptions", "RunSummary", "analyze"]
