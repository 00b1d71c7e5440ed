"""``create_app(model_dir, settings)``: the FastAPI application of ``deepfake-attention serve``.

Endpoints (JSON, versioned under ``/v1``; with a token set, all but ``/v1/health`` need
``Authorization: Bearer <token>``; the static page and the OpenAPI docs hold no data and stay open):

- ``GET /v1/health``: the process is up. ``GET /v1/ready``: the model is loaded (503 until then).
- ``GET /v1/model``: checkpoint config, classes, threshold, temperature, versions, SHA-256, trained flag.
- ``POST /v1/analyze``: one image (multipart field ``file``) -> the CLI's result row plus inline PNGs.
- ``POST /v1/jobs`` / ``GET /v1/jobs/{id}``: asynchronous analysis (videos), kept ``retention_s``.

Refusals: 400 malformed body, 401 token, 413 too large (counted while reading; the rest of the body
is read and thrown away up to ``max_discard_bytes`` past the limit, then the answer closes the
connection, so clients that send before they read get the 413; beyond that cap the connection
is closed right after the answer), 415 not an image
by its bytes (videos: use jobs), 422 undecodable or bomb (the decoder's sentence), 429 more than
``max_concurrent`` requests in flight or too many jobs, 504 over ``request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import numpy as np
import torch
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from ..detector import Detector
from ..version import __version__
from .batching import BatchQueue
from .jobs import JobsFull, JobStore, analyze_video
from .logs import RequestLogMiddleware
from .pipeline import UNTRAINED_WARNING, ImagePipeline
from .schemas import AnalyzeResponse, ErrorResponse, HealthResponse, JobCreated, JobStatus, ModelInfo, ReadyResponse
from .settings import ServiceSettings
from .uploads import FILE_FIELD, RequestError, read_upload, video_suffix

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("deepfake_attention.service")
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FILE_FIELD],
    "properties": {FILE_FIELD: {"type": "string", "format": "binary", "description": "The file; its type is told from its bytes."}},
}}}}}
_ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "Malformed multipart body or no 'file' field.", 401: "Missing or wrong bearer token.",
    413: "The upload is larger than the limit.", 415: "Not an image by its bytes (or a video: use /v1/jobs).",
    422: "The image cannot be decoded, or is a likely decompression bomb.", 429: "Too many requests in flight; retry.",
    504: "The request took longer than the per-request timeout.",
}.items()}


@dataclass
class Service:
    """What the lifespan loaded: the model, its batch queue, worker threads and the job store."""

    settings: ServiceSettings
    detector: Detector
    batcher: BatchQueue
    executor: ThreadPoolExecutor
    video_executor: ThreadPoolExecutor
    pipeline: ImagePipeline
    jobs: JobStore
    in_flight: int = 0
    tasks: set[asyncio.Task] = field(default_factory=set)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Count a request in flight; 429 beyond ``max_concurrent`` (the bounded queue)."""
        if self.in_flight >= self.settings.max_concurrent:
            raise RequestError(429, f"the server is busy ({self.in_flight} requests in flight); retry in a moment")
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1


def _load(model_dir: str | Path | None, settings: ServiceSettings) -> tuple[Detector, BatchQueue]:
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)  # process-wide: the server owns its process
    detector = Detector.load(model_dir, device=settings.device)
    size = detector.config.preprocess.size
    detector.predict([np.zeros((size, size, 3), np.uint8)], cam=settings.cam)  # warm-up: first call allocates
    batcher = BatchQueue(lambda crops: detector.predict(crops, cam=settings.cam), max_batch=settings.batch_size, max_wait_s=settings.batch_wait_ms / 1000)
    return detector, batcher


