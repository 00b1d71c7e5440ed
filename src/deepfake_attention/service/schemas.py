"""Response models of the HTTP API (pydantic): they make the OpenAPI schema and its examples."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_PNG = "data:image/png;base64,iVBORw0KGgo..."
_FACE_EXAMPLE = {
    "face_index": 0, "box": [177, 67, 270, 160], "det_score": 6.2, "prob_fake": 0.91, "label": "fake",
    "crop_box": [163, 53, 284, 174], "crop_png": _PNG, "attention_png": _PNG, "gradcampp_png": _PNG,
}
_ROW_EXAMPLE = {
    "path": "portrait.jpg", "kind": "image", "status": "ok", "error": None, "prob_fake": 0.91, "label": "fake",
    "threshold": 0.5, "faces": 1, "model_sha256": "8c1421fc08f6...", "input_sha256": "3f7a...", "seconds": 0.084,
    "panel": None, "model_trained": True, "detections": [_FACE_EXAMPLE], "image_size": [512, 512], "untrained_warning": None,
}


class FaceResult(BaseModel):
    """One face: where it is, its calibrated score and its maps as inline PNGs."""

    face_index: int
    box: list[int] = Field(description="Detected face [x0, y0, x1, y1] in the original image's pixels (x1, y1 exclusive).")
    det_score: float | None = Field(description="The face detector's score (not a probability); null for the whole image.")
    prob_fake: float = Field(description="Calibrated P(fake) of this face: softmax(logits / temperature)[fake].")
    label: Literal["real", "fake"] = Field(description="'fake' iff prob_fake >= threshold.")
    crop_box: list[int] | None = Field(None, description="The square [x0, y0, x1, y1] cut out for the model, original pixels; the PNGs cover it.")
    crop_png: str | None = Field(None, description="The crop as the model saw it (RGB PNG data URI, model input size).")
    attention_png: str | None = Field(
        None, description="Attention gate layer (RGBA PNG data URI, same size as crop_png): colour = inferno(value), "
        "alpha = 0.75 * value. Drawn over crop_png it is the attention overlay: where the model looks, before any evidence.")
    gradcampp_png: str | None = Field(
        None, description="Grad-CAM++ of fake-minus-real logit (RGBA PNG data URI): colour = inferno(value), "
        "alpha = 0.75 * prob_fake * value, so a confidently real face shows no hotspot. Null when Grad-CAM++ is off.")
    words: str | None = Field(None, description="Where most evidence lies, in one sentence; left and right are the person's.")
    regions: dict[str, float] | None = Field(None, description="Share of the explained map's energy per facial region.")
    landmarks5: list[list[float]] | None = Field(
        None, description="The detector's five landmarks [[x, y] x 5] in original pixels (left eye, right eye, nose, left and right "
        "mouth corner as seen in the image); null when the detector gives none (Haar, the whole image).")
    model_config = ConfigDict(json_schema_extra={"example": _FACE_EXAMPLE})


class AnalyzeResponse(BaseModel):
    """The CLI's result row (results.jsonl fields) for one upload, with inline per-face PNGs."""

    path: str = Field(description="The client's file name, sanitised; echoed only, never used as a path.")
    kind: Literal["image", "video"]
    status: Literal["ok", "no_face", "error"]
    error: str | None = Field(description="A sentence a person understands (status no_face or error).")
    prob_fake: float | None = Field(description="Max over faces of the calibrated P(fake); null unless status is ok.")
    label: Literal["real", "fake"] | None
    threshold: float | None
    faces: int
    model_sha256: str
    input_sha256: str | None = Field(description="SHA-256 of the uploaded bytes.")
    seconds: float = Field(description="Server time spent on this input (decode, model, render), seconds.")
    panel: str | None = Field(None, description="Video jobs: the rendered panel as a PNG data URI; null for images.")
    model_trained: bool = Field(description="False for an UNTRAINED placeholder model: every score is then meaningless.")
    detections: list[FaceResult]
    image_size: list[int] | None = Field(None, description="[width, height] of the decoded (EXIF-upright) image.")
    untrained_warning: str | None = None
    model_config = ConfigDict(extra="allow", json_schema_extra={"example": _ROW_EXAMPLE})


class ErrorResponse(BaseModel):
    """Any refused request: ``detail`` is a sentence saying what was wrong and what to do."""

    detail: str
    model_config = ConfigDict(json_schema_extra={"example": {"detail": "the upload is larger than the limit of 20.0 MiB"}})


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    model_trained: bool
    device: str
    batches: int = Field(description="Forward passes run so far.")
    requests: int = Field(description="Requests those passes served (requests / batches = mean batch size).")
    in_flight: int = Field(description="Requests admitted right now.")


class ModelInfo(BaseModel):
    """The loaded checkpoint: everything needed to interpret the scores."""

    sha256: str
    trained: bool
    threshold: float
    temperature: float
    class_names: list[str]
    target_layer: str
    config: dict[str, Any] = Field(description="The model config (AttentionMapModel.get_config()).")
    preprocess: dict[str, Any] = Field(description="size, mean, std, crop_scale, detector.")
    checkpoint_package_version: str
    service_version: str
    device: str
    cam: bool
    info: dict[str, Any]
    untrained_warning: str | None


class JobCreated(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    kind: Literal["image", "video"]
    status_url: str
    retention_s: float = Field(description="Seconds the result is kept after the job ends (the upload is deleted when it ends).")
    model_trained: bool


class JobStatus(BaseModel):
    """A job's state; ``result`` once done, ``error`` once failed."""

    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    kind: Literal["image", "video"]
    filename: str
    created: float = Field(description="Unix time.")
    finished: float | None = None
    expires_at: float | None = Field(None, description="Unix time when the result is deleted.")
    error: str | None = None
    result: AnalyzeResponse | None = None
    model_trained: bool
