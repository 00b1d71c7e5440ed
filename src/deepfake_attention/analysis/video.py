"""Videos in ``analyze``: sampled frames -> faces (in a DataLoader worker) -> chunks of face crops
-> batched scores with Grad-CAM++ (main process) -> face tracks, per-track scores, attention
consistency -> one result row, a timeline, a contact sheet and optionally an annotated video.

**Memory.** The worker (``video_chunks``) decodes sequentially (``data.video``: one or two frames
alive), finds the faces of each sampled frame and keeps only their crops resized to the model's
input size; it sends them in chunks of ``video_chunks.CHUNK_FRAMES`` sampled frames, so crops in
flight stay bounded however long the video or high the ``--fps``. The main process keeps per face-frame only its
box and scores (a few hundred bytes), plus its feature vector with ``--temporal-head`` (2 KiB) and
two 32x32 float16 maps with ``--annotate`` (4 KiB); attention consistency is computed on the fly
over a window of the last ``max_gap + 1`` frames (``video_consistency``), and the contact sheet keeps the
:data:`SHEET_FACES` best face-frames. The annotated video is written in a second decoding pass.

**Scores.** Per face track (``data.tracks.link_tracks`` on the boxes in original pixels) the
frames' P(fake) are reduced by ``aggregate`` (mean by default, median, or the mean of the
``topk`` highest) and the video's P(fake) is the max over the tracks that vote (``metrics.video``).
A track votes when it covers at least 25% of the sampled frames and its mean detection score
reaches its detector's floor (``data.detectors.DET_SCORE_FLOORS``; ``data.tracks.VotePolicy``): a
spurious box on the background, or a passer-by, does not decide the verdict. Tracks that do not
vote are still reported (``tracks[*].used`` false, ``vote_note`` saying why); when none qualifies,
the longest track votes and ``voting.fallback_longest`` says so. With ``temporal_head`` the
track score is the head's instead (uncalibrated: softmax of its logits).

**Attention consistency** (the seed's temporal metric), per track: the Pearson correlation of the
attention maps of consecutive frames of the track, face-aligned (``video_consistency``). A frame
whose consistency with its predecessor in the track is below ``consistency_threshold`` is marked
``low_consistency`` (and ringed on the timeline).

**Row.** The image row's fields with ``kind="video"``; ``faces`` counts face tracks and
``detections`` has one entry per track (``face_index`` = track id; the box, detector score and map
PNGs of the track's most suspicious frame; ``prob_fake`` the track's score), so ``faces.csv`` has
one row per track. ``extra`` adds ``frames`` (per sampled frame: ``sample_index``, ``frame_index``,
``time_s`` from PTS, and per face its box, ``prob_fake``, ``track_id``, ``consistency``,
``low_consistency``), ``tracks`` (per track: frame count, ``prob_mean`` / ``prob_median`` /
``prob_topk`` / ``prob_max``, ``det_score_mean``, the chosen ``prob_fake`` and ``label``, ``used`` and ``vote_note``, ``consistency`` mean and
counts, ``low_consistency_samples``, and ``temporal`` weights with the head), ``frames_without_face``,
``video`` (probe info), ``sampling``, ``aggregation``, ``voting``, ``warning``, ``timeline_png``,
``annotated_video`` and ``timings`` (decode, detect, model, render seconds).

**Damaged files.** Files that cannot be opened or yield no frame become error rows with
``data.video``'s message. A video that decodes only partly (truncated, damaged packets) is
scored on the frames it gave: status ``ok`` (or ``no_face``) with that message in ``warning``.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.detectors import DET_SCORE_FLOORS
from ..data.faces import FaceCrop
from ..data.inputs import InputItem
from ..data.media import MediaError
from ..data.tracks import TrackConfig, VotePolicy, link_tracks, vote
from ..data.transforms import FAKE_INDEX
from ..detector import Detector, FacePrediction
from ..explain.render import FaceView, map_png, resize_map
from ..files import display_path
from ..metrics.attention import summarize
from ..metrics.video import aggregate_videos
from ..model.temporal import TemporalAttentionPooling
from .options import AGGREGATES, AnalyzeOptions
from .results import Detection, ResultRow, points_json
from .video_chunks import VideoChunk, iter_video_chunks
from .video_consistency import ConsistencyWindow
from .video_render import AnnotatedFace, SheetFace, TimelineTrack, render_contact_sheet, render_timeline, write_annotated_video

SHEET_FACES = 6
STORED_MAP_SIZE = 32
TRACKS = TrackConfig()


@dataclass
class _Face:
    sample: int
    face_index: int
    box: tuple[int, int, int, int]
    crop_box: tuple[int, int, int, int] | None
    det_score: float | None
    prob: float
    feature: np.ndarray | None = None
    maps: tuple[np.ndarray, np.ndarray | None] | None = None
    attention_png: str | None = None
    gradcampp_png: str | None = None
    consistency: float | None = None
    low: bool = False
    track: int | None = None
    weight: float | None = None
    landmarks5: np.ndarray | None = None


class VideoAccumulator:
    """One video's scored chunks, in sample order, turned into its result row by :meth:`finish`.

    ``renderer`` provides ``save(image, folder, name) -> path`` and ``name(path, suffix) -> file name``.
    """

    def __init__(self, first: VideoChunk, *, options: AnalyzeOptions, threshold: float, detector: Detector, renderer: Any,
                 head: TemporalAttentionPooling | None = None) -> None:
        self.item, self.options, self.threshold, self.detector, self.renderer, self.head = first.item, options, threshold, detector, renderer, head
        self.info = first.info or {}
        self.input_sha256 = first.input_sha256
        self.frames: list[tuple[int, int | None, float]] = []
        self.faces: list[list[_Face]] = []
        self.timings = {"decode_s": 0.0, "detect_s": 0.0, "model_s": 0.0, "render_s": 0.0}
        self._consistency = ConsistencyWindow(TRACKS.max_gap + 1)
        self._sheet: list[tuple[float, int, dict[str, Any]]] = []
        disable = True if options.progress is False else None
        self._bar = tqdm(total=self.info.get("frames_requested"), desc=display_path(Path(self.item.path).name)[:30], unit="frame", leave=False, disable=disable)

    def add(self, chunk: VideoChunk, predictions: list[FacePrediction], model_seconds: float) -> None:
        """Take a chunk's frames and the predictions of its faces (in :attr:`VideoChunk.faces` order)."""
        for key, value in chunk.timings.items():
            self.timings[key] += value
        self.timings["model_s"] += model_seconds
        cursor = 0
        for frame in chunk.frames:
            preds = predictions[cursor : cursor + len(frame.faces)]
            cursor += len(frame.faces)
            self.frames.append((frame.sample_index, frame.frame_index, frame.time_s))
            self.faces.append([self._record(len(self.frames) - 1, k, face, pred, frame.time_s) for k, (face, pred) in enumerate(zip(frame.faces, preds))])
            self._consistency.add(len(self.frames) - 1, frame.faces, [pred.attention for pred in preds])
        self._bar.update(len(chunk.frames))

    def _record(self, sample: int, k: int, face: FaceCrop, pred: FacePrediction, time_s: float) -> _Face:
        record = _Face(sample, k, tuple(face.box), face.crop_box, face.score, pred.prob_fake, landmarks5=face.landmarks5)
        if self.head is not None:
            record.feature = np.array(pred.features, dtype=np.float32)
        if self.options.annotate:
            small = (STORED_MAP_SIZE, STORED_MAP_SIZE)
            cam = None if pred.gradcampp is None else resize_map(pred.gradcampp, small).astype(np.float16)
            record.maps = (resize_map(pred.attention, small).astype(np.float16), cam)
        if self.options.save_maps == "all":
            start = time.perf_counter()
            name = self.renderer.name(self.item.path, f"-s{sample:05d}-f{k}")
            record.attention_png = self.renderer.save(map_png(pred.attention), "attention", name)
            if pred.gradcampp is not None:
                record.gradcampp_png = self.renderer.save(map_png(pred.gradcampp), "gradcampp", name)
            self.timings["render_s"] += time.perf_counter() - start
        entry = (pred.prob_fake, -(sample * 1000 + k))
        if self.options.save_maps != "none" and (len(self._sheet) < SHEET_FACES or entry > self._sheet[0][:2]):
            payload = {"crop": np.array(pred.crop), "attention": np.array(pred.attention),
                       "gradcampp": None if pred.gradcampp is None else np.array(pred.gradcampp), "sample": sample, "face": k, "time_s": time_s}
            heapq.heappush(self._sheet, (*entry, payload))
            if len(self._sheet) > SHEET_FACES:
                heapq.heappop(self._sheet)
        return record

    def error_row(self, error: str, seconds: float) -> ResultRow:
        """The row of a video that could not be read."""
        self._bar.close()
        return ResultRow(path=self.item.path, kind="video", status="error", error=error, threshold=self.threshold,
                         model_sha256=self.detector.model_sha256, input_sha256=self.input_sha256, model_trained=self.detector.trained, seconds=seconds)

    def finish(self, last: VideoChunk) -> ResultRow:
        """Link tracks, aggregate, render; the video's result row."""
        self._bar.close()
        if last.error is not None:
            return self.error_row(last.error, sum(self.timings.values()))
        start = time.perf_counter()
        tracks = link_tracks([[face.box for face in frame] for frame in self.faces], TRACKS).tracks
        track_rows = [self._track(track.track_id, [self.faces[s][i] for s, i in track.members]) for track in tracks]
        detector_name = self.detector.config.preprocess.detector
        votes, fallback = vote([t["frames"] for t in track_rows], [t["det_score_mean"] for t in track_rows], len(self.frames),
                               VotePolicy(min_det_score=DET_SCORE_FLOORS.get(detector_name)))
        for track, choice in zip(track_rows, votes):
            track["used"], track["vote_note"] = choice.used, choice.reason
        empty = sum(1 for frame in self.faces if not frame)
        extra: dict[str, Any] = {
            "video": {**self.info, "frames_decoded": len(self.frames)},
            "sampling": {"frames": None if self.options.fps else self.options.frames, "fps": self.options.fps},
            "aggregation": "temporal-head" if self.head is not None else self.options.aggregate,
            "warning": last.warning, "frames_without_face": empty, "timeline_png": None, "annotated_video": None,
            "voting": {"min_coverage": VotePolicy().min_coverage, "min_det_score": DET_SCORE_FLOORS.get(detector_name),
                       "tracks_used": sum(v.used for v in votes), "fallback_longest": fallback},
        }
        base = dict(path=self.item.path, kind="video", threshold=self.threshold, model_sha256=self.detector.model_sha256,
                    input_sha256=self.input_sha256, model_trained=self.detector.trained)
        extra.update(frames=self._frame_rows(), tracks=track_rows)
        if track_rows:
            prob = max(t["prob_fake"] for t in track_rows if t["used"])
            row = ResultRow(status="ok", prob_fake=prob, label="fake" if prob >= self.threshold else "real", faces=len(track_rows),
                            detections=[self._detection(t) for t in track_rows], extra=extra, **base)
            self._render(row, track_rows)
        else:
            row = ResultRow(status="no_face", error=f"no face was found in any of the {len(self.frames)} sampled frames", extra=extra, **base)
        self.timings["render_s"] += time.perf_counter() - start
        extra["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        row.seconds = sum(self.timings.values())
        return row

    def _track(self, track_id: int, members: list[_Face]) -> dict[str, Any]:
        for previous, face in zip([None] + members[:-1], members):
            face.track = track_id
            if previous is not None:
                face.consistency = self._consistency.between((previous.sample, previous.face_index), (face.sample, face.face_index))
                face.low = face.consistency is not None and face.consistency < self.options.consistency_threshold
        probs = [face.prob for face in members]
        rows = [(0, 0, face.sample, face.prob) for face in members]
        values = {name: aggregate_videos(rows, method, k=self.options.topk)[0] for name, method in AGGREGATES.items()}
        summary = summarize([math.nan if f.consistency is None else f.consistency for f in members[1:]])
        row: dict[str, Any] = {
            "track_id": track_id, "frames": len(members), "sample_indices": [f.sample for f in members],
            "first_time_s": self.frames[members[0].sample][2], "last_time_s": self.frames[members[-1].sample][2],
            "prob_fake": values[self.options.aggregate], "prob_mean": values["mean"], "prob_median": values["median"],
            "prob_topk": values["topk"], "prob_max": max(probs),
            "det_score_mean": None if any(f.det_score is None for f in members) else float(np.mean([f.det_score for f in members])),
            "consistency": {"mean": summary.mean, "pairs": summary.count, "undefined": summary.undefined},
            "low_consistency_samples": [f.sample for f in members if f.low],
        }
        if self.head is not None:
            with torch.no_grad():
                out = self.head(torch.from_numpy(np.stack([f.feature for f in members]))[None])
            weights = out["weights"][0].tolist()
            for face, weight in zip(members, weights):
                face.weight = weight
            row["temporal"] = {"prob_fake": float(torch.softmax(out["output"].float(), dim=1)[0, FAKE_INDEX]), "weights": weights}
            row["prob_fake"] = row["temporal"]["prob_fake"]
        row["label"] = "fake" if row["prob_fake"] >= self.threshold else "real"
        return row

    def _detection(self, track: dict[str, Any]) -> Detection:
        best = max((self.faces[s][i] for s, i in self._members(track)), key=lambda f: (f.prob, -f.sample))
        return Detection(face_index=track["track_id"], box=best.box, det_score=best.det_score, prob_fake=track["prob_fake"], landmarks5=points_json(best.landmarks5),
                         attention_png=best.attention_png, gradcampp_png=best.gradcampp_png)

    def _members(self, track: dict[str, Any]) -> list[tuple[int, int]]:
        return [(face.sample, face.face_index) for frame in self.faces for face in frame if face.track == track["track_id"]]

    def _frame_rows(self) -> list[dict[str, Any]]:
        rows = []
        for (sample, frame_index, time_s), faces in zip(self.frames, self.faces):
            entries = []
            for face in faces:
                entry = {"face_index": face.face_index, "box": list(face.box), "det_score": face.det_score, "prob_fake": face.prob,
                         "track_id": face.track, "consistency": face.consistency, "low_consistency": face.low}
                if face.landmarks5 is not None:
                    entry["landmarks5"] = points_json(face.landmarks5)
                if face.weight is not None:
                    entry["temporal_weight"] = face.weight
                if face.attention_png:
                    entry.update(attention_png=face.attention_png, gradcampp_png=face.gradcampp_png)
                entries.append(entry)
            rows.append({"sample_index": sample, "frame_index": frame_index, "time_s": time_s, "faces": entries})
        return rows

    def _render(self, row: ResultRow, tracks: list[dict[str, Any]]) -> None:
        untrained, name = not self.detector.trained, display_path(Path(self.item.path).name)
        verdict = f"{name}: P(fake)={row.prob_fake:.3f} ({row.extra['aggregation']} per track, max over {len(tracks)}) -> {row.label.upper()}"
        if self.options.save_maps != "none":
            timeline = render_timeline(
                [TimelineTrack(t["track_id"], [self.frames[s][2] for s in t["sample_indices"]],
                               [self.faces[s][i].prob for s, i in self._members(t)],
                               [self.faces[s][i].low for s, i in self._members(t)]) for t in tracks],
                self.threshold, duration_s=float(self.info.get("duration_s") or 0.0),
                no_face_times_s=[self.frames[s][2] for s, faces in enumerate(self.faces) if not faces], title=verdict, untrained=untrained)
            row.extra["timeline_png"] = self.renderer.save(timeline, "timelines", self.renderer.name(self.item.path))
            sheet = [self._sheet_face(payload) for _, _, payload in sorted(self._sheet, key=lambda e: e[:2], reverse=True)]
            row.panel = self.renderer.save(render_contact_sheet(sheet, self.threshold, title=verdict, untrained=untrained), "panels", self.renderer.name(self.item.path))
        if self.options.annotate:
            row.extra["annotated_video"] = self._annotate(row)

    def _sheet_face(self, payload: dict[str, Any]) -> SheetFace:
        face = self.faces[payload["sample"]][payload["face"]]
        label = "fake" if face.prob >= self.threshold else "real"
        return SheetFace(FaceView(payload["crop"], payload["attention"], payload["gradcampp"], face.prob, label), payload["time_s"], face.track)

    def _annotate(self, row: ResultRow) -> str | None:
        by_sample = {}
        for s, faces in enumerate(self.faces):
            by_sample[self.frames[s][0]] = [
                AnnotatedFace(f.box, f.crop_box or f.box, f.maps[1] if f.maps[1] is not None else f.maps[0], f.prob if f.maps[1] is not None else 1.0,
                              f"track {f.track} P(fake)={f.prob:.2f}", f.prob >= self.threshold)
                for f in faces
            ]
        duration = float(self.info.get("duration_s") or 0.0)
        rate = self.options.fps or (len(self.frames) / duration if duration > 0 else 1.0)
        relative = f"annotated/{Path(self.renderer.name(self.item.path)).stem}.mp4"
        try:
            write_annotated_video(self.item.path, self.renderer.out_dir / relative, by_sample, frames=self.options.frames,
                                  fps=self.options.fps, out_fps=min(60.0, max(0.5, rate)))
        except (MediaError, ValueError) as error:  # the row stands; say why the extra file is missing
            row.extra["warning"] = "; ".join(w for w in (row.extra["warning"], f"the annotated video could not be written: {error}") if w)
            return None
        return relative


def score_video(path: str | Path, detector: Detector, *, threshold: float | None = None, **options: Any) -> ResultRow:
    """One video's result row in this process, nothing rendered (for ``evaluate`` on video manifests,
    notebooks): the row ``analyze`` would write, with per-frame scores in ``extra["frames"]`` and
    per-track scores in ``extra["tracks"]``. ``options`` are :class:`~.options.AnalyzeOptions` fields
    (``frames``, ``fps``, ``aggregate``, ``topk``, ``face_detect``, ``cam`` ...); ``save_maps`` is "none"."""
    opts = AnalyzeOptions(**{"cam": False, "progress": False, **options, "save_maps": "none", "annotate": False})
    item = InputItem(str(path), "video")
    accumulator: VideoAccumulator | None = None
    for chunk in iter_video_chunks(0, item, opts, detector.config.preprocess):
        accumulator = accumulator or VideoAccumulator(chunk, options=opts, threshold=detector.threshold if threshold is None else threshold,
                                                      detector=detector, renderer=None)
        crops = [face.crop for face in chunk.faces]
        start = time.perf_counter()
        predictions = [p for begin in range(0, len(crops), opts.batch_size) for p in detector.predict(crops[begin : begin + opts.batch_size], cam=opts.cam)]
        accumulator.add(chunk, predictions, time.perf_counter() - start)
        if chunk.last:
            return accumulator.finish(chunk)
    raise RuntimeError("internal error: the video's chunks ended without a last chunk")
