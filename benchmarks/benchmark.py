"""Speed and memory of every PEFT method and of the grouping ops (what ``tools/bench.py`` prints).

Per method, on one backbone and input shape: trainable parameters, the median training step (forward, backward,
AdamW step) after warm-up, peak memory of training (CUDA: ``max_memory_allocated``; CPU: the increase of the
process's peak RSS over its value after building the model, each method in a fresh process, and the peak of live
tensor bytes of one step), inference latency,
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

from pcpeft._allocator import tune_cpu_allocator
from pcpeft.engine.training.precision import cpu_native_bf16, select_precision
from pcpeft.models.registry import create_model
from pcpeft.ops.fps import available_fps_backends, farthest_point_sample
from pcpeft.ops.knn import available_knn_backends, knn_indices
from pcpeft.peft import get_peft_model

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
    #: CPU: the peak of live tensor bytes of one training step (:func:`_peak_tensor_mb`); CUDA: None (there
    #: ``peak_memory_mb`` already is ``max_memory_allocated``)
    peak_tensors_mb: float | None = None


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


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MB; None where there is no such file."""
    try:
        with open("/proc/self/status") as f:
            line = next((ln for ln in f if ln.startswith(field + ":")), None)
    except OSError:
        return None
    return None if line is None else int(line.split()[1]) / 1024  # kB


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far (since the last :func:`_rss_baseline_mb`, on Linux)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _rss_baseline_mb() -> float:
    """Start a peak-memory measurement: on Linux the peak is reset to the current resident size (``clear_refs``
    5), so an earlier transient (a one-time warm-up, code loading) is not the baseline; returns that baseline."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        current = _status_mb("VmRSS")
        if current is not None:
            return current
    except OSError:
        pass
    return _peak_rss_mb()


def _warm_grouping(model, points: torch.Tensor, reference: bool) -> None:
    """One grouping call on a single cloud, before a memory baseline: loading the compiled (numba) kernels costs
    ~150 MB of resident code once per process, which is not training memory; the reference's torch stand-ins are
    warmed the same way."""
    from pcpeft.ops.fps import fps_torch
    from pcpeft.ops.grouping import gather_points
    from pcpeft.ops.knn import knn_torch

    one = points[:1]
    grouper = getattr(getattr(model, "base_model", model), "group_divider", None)
    if grouper is None:  # not a point model
        return
    if reference:
        centres = gather_points(one, fps_torch(one, grouper.num_group, grouper.exclude_near_origin))
        knn_torch(one, centres, grouper.group_size)
    else:
        grouper(one)


def bench_method(method: str, shape: str, batch: int, device: str, repeats: int, warmup: int,
                 backbone: str = "point_mae", amp: bool = False) -> MethodRow:
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

    precision = select_precision(dev, amp, amp)

    def step():
        with precision.autocast():
            loss = F.cross_entropy(model(points).float(), labels) + model.aux_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _warm_grouping(model, points, reference=False)
        base = _rss_baseline_mb()
    step_ms = median_ms(step, dev, repeats, warmup)
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if dev.type == "cuda" else _peak_rss_mb() - base
    tensor_peak = _peak_step_tensors_mb(step, opt) if dev.type == "cpu" else None
    model.eval()
    with torch.no_grad():
        with precision.autocast():
            infer = median_ms(lambda: model(points), dev, repeats, warmup)
        row = MethodRow(method, trainable, 100 * trainable / total, step_ms, peak, infer,
                        peak_tensors_mb=tensor_peak)
        if method in MERGEABLE:
            merged = model.merge_and_unload().eval()
            row.merged_infer_ms = median_ms(lambda: merged(points), dev, repeats, warmup)
            plain = create_model(backbone, num_classes=spec["num_classes"], num_group=spec["num_group"],
                                 group_size=spec["group_size"]).to(dev).eval()
            row.plain_infer_ms = median_ms(lambda: plain(points), dev, repeats, warmup)
    return row


def _child(queue, *args) -> None:
    tune_cpu_allocator()  # as the tools run
    torch.set_num_threads(torch.get_num_threads())
    queue.put(asdict(bench_method(*args)))


def bench_methods(methods=DEFAULT_METHODS, shape: str = "scanobjectnn", batch: int = 32, device: str = "cpu",
                  repeats: int = 5, warmup: int = 2, isolate: bool = True, amp: bool = False) -> list[dict]:
    """Rows for every method (each in a fresh spawned process when ``isolate`` and on CPU)."""
    rows = []
    for method in methods:
        args = (method, shape, batch, device, repeats, warmup, "point_mae", amp)
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
             ("modelnet40 train 8192->1200", batch, 8192, 1200), ("8192->1024", batch, 8192, 1024)]
    rows = []
    for name, b, n, g in cases:
        points = torch.randn(b, n, 3, device=dev)
        row = {"case": name, "batch": b}
        for backend in available_fps_backends(dev):
            row[f"fps_{backend}_ms"] = median_ms(lambda: farthest_point_sample(points, g, backend), dev, repeats, 1)
        centres = points[:, :g]
        for backend in available_knn_backends(dev):
            row[f"knn32_{backend}_ms"] = median_ms(lambda: knn_indices(points, centres, 32, backend), dev, repeats, 1)
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
    """The methods table. Memory: ``peak train memory`` is CUDA's ``max_memory_allocated`` or, on CPU, the growth
    of the process's peak RSS; ``peak live tensors`` (CPU) is the peak of tensor bytes alive at once in one step."""
    lines = ["| method | trainable | % | train step (ms) | peak train memory (MB) | peak live tensors (MB) | "
             "inference (ms) | merged (ms) | plain backbone (ms) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    fmt = lambda v, digits=1: "" if v is None else f"{v:.{digits}f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['method']} | {r['trainable']:,} | {r['percent']:.3f} | {r['train_step_ms']:.0f} | "
                     f"{r['peak_memory_mb']:.0f} | {fmt(r.get('peak_tensors_mb'), 0)} | {r['infer_ms']:.1f} | "
                     f"{fmt(r['merged_infer_ms'])} | {fmt(r['plain_infer_ms'])} |")
    return "\n".join(lines)


