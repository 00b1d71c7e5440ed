"""The recipe's faces: every file of the corpus (and the extra sources) through the face detector
into crops, one folder per split, with who each face is.

- Videos give a fixed number of uniformly sampled frames, images one.
- A file with one person keeps its best-scoring face (a second box there is a false hit or a
  passer-by); files with several people keep every face above the detector's threshold.
- Each face knows its person: the identity for a one-person file, else the file and face index
  (group photos name only some of their people). Training weighs people, not files or frames.
- Crops are stored with their longest side at most ``max_side`` pixels (boxes and landmarks
  scaled with them): the model sees 224x224, and small crops keep training's decoding cheap.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..data.align import align_face
from ..data.face_records import FaceRecord, save_face, write_faces
from ..data.faces import FaceCrop, detect_faces
from ..data.media import MediaError, read_image
from ..data.video import iter_sampled_frames
from .corpus import SPLITS, CorpusFile

FFPP_VIDEOS = {"ffpp_original_004.mp4": "ffpp-004", "ffpp_original_634.mp4": "ffpp-634"}
"""The shared FaceForensics++ originals (real-videos/) and their identities."""


@dataclass(frozen=True)
class FaceInfo:
    """What the recipe's reports need of one stored face: where it came from and who it is."""

    crop: str
    split: str
    group: str
    file: str
    person: str
    frame: int | None
    score: float | None


def extra_files(data_root: Path, work: Path) -> list[CorpusFile]:
    """The two shared FaceForensics++ originals and scikit-image's astronaut photo, as corpus rows.

    The demo photo (matplotlib's Grace Hopper) is never among them: it stays a person the model never saw."""
    from skimage import data

    extras = []
    for name, identity in FFPP_VIDEOS.items():
        path = data_root / "real-videos" / name
        if path.is_file():
            extras.append(CorpusFile(str(path.resolve()), "video", "video", 1, (identity,), "FaceForensics++ terms (research use)"))
    photo = (work / "sources" / "astronaut.png").resolve()
    photo.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(photo)
    extras.append(CorpusFile(str(photo), "image", "photo", 1, ("eileen-collins",), "public domain (NASA), via scikit-image"))
    return extras


def _frames(path: Path, kind: str, frames_per_video: int) -> Iterator[tuple[int | None, np.ndarray]]:
    if kind == "image":
        yield None, read_image(path)
        return
    with iter_sampled_frames(path, frames=frames_per_video) as frames:
        for frame in frames:
            yield (frame.sample_index if frame.frame_index is None else frame.frame_index), frame.image


def _keep(faces: list[FaceCrop], people: int) -> list[FaceCrop]:
    if people == 1 and len(faces) > 1:
        best = max(faces, key=lambda f: (f.score if f.score is not None else 0.0, (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
        return [best]
    return faces


def extract_faces(
    files: list[CorpusFile], splits: list[str], root: Path, work: Path, *, detector: str, crop_scale: float, crop_border: str,
    frames_per_video: int, landmarks: Callable[[np.ndarray, tuple[int, int, int, int]], np.ndarray] | None = None,
    max_side: int = 320, align: bool = False, progress: bool | None = None,
) -> tuple[dict[str, Path], list[FaceInfo], list[dict[str, str]]]:
    """Detect, crop and store the faces of ``files`` (paths relative to ``root`` unless absolute) by split.

    ``align`` turns each crop level on the detector's five landmarks (:func:`~..data.align.align_face`),
    its 68 landmarks found on the turned crop.

    Returns the folder of each split (``faces.jsonl`` + ``crops/``), one :class:`FaceInfo` per
    stored face, and the files that gave no face or could not be read (with the reason)."""
    folders = {split: work / f"faces-{split}" for split in SPLITS}
    for folder in folders.values():
        if folder.exists():
            shutil.rmtree(folder)
    records: dict[str, list[FaceRecord]] = {split: [] for split in SPLITS}
    infos: list[FaceInfo] = []
    missed: list[dict[str, str]] = []
    for index, (item, split) in enumerate(tqdm(list(zip(files, splits)), desc="faces", unit="file", disable=(not progress) if progress is not None else None)):
        path = Path(item.file) if Path(item.file).is_absolute() else root / item.file
        found = 0
        try:
            for frame, image in _frames(path, item.kind, frames_per_video):
                faces = _keep(detect_faces(image, detector, crop_scale=crop_scale, crop_border=crop_border, landmarks=None if align else landmarks), item.people)
                if align:
                    faces = [align_face(image, face, border=crop_border, landmarks=landmarks) for face in faces]
                for k, face in enumerate(faces):
                    person = item.identities[0] if item.people == 1 and len(item.identities) == 1 else f"{item.file}#f{k}"
                    name = f"{index:04d}-t{frame or 0}-f{k}"
                    record = save_face(folders[split], name, face, source_id=item.file, video_id=item.file if item.kind == "video" else "",
                                       frame=frame, person=person, max_side=max_side)
                    records[split].append(record)
                    infos.append(FaceInfo(f"faces-{split}/{record.crop}", split, item.group, item.file, person, frame, face.score))
                    found += 1
        except MediaError as error:
            missed.append({"file": item.file, "reason": str(error)})
            continue
        if not found:
            missed.append({"file": item.file, "reason": "no face found"})
    for split, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        write_faces(folder, records[split])
    (work / "faces.json").write_text(json.dumps({"faces": [asdict(i) for i in infos], "missed": missed}, indent=1))
    return folders, infos, missed
