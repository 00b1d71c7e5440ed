"""Load test of ``deepfake-attention serve``: the server in a subprocess on 127.0.0.1, driven by C
concurrent clients (C = 1, 4, 16) for a bounded number of requests each.

Prints per C: requests/s, p50/p99 latency, errors (goal 0), the server's RSS before and after
(goal: < 10% growth after warm-up), the cores used by the server and by this load generator
(it shares the machine), and requests/s divided by the throughput of ``analyze`` run end to
end in this same run on the same files with the same rendered outputs (maps and panels;
goal >= 0.7). ``analyze`` gets an already loaded model, as the server has one.

The load levels and ``analyze`` (batch 1 and 16) are variants of one interleaved measurement
(``_timing``: a warm-up round, then ``--repeats`` rotated rounds; ``analyze`` runs while the server
is idle), so each round gives a paired req/s / analyze ratio with its spread; the last line is
the verdict (``--strict``: exit 1 when UNRELIABLE).

    python bench/service_load.py [--model DIR] [--files 24] [--requests 48] [--concurrency 1 4 16] [--device cpu]
                                 [--torch-threads N] [--server-args '--batch-size 8 --threads 2']
                                 [--repeats 3] [--warmup-rounds 1] [--strict]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from deepfake_attention import Detector, analyze
from deepfake_attention.data.faces import detect_faces
from deepfake_attention.data.media import read_image
from deepfake_attention.demo import sample_photo

from _common import print_table
from _timing import Stats, Verdict, add_arguments, legend, load_line, measure


def make_files(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """``count`` distinct JPEGs with one real face each, deterministic: the demo portrait (Grace Hopper,
    shipped in matplotlib) scaled to the canvas height, placed at a random offset on a smooth
    background, with brightness jitter and noise. A face is needed: without one the server answers
    ``no_face`` before the model runs, and the bench would time nothing."""
    width, height = size
    photo = Image.open(sample_photo()).convert("RGB")
    scale = min(height / photo.height, width / photo.width)
    face = np.asarray(photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    files = []
    for index in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        canvas = np.stack([np.sin(xx / rng.uniform(20, 80) + c) * np.cos(yy / rng.uniform(20, 80)) for c in range(3)], axis=2) * 90 + 128
        x0 = int(rng.integers(0, width - face.shape[1] + 1))
        canvas[: face.shape[0], x0 : x0 + face.shape[1]] = face * rng.uniform(0.8, 1.2)
        image = (canvas + rng.normal(0, 4, canvas.shape)).clip(0, 255).astype(np.uint8)
        path = folder / f"img{index:03d}.jpg"
        Image.fromarray(image).save(path, quality=90)
        files.append(path)
    return files


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(url: str, payloads: list[tuple[str, bytes]], concurrency: int, total: int) -> tuple[float, list[float], int]:
    """Send ``total`` uploads with ``concurrency`` threads; (wall seconds, latencies, error count)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                name, data = payloads[index % len(payloads)]
                start = time.perf_counter()
                response = client.post("/v1/analyze", files={"file": (name, data, "image/jpeg")})
                elapsed = time.perf_counter() - start
                ok = response.status_code == 200 and b'"status":"ok"' in response.content
                with lock:
                    latencies.append(elapsed)
                    errors += 0 if ok else 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies, errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str | None, device: str, port: int, extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepfake_attention.service.serve", "--host", "127.0.0.1", "--port", str(port),
               "--device", device, "--log-level", "warning", "--max-concurrent", "256", *extra]
    if model:
        command += ["--model", model]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not become ready in 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--files", type=int, default=24, help="distinct images (default 24)")
    parser.add_argument("--size", default="640x480", help="image size WxH (default 640x480)")
    parser.add_argument("--requests", type=int, default=48, help="measured requests per concurrency level (default 48)")
    parser.add_argument("--warmup", type=int, default=256,
                        help="warm-up requests at the highest concurrency before measuring (default 256: RSS settles after ~200)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads for analyze and the server alike (default: torch's)")
    parser.add_argument("--server-args", default="", help="extra flags for the server, e.g. '--batch-size 16 --threads 2'")
    add_arguments(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory(prefix="service-load-") as tmp:
        files = make_files(Path(tmp), args.files, (width, height))
        faceless = [f.name for f in files if len(detect_faces(read_image(f), "haar")) != 1]
        if faceless:
            raise RuntimeError(f"the bench's images must hold one face each; not: {faceless}")
        payloads = [(f.name, f.read_bytes()) for f in files]
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        detector = Detector.load(args.model, device=args.device)
        outputs = iter(range(1_000_000))

        def analyze_run(batch: int):
            def run() -> None:  # the same rendered outputs as the server's (maps and panels)
                analyze(files, Path(tmp) / f"out{next(outputs)}", model=detector, save_maps="all", batch_size=batch, progress=False)
            return run

        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; torch threads {torch.get_num_threads()}; {len(files)} files {width}x{height}; "
              f"model {args.model or 'shipped default'}; analyze end to end (save_maps=all: panel + attention + Grad-CAM++ PNGs) with the model "
              f"already loaded, at batch 1 and 16, interleaved with the load rounds while the server is idle")
        print(legend(args.repeats, args.warmup_rounds))
        port = free_port()
        extra = args.server_args.split() + (["--torch-threads", str(args.torch_threads)] if args.torch_threads else [])
        server = start_server(args.model, args.device, port, extra)
        url = f"http://127.0.0.1:{port}"

        def drive_run(concurrency: int):
            def run() -> dict:
                drive(url, payloads, concurrency, concurrency)  # settle at this concurrency
                rss_before = rss_mib(server.pid)
                cpu_server, cpu_self = cpu_seconds(server.pid), time.process_time()
                wall, latencies, errors = drive(url, payloads, concurrency, args.requests)
                return {"rate": len(latencies) / wall, "latencies": latencies, "errors": errors, "rss_before": rss_before, "rss_after": rss_mib(server.pid),
                        "server_cores": (cpu_seconds(server.pid) - cpu_server) / wall, "client_cores": (time.process_time() - cpu_self) / wall}
            return run

        try:
            rss_start = rss_mib(server.pid)
            top = max(args.concurrency)
            drive(url, payloads, top, args.warmup)  # warm-up at the highest concurrency: buffers, malloc arenas
            rss_warm = rss_mib(server.pid)
            fns = {"analyze batch 1": analyze_run(1), "analyze batch 16": analyze_run(16), **{f"C={c}": drive_run(c) for c in args.concurrency}}
            t = measure(fns, repeats=args.repeats, warmup=args.warmup_rounds)
            ready = httpx.get(url + "/v1/ready").json()
        finally:
            server.terminate()
            server.wait(30)
    rates = {batch: t.rate(f"analyze batch {batch}", len(files)) for batch in (1, 16)}
    analyze_rates = [max(rates[1].values[r], rates[16].values[r]) for r in range(t.repeats)]  # per round, the faster batch size
    print("analyze images/s: " + ", ".join(f"batch {b}: {r.show(2)}" for b, r in rates.items()) + "; the denominator below is, per round, the faster of the two")
    verdict = Verdict()
    rows = []
    for concurrency in args.concurrency:
        results = t.results[f"C={concurrency}"]
        latencies = [value for result in results for value in result["latencies"]]
        rate = Stats.of(result["rate"] for result in results)
        relative = verdict.ratio(f"C={concurrency} req/s / analyze images/s", Stats.of(result["rate"] / analyze_rates[r] for r, result in enumerate(results)))
        before, after = results[0]["rss_before"], results[-1]["rss_after"]
        rows.append([concurrency, len(latencies), rate.show(2), statistics.median(latencies) * 1000, float(np.percentile(latencies, 99)) * 1000,
                     sum(result["errors"] for result in results), before, after, 100 * (after - before) / before,
                     Stats.of(result["server_cores"] for result in results).median, Stats.of(result["client_cores"] for result in results).median,
                     relative.show_ratio()])
    print_table(["C", "requests", "req/s", "p50 ms", "p99 ms", "errors", "RSS before MiB", "RSS after MiB", "growth %",
                 "server cores", "loadgen cores", "req/s / analyze (goal>=0.7)"], rows)
    print(f"(requests, latencies and errors over all {t.repeats} rounds; RSS before the first and after the last round of that C; cores are medians)")
    print(f"server RSS: {rss_start:.0f} MiB when ready, {rss_warm:.0f} MiB after warm-up ({args.warmup} requests at C={top}), "
          f"{rows[-1][7]:.0f} MiB at the end: {100 * (rows[-1][7] - rss_warm) / rss_warm:+.1f}% after warm-up")
    print(f"mean batch: {ready['requests'] / max(1, ready['batches']):.2f} requests per forward pass over {ready['batches']} passes")
    return verdict.report(args.strict, load=load_line("after the run"))

if __name__ == "__main__":
    sys.exit(main())