def create_app(model_dir: str | Path | None = None, settings: ServiceSettings | None = None) -> FastAPI:
    """The service for the checkpoint in ``model_dir`` (None: the shipped model); the model is loaded
    once, in the lifespan. ``settings`` default: :meth:`ServiceSettings.from_env` (token from the
    environment)."""
    settings = ServiceSettings.from_env() if settings is None else settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        detector, batcher = await asyncio.to_thread(_load, model_dir, settings)
        executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="deepfake-attention-io")
        video_executor = ThreadPoolExecutor(1, thread_name_prefix="deepfake-attention-video")
        jobs = JobStore(settings.jobs_dir, retention_s=settings.retention_s, max_jobs=settings.max_jobs)
        service = Service(settings, detector, batcher, executor, video_executor,
                          ImagePipeline(detector, batcher, executor, max_pixels=settings.max_pixels), jobs)
        app.state.service = service
        sweeper = asyncio.create_task(jobs.sweep_forever())
        log.info("service ready", extra={"event": "ready", "model_sha256": detector.model_sha256, "model_trained": detector.trained,
                                         "device": str(detector.device), "settings": settings.public()})
        if not detector.trained:
            log.warning(UNTRAINED_WARNING, extra={"event": "untrained_model"})
        try:
            yield
        finally:
            for task in [sweeper, *service.tasks]:
                task.cancel()
            await asyncio.gather(sweeper, *service.tasks, return_exceptions=True)
            batcher.close()
            executor.shutdown(wait=False, cancel_futures=True)
            video_executor.shutdown(wait=False, cancel_futures=True)
            jobs.close()
            app.state.service = None

    app = FastAPI(
        title="deepfake-attention", version=__version__, lifespan=lifespan,
        description="Face-manipulation detection with the model's attention map and Grad-CAM++. Model, analysis "
        "and job bodies carry `model_trained`, and every response once the model is loaded the header `X-Model-Trained`; "
        "false means an UNTRAINED placeholder whose scores are meaningless.",
    )
    app.state.settings, app.state.service = settings, None
    app.add_middleware(RequestLogMiddleware)

    @app.exception_handler(RequestError)
    async def _refused(request: Request, error: RequestError) -> JSONResponse:
        headers = {"Retry-After": "1"} if error.status in (429, 503) else {}
        if error.close:  # the body was not read to its end: this connection cannot carry another request
            headers["Connection"] = "close"
        return JSONResponse({"detail": error.message}, status_code=error.status, headers=headers or None)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/v1/health", response_model=HealthResponse, tags=["service"])
    async def health() -> dict[str, str]:
        """The process is up (no authentication; says nothing about the model)."""
        return {"status": "ok"}

    app.include_router(_protected_routes(), dependencies=[Depends(require_token)])
    return app


