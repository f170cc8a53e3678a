"""Speed and memory of every PEFT method and of the grouping ops (what ``tools/bench.py`` prints).

Per method, on one backbone and input shape: trainable parameters, the median training step (forward, backward,
AdamW step) after warm-up, peak memory of training (CUDA: ``max_memory_allocated``; CPU: the increase of the
process's peak RSS over its value after building the model, each method in a fresh process), inference latency,
and for mergeable methods the latency after ``merge_and_unload`` next to the plain backbone's.
Grouping: FPS per backend and kNN, median over repeats, the batched pure-torch FPS loop as the baseline.
"""
from __future__ import annotations

import multiprocessing as mp
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .models.registry import create_model
from .ops.fps import available_fps_backends, farthest_point_sample
from .ops.knn import knn_indices
from .peft import get_peft_model

SHAPES = {
    "scanobjectnn": dict(npoints=2048, num_group=128, group_size=32, num_classes=15),
    "modelnet40": dict(npoints=1024, num_group=64, group_size=32, num_classes=40),
}
DEFAULT_METHODS = ("full", "linear", "bitfit", "ssf", "lora", "adapter", "vpt", "idpt", "dapt", "smoa", "adapter_x",
                   "dapt_x")
MERGEABLE = ("ssf", "lora")


@dataclass
class MethodRow:
    method: str
    trainable: int
    percent: float
    train_step_ms: float
    peak_memory_mb: float
    infer_ms: float
    merged_infer_ms: float | None = None
    plain_infer_ms: float | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench_method(method: str, shape: str, batch: int, device: str, repeats: int, warmup: int,
                 backbone: str = "point_mae") -> MethodRow:
    """One method's row; call in a fresh process on CPU so the peak-RSS reading is this method's alone."""
    dev = torch.device(device)
    torch.manual_seed(0)
    spec = SHAPES[shape]
    model = get_peft_model(create_model(backbone, num_classes=spec["num_classes"], num_group=spec["num_group"],
                                        group_size=spec["group_size"]), method).to(dev)
    trainable, total = model.trainable_parameters()
    points = torch.randn(batch, spec["npoints"], 3, device=dev)
    labels = torch.randint(0, spec["num_classes"], (batch,), device=dev)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        loss = F.cross_entropy(model(points), labels) + model.aux_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _peak_rss_mb()
    step_ms = median_ms(step, dev, repeats, warmup)
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if dev.type == "cuda" else _peak_rss_mb() - base
    model.eval()
    with torch.no_grad():
        infer = median_ms(lambda: model(points), dev, repeats, warmup)
        row = MethodRow(method, trainable, 100 * trainable / total, step_ms, peak, infer)
        if method in MERGEABLE:
            merged = model.merge_and_unload().eval()
            row.merged_infer_ms = median_ms(lambda: merged(points), dev, repeats, warmup)
            plain = create_model(backbone, num_classes=spec["num_classes"], num_group=spec["num_group"],
                                 group_size=spec["group_size"]).to(dev).eval()
            row.plain_infer_ms = median_ms(lambda: plain(points), dev, repeats, warmup)
    return row


def _child(queue, *args) -> None:
    torch.set_num_threads(torch.get_num_threads())
    queue.put(asdict(bench_method(*args)))


def bench_methods(methods=DEFAULT_METHODS, shape: str = "scanobjectnn", batch: int = 32, device: str = "cpu",
                  repeats: int = 5, warmup: int = 2, isolate: bool = True) -> list[dict]:
    """Rows for every method (each in a fresh spawned process when ``isolate`` and on CPU)."""
    rows = []
    for method in methods:
        args = (method, shape, batch, device, repeats, warmup)
        if isolate and device == "cpu":
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(queue, *args))
            proc.start()
            rows.append(queue.get())
            proc.join()
        else:
            rows.append(asdict(bench_method(*args)))
    return rows


def bench_grouping(device: str = "cpu", repeats: int = 5, batch: int = 32) -> list[dict]:
    """FPS per available backend and kNN at ScanObjectNN, ModelNet40 and 8192->1024 shapes."""
    dev = torch.device(device)
    cases = [("scanobjectnn 2048->128", batch, 2048, 128), ("modelnet40 1024->64", batch, 1024, 64),
             ("modelnet40 train 8192->1200", batch, 8192, 1200), ("8192->1024", 8, 8192, 1024)]
    rows = []
    for name, b, n, g in cases:
        points = torch.randn(b, n, 3, device=dev)
        row = {"case": name, "batch": b}
        for backend in available_fps_backends(dev):
            row[f"fps_{backend}_ms"] = median_ms(lambda: farthest_point_sample(points, g, backend), dev, repeats, 1)
        centres = points[:, :g]
        row["knn32_ms"] = median_ms(lambda: knn_indices(points, centres, 32), dev, repeats, 1)
        rows.append(row)
    return rows


def machine_description(device: str = "cpu") -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    text = f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, {platform.platform()}"
    if device == "cuda" and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name()}"
    return text


def methods_markdown(rows: list[dict]) -> str:
    lines = ["| method | trainable | % | train step (ms) | peak train memory (MB) | inference (ms) | merged (ms) | "
             "plain backbone (ms) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    fmt = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['method']} | {r['trainable']:,} | {r['percent']:.3f} | {r['train_step_ms']:.0f} | "
                     f"{r['peak_memory_mb']:.0f} | {r['infer_ms']:.1f} | {fmt(r['merged_infer_ms'])} | "
                     f"{fmt(r['plain_infer_ms'])} |")
    return "\n".join(lines)


def grouping_markdown(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k.endswith("_ms")]
    lines = ["| case | batch | " + " | ".join(keys) + " |", "| --- | ---: |" + " ---: |" * len(keys)]
    lines += [f"| {r['case']} | {r['batch']} | " + " | ".join(f"{r[k]:.1f}" for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def target_checks(rows: list[dict], grouping: list[dict]) -> list[str]:
    """The issue's targets as ratios within this run, each marked met / MISSED."""
    by = {r["method"]: r for r in rows}
    out = []
    if "adapter_x" in by and "full" in by:
        step = by["adapter_x"]["train_step_ms"] / by["full"]["train_step_ms"]
        mem = by["adapter_x"]["peak_memory_mb"] / max(by["full"]["peak_memory_mb"], 1e-9)
        out.append(f"adapter_x step / full step = {step:.2f} (target <= 0.70): {'met' if step <= 0.7 else 'MISSED'}")
        out.append(f"adapter_x peak memory / full = {mem:.2f} (target <= 0.80): {'met' if mem <= 0.8 else 'MISSED'}")
    if "ssf" in by and by["ssf"]["merged_infer_ms"]:
        ratio = by["ssf"]["merged_infer_ms"] / by["ssf"]["plain_infer_ms"]
        out.append(f"ssf merged inference / plain = {ratio:.3f} (target <= 1.03): "
                   f"{'met' if ratio <= 1.03 else 'MISSED'}")
    scan = next((g for g in grouping if g["case"].startswith("scanobjectnn")), None)
    if scan and "fps_fpsample_ms" in scan:
        speedup = scan["fps_torch_ms"] / scan["fps_fpsample_ms"]
        out.append(f"CPU FPS speed-up (fpsample) over the torch loop at ScanObjectNN shapes = {speedup:.1f}x (target >= 10x): "
                   f"{'met' if speedup >= 10 else 'MISSED'}")
    return out