def grouping_markdown(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k.endswith("_ms")]
    lines = ["| case | batch | " + " | ".join(keys) + " |", "| --- | ---: |" + " ---: |" * len(keys)]
    lines += [f"| {r['case']} | {r['batch']} | " + " | ".join(f"{r[k]:.1f}" for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def target_checks(rows: list[dict], grouping: list[dict]) -> list[str]:
    """The speed and memory targets as ratios within this run, each marked met / MISSED."""
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
    for g in grouping:
        fast = {k: v for k, v in g.items() if k.startswith("fps_") and k != "fps_torch_ms"}
        if g["case"].startswith(("scanobjectnn", "8192->1024")) and fast:
            name = min(fast, key=fast.get)
            speedup = g["fps_torch_ms"] / fast[name]
            out.append(f"FPS speed-up ({name[4:-3]}) over the torch loop at {g['case']} x{g['batch']} = "
                       f"{speedup:.1f}x (target >= 10x): {'met' if speedup >= 10 else 'MISSED'}")
        if g["case"].startswith("modelnet40 train") and "knn32_numba_ms" in g:
            speedup = g["knn32_torch_ms"] / g["knn32_numba_ms"]
            out.append(f"kNN speed-up (numba) over torch at {g['case']} x{g['batch']} = {speedup:.1f}x "
                       f"(target >= 5x): {'met' if speedup >= 5 else 'MISSED'}")
    return out


# -- side by side with the reference forward -------------------------------------------------------------------
#: case -> (model: "plain" | method name, "step" | "infer", "pcpeft" | "reference", autocast bf16, tuned allocator).
#: pcpeft's cases run as its tools run (the CPU allocator tuned, :mod:`pcpeft._allocator`), the reference's as the
#: official code runs (glibc's defaults); the "default allocator" cases separate the code's share of a ratio from
#: the allocator's.
SIDE_CASES = {
    "full step": ("full", "step", "pcpeft", False, True),
    "full step, default allocator": ("full", "step", "pcpeft", False, False),
    "reference full step": ("plain", "step", "reference", False, False),
    "full step bf16": ("full", "step", "pcpeft", True, True),
    "adapter_x step": ("adapter_x", "step", "pcpeft", False, True),
    "adapter_x step, default allocator": ("adapter_x", "step", "pcpeft", False, False),
    "dapt step": ("dapt", "step", "pcpeft", False, True),
    "reference dapt step": ("dapt", "step", "reference", False, False),
    "plain inference": ("plain", "infer", "pcpeft", False, True),
    "reference inference": ("plain", "infer", "reference", False, False),
    "adapter_x inference": ("adapter_x", "infer", "pcpeft", False, True),
    "adapter_x inference, SMoA zeroed": ("adapter_x", "infer", "pcpeft", False, True),
}
#: Diagnostic cases whose shared SMoA pool is replaced by zeros (:func:`zero_smoa_pool`): what the prompt tokens
#: alone cost, the floor of ``adapter_x`` inference for any SMoA implementation.
SMOA_ZEROED_CASES = frozenset({"adapter_x inference, SMoA zeroed"})
#: peak-memory ratios of step cases: (numerator case, denominator case, target or None, label, metric). Metrics:
#: ``tensor_mb`` = the peak of live tensor bytes during one step (CPU allocation events; what CUDA's
#: ``max_memory_allocated`` measures), ``peak_mb`` = the growth of the process's peak RSS over the steps (adds the
#: allocator's retained free memory and fragmentation).
SIDE_MEMORY_RATIOS = (
    ("adapter_x step", "reference dapt step", 0.70, "adapter_x peak live tensors / reference DAPT", "tensor_mb"),
    ("adapter_x step", "reference dapt step", 0.70, "adapter_x peak RSS growth / reference DAPT", "peak_mb"),
    ("adapter_x step, default allocator", "reference dapt step", None,
     "adapter_x peak RSS growth / reference DAPT, both default allocator", "peak_mb"),
    ("dapt step", "reference dapt step", None, "dapt peak live tensors / reference DAPT", "tensor_mb"),
    ("full step", "reference full step", None, "full step peak live tensors / reference", "tensor_mb"),
)
#: (numerator case, denominator case, target ratio or None, label)
SIDE_RATIOS = (
    ("full step", "reference full step", 0.70, "full fine-tuning step / reference"),
    ("full step, default allocator", "reference full step", None,
     "full fine-tuning step / reference, both default allocator"),
    ("full step bf16", "reference full step", 0.30, "full step in bf16 / reference fp32"),
    ("adapter_x step", "full step", None, "adapter_x step / pcpeft full"),
    ("dapt step", "full step", None, "dapt step / pcpeft full"),
    ("adapter_x step", "reference dapt step", 0.60, "adapter_x step / reference DAPT step"),
    ("adapter_x step, default allocator", "reference dapt step", None,
     "adapter_x step / reference DAPT step, both default allocator"),
    ("dapt step", "reference dapt step", None, "dapt step / reference DAPT step"),
    ("plain inference", "reference inference", None, "plain inference / reference"),
    ("adapter_x inference", "plain inference", 1.05, "adapter_x inference / pcpeft plain"),
    ("adapter_x inference, SMoA zeroed", "plain inference", None,
     "adapter_x prompt tokens alone (SMoA zeroed) / pcpeft plain: the floor of the line above"),
)


def zero_smoa_pool(model) -> None:
    """Replace a PEFT model's shared SMoA pool by one returning zeros (the prompt generator still reads the
    branch outputs and inserts its prompt tokens). For timing what the prompts alone cost; a fresh ``adapter_x``
    (zero-initialised up projections) computes the same logits either way."""
    pool = model.peft_modules["smoa"]
    pool.forward = lambda h, block_index: torch.zeros_like(h)


#: An inference call takes about a third of a training step: inference cases time this many times ``repeats``, so
#: that each case's median rests on as much wall time as a step case's (5 x 0.6 s was at the mercy of a noisy host).
INFER_REPEAT_FACTOR = 3


def bench_side_case(case: str, shape: str, batch: int, repeats: int, warmup: int) -> dict:
    """One side-by-side case on the same seeded inputs: median ms over ``repeats`` (``INFER_REPEAT_FACTOR`` times as
    many for inference cases; all times kept); step cases also the growth of the process's peak RSS during the
    steps (``peak_mb``, CPU; from the resident size after one grouping call, :func:`_warm_grouping`, with the peak
    reset there on Linux). A reference forward is first checked to equal pcpeft's (eval mode, 1e-4). Call in a
    fresh process: the allocator tuning is process-wide."""
    from .reference import reference_dapt, reference_point_mae

    method, kind, impl, bf16, tuned = SIDE_CASES[case]
    if tuned:
        tune_cpu_allocator()
    spec = SHAPES[shape]
    torch.manual_seed(0)
    model = create_model("point_mae", num_classes=spec["num_classes"], num_group=spec["num_group"],
                         group_size=spec["group_size"])
    if method != "plain":
        model = get_peft_model(model, method)
    if case in SMOA_ZEROED_CASES:
        zero_smoa_pool(model)
    gen = torch.Generator().manual_seed(1)
    points = torch.randn(batch, spec["npoints"], 3, generator=gen)
    labels = torch.randint(0, spec["num_classes"], (batch,), generator=gen)
    forward = lambda: model(points)  # noqa: E731
    if impl == "reference":
        restated = reference_dapt if method == "dapt" else reference_point_mae
        forward = lambda: restated(model, points)  # noqa: E731
    peak = tensor_peak = None
    if kind == "infer":
        model.eval()
        with torch.no_grad():
            times = _times(forward, repeats * INFER_REPEAT_FACTOR, warmup)
    else:
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = forward()
                aux = model.aux_loss() if hasattr(model, "aux_loss") else 0
            loss = F.cross_entropy(logits.float(), labels) + aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        _warm_grouping(model, points, reference=impl == "reference")
        before = _rss_baseline_mb()
        times = _times(step, repeats, warmup)
        peak = _peak_rss_mb() - before
        tensor_peak = _peak_step_tensors_mb(step, opt)
    if impl == "reference":  # checked after timing, so that its forwards do not raise the memory baseline
        model.eval()
        with torch.no_grad():
            gap = (forward() - model(points)).abs().max().item()
        if gap > 1e-4:
            raise RuntimeError(f"the restated reference of {case!r} differs from pcpeft's forward by {gap:.2e}")
    return {"case": case, "median_ms": statistics.median(times), "times_ms": times, "peak_mb": peak,
            "tensor_mb": tensor_peak}


def _peak_step_tensors_mb(step, optimizer: torch.optim.Optimizer) -> float | None:
    """:func:`_peak_tensor_mb` of one training ``step``, gradients dropped first so that no gradient of an
    earlier step is freed (unaccounted) inside the measured one."""
    optimizer.zero_grad(set_to_none=True)
    return _peak_tensor_mb(step)


def _peak_tensor_mb(fn) -> float | None:
    """Run ``fn`` once under the profiler's memory tracking; the peak of live tensor bytes it allocated (MB), from
    the allocation and free events in time order. None where this torch does not expose the events."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                        if e.name() == "[memory]")
    except (AttributeError, RuntimeError):
        return None
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2 ** 20


def _times(fn, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - start))
    return out


def _side_child(queue, *args) -> None:
    queue.put(bench_side_case(*args))


def bench_side_by_side(shape: str = "scanobjectnn", batch: int = 8, repeats: int = 5, warmup: int = 1,
                       rounds: int = 2, cases=tuple(SIDE_CASES)) -> list[dict]:
    """Every case in a fresh spawned process, ``rounds`` interleaved rounds (case order alternates); per case the
    median of the round medians."""
    ctx = mp.get_context("spawn")
    native_bf16, evidence = cpu_native_bf16()
    skipped = {c: f"not run: {evidence} (emulated bf16 is far slower than fp32)"
               for c in cases if SIDE_CASES[c][3] and not native_bf16}
    cases = tuple(c for c in cases if c not in skipped)
    runs: dict[str, list[dict]] = {c: [] for c in cases}
    for rnd in range(rounds):
        for case in (cases if rnd % 2 == 0 else tuple(reversed(cases))):
            queue = ctx.Queue()
            proc = ctx.Process(target=_side_child, args=(queue, case, shape, batch, repeats, warmup))
            proc.start()
            runs[case].append(queue.get())
            proc.join()
    def largest(case: str, metric: str) -> float | None:
        values = [r[metric] for r in runs[case] if r.get(metric) is not None]
        return max(values) if values else None

    return [{"case": c, "median_ms": statistics.median(r["median_ms"] for r in runs[c]),
             "round_medians_ms": [r["median_ms"] for r in runs[c]],
             "peak_mb": largest(c, "peak_mb"), "tensor_mb": largest(c, "tensor_mb")} for c in cases] + [
        {"case": c, "skipped": why} for c, why in skipped.items()]


def side_by_side_markdown(rows: list[dict]) -> str:
    """The case table and the ratio table with each target marked met / MISSED."""
    by = {r["case"]: r for r in rows}
    lines = ["| case | median (ms) | round medians (ms) | peak live tensors (MB) | peak RSS growth (MB) |",
             "| --- | ---: | --- | ---: | ---: |"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['case']} | - | {r['skipped']} | | |")
            continue
        tensors, peak = ("" if r.get(m) is None else f"{r[m]:.0f}" for m in ("tensor_mb", "peak_mb"))
        rounds = ", ".join(f"{v:.0f}" for v in r["round_medians_ms"])
        lines.append(f"| {r['case']} | {r['median_ms']:.0f} | {rounds} | {tensors} | {peak} |")
    lines += ["", "| ratio | value | per round | target |", "| --- | ---: | --- | --- |"]
    for num, den, target, label in SIDE_RATIOS:
        missing = [by[c]["skipped"] for c in (num, den) if "skipped" in by.get(c, {})]
        if missing:
            mark = "" if target is None else f"<= {target:.2f}: "
            lines.append(f"| {label} | - | | {mark}not measured ({missing[0]}) |")
        elif num in by and den in by:
            value, per_round = round_ratios(by[num], by[den])
            mark = _target_mark(value, target)
            lines.append(f"| {label} | {value:.2f} | {', '.join(f'{r:.2f}' for r in per_round)} | {mark} |")
    for num, den, target, label, metric in SIDE_MEMORY_RATIOS:
        if by.get(num, {}).get(metric) and by.get(den, {}).get(metric):
            value = by[num][metric] / by[den][metric]
            lines.append(f"| {label} | {value:.2f} | | {_target_mark(value, target)} |")
    return "\n".join(lines)


def _target_mark(value: float, target: float | None) -> str:
    """``<= target: met`` / ``MISSED``, judged on the value as printed (two decimals), or "" without a target."""
    if target is None:
        return ""
    return f"<= {target:.2f}: {'met' if round(value, 2) <= target else 'MISSED'}"


def round_ratios(num: dict, den: dict) -> tuple[float, list[float]]:
    """A time ratio of two side-by-side rows: the median of the per-round ratios (round r of both cases ran within
    the same pass over the cases, so a slow drift of the machine cancels), and those per-round ratios. Rows
    without matching rounds give the ratio of their medians."""
    upper, lower = num.get("round_medians_ms", []), den.get("round_medians_ms", [])
    if not upper or len(upper) != len(lower):
        return num["median_ms"] / den["median_ms"], []
    per_round = [a / b for a, b in zip(upper, lower)]
    return statistics.median(per_round), per_round