_bearer = HTTPBearer(auto_error=False, description="Required when the server was started with a token.")


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401 unless the server has no token or the request carries it (compared in constant time)."""
    expected = request.app.state.settings.token
    if expected is None:
        return
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, expected.encode()):
        raise HTTPException(401, "a valid bearer token is required: send the header 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})


def _service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:
        raise RequestError(503, "the model is still loading; retry in a moment")
    return service


def _protected_routes() -> APIRouter:
    router = APIRouter(responses={401: _ERRORS[401]})

    @router.get("/v1/ready", response_model=ReadyResponse, tags=["service"], responses={503: {"model": ErrorResponse}})
    async def ready(request: Request) -> dict[str, Any]:
        """200 once the model is loaded and its worker runs; 503 before."""
        service = _service(request)
        if not service.batcher.alive:
            raise RequestError(503, "the model worker is not running")
        stats = service.batcher.stats()
        return {"ready": True, "model_trained": service.detector.trained, "device": str(service.detector.device),
                "batches": stats.batches, "requests": stats.requests, "in_flight": service.in_flight}

    @router.get("/v1/model", response_model=ModelInfo, tags=["model"])
    async def model(request: Request) -> dict[str, Any]:
        """The loaded checkpoint: what the scores mean and where they come from."""
        service = _service(request)
        config = service.detector.config.to_json()
        return {
            "sha256": service.detector.model_sha256, "trained": config["trained"], "threshold": config["threshold"],
            "temperature": config["temperature"], "class_names": config["class_names"], "target_layer": config["target_layer"],
            "config": config["model"], "preprocess": config["preprocess"], "checkpoint_package_version": config["package_version"],
            "service_version": __version__, "device": str(service.detector.device), "cam": service.settings.cam,
            "info": config["info"], "untrained_warning": None if service.detector.trained else UNTRAINED_WARNING,
        }

    @router.post("/v1/analyze", response_model=AnalyzeResponse, tags=["analysis"], openapi_extra=_UPLOAD_BODY,
                 responses={k: v for k, v in _ERRORS.items() if k != 401})
    async def analyze_image(request: Request) -> dict[str, Any]:
        """Analyze one uploaded image: the CLI's result row, per face its box, calibrated P(fake),
        label and the crop, attention and Grad-CAM++ layers as PNG data URIs."""
        service = _service(request)
        timeout = service.settings.request_timeout_s
        with service.admit():
            try:
                async with asyncio.timeout(timeout):
                    upload = await read_upload(request, service.settings.max_upload_bytes, discard_bytes=service.settings.max_discard_bytes)
                    try:
                        if upload.kind == "video":
                            raise RequestError(415, "this is a video; /v1/analyze takes one image: submit videos with POST /v1/jobs")
                        data = upload.read()
                    finally:
                        upload.close()
                    result = await service.pipeline.run(data, upload.filename)
            except TimeoutError:
                raise RequestError(504, f"the analysis took longer than the limit of {timeout:g} s; retry later or send a smaller image",
                                   close=True) from None  # the upload may be unread: the connection cannot carry another request
        log.info("analyzed", extra={"event": "analyzed", "request_id": request.state.request_id, "upload_bytes": len(data),
                                    "input_sha256": result["input_sha256"], "result_status": result["status"],
                                    "faces": result["faces"], "seconds": result["seconds"]})
        return result

    @router.post("/v1/jobs", response_model=JobCreated, status_code=202, tags=["jobs"], openapi_extra=_UPLOAD_BODY,
                 responses={k: v for k, v in _ERRORS.items() if k != 401})
    async def create_job(request: Request) -> dict[str, Any]:
        """Queue an image or a video for analysis; poll ``status_url``. The upload is deleted when the
        analysis ends, the result ``retention_s`` seconds later."""
        service = _service(request)
        timeout = service.settings.request_timeout_s
        with service.admit():
            try:
                async with asyncio.timeout(timeout):  # a slow upload must not hold its slot forever
                    upload = await read_upload(request, service.settings.max_job_bytes, spool_bytes=service.settings.max_upload_bytes,
                                               discard_bytes=service.settings.max_discard_bytes)
            except TimeoutError:
                raise RequestError(504, f"the upload took longer than the limit of {timeout:g} s", close=True) from None
            try:
                suffix = video_suffix(upload.head) if upload.kind == "video" else ".img"
                try:
                    job = service.jobs.create(upload.kind, upload.filename, suffix)
                except JobsFull as error:
                    raise RequestError(429, str(error)) from None
                await asyncio.to_thread(_save, upload.file, job.upload)
            finally:
                upload.close()
        task = asyncio.create_task(service.jobs.execute(job, _job_work(service, job)))
        service.tasks.add(task)
        task.add_done_callback(service.tasks.discard)
        log.info("job queued", extra={"event": "job_queued", "request_id": request.state.request_id, "job_id": job.job_id,
                                      "kind": job.kind, "upload_bytes": upload.size})
        return {"job_id": job.job_id, "status": job.status, "kind": job.kind, "status_url": f"/v1/jobs/{job.job_id}",
                "retention_s": service.settings.retention_s, "model_trained": service.detector.trained}

    @router.get("/v1/jobs/{job_id}", response_model=JobStatus, tags=["jobs"], responses={404: {"model": ErrorResponse}})
    async def job_status(request: Request, job_id: str) -> dict[str, Any]:
        """A job's status; its result once done. 404 for unknown or expired jobs."""
        service = _service(request)
        job = service.jobs.get(job_id)
        gone = HTTPException(404, "no such job: the id is wrong or its result expired")
        if job is None:
            raise gone
        try:
            return await asyncio.to_thread(service.jobs.status, job, service.detector.trained)
        except FileNotFoundError:  # expired while being read
            raise gone from None

    return router


def _save(source: Any, target: Path) -> None:
    source.seek(0)
    with open(target, "wb") as handle:
        shutil.copyfileobj(source, handle, length=1 << 20)


def _job_work(service: Service, job: Any) -> Any:
    async def image() -> dict[str, Any]:
        data = await asyncio.to_thread(job.upload.read_bytes)
        return await service.pipeline.run(data, job.filename)

    async def video() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(service.video_executor, analyze_video, job.upload, job.filename, service.detector, service.batcher)

    return video if job.kind == "video" else image
