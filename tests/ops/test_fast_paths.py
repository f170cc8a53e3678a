"""Every fast path equals its slow, straightforward restatement: SMoA dispatch, FPS kernels, kNN, bf16 inference."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pcpeft.peft.smoa import SharedMixtureOfAdapters


# -- SMoA ------------------------------------------------------------------------------------------------------
def loop_smoa(pool: SharedMixtureOfAdapters, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-expert loop SMoA ran before the grouped/dense dispatch (nonzero, index_select, index_add per
    expert). h (B, T, D) -> output (B, T, D), top-1 routing (B, T, heads), balance loss ()."""
    batch, tokens, dim = h.shape
    chunks = h.reshape(-1, pool.chunk)
    probs = pool.route(chunks)
    gates, experts = probs.topk(pool.top_k, dim=-1)
    out = torch.zeros_like(chunks)
    for expert in range(pool.num_experts):
        rows, slot = (experts == expert).nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue
        x = chunks.index_select(0, rows)
        y = F.gelu(x @ pool.down_weight[expert] + pool.down_bias[expert]) @ pool.up_weight[expert] \
            + pool.up_bias[expert]
        out = out.index_add(0, rows, y * gates[rows, slot].unsqueeze(-1))
    top1 = experts[:, 0]
    fraction = F.one_hot(top1, pool.num_experts).float().mean(0)
    balance = pool.num_experts * (fraction * probs.mean(0)).sum()
    return out.reshape(batch, tokens, dim), top1.reshape(batch, tokens, pool.heads), balance


def trained_pool(top_k: int, num_experts: int = 8) -> SharedMixtureOfAdapters:
    """A pool with non-zero up projections and biases (a zero-initialised pool would output zeros everywhere)."""
    torch.manual_seed(0)
    pool = SharedMixtureOfAdapters(384, num_experts=num_experts, top_k=top_k)
    with torch.no_grad():
        for p in (pool.up_weight, pool.up_bias, pool.down_bias):
            p.normal_(0, 0.05)
    return pool


@pytest.mark.parametrize("dispatch", ["batched", "sorted", "dense"])
@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_smoa_dispatch_equals_the_per_expert_loop(dispatch, top_k):
    pool = trained_pool(top_k)
    pool.dispatch = dispatch
    h = torch.randn(3, 37, 384, requires_grad=True)
    expected, routing, balance = loop_smoa(pool, h)
    grads_expected = torch.autograd.grad((expected.square().sum() + balance), [h, *pool.parameters()])
    out = pool(h, block_index=4)
    assert out.shape == (3, 37, 384)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert torch.equal(pool.last_routing[4], routing)
    torch.testing.assert_close(pool._balance_losses[4], balance, rtol=0, atol=1e-6)
    grads = torch.autograd.grad((out.square().sum() + pool._balance_losses[4]), [h, *pool.parameters()])
    for got, want in zip(grads, grads_expected):  # sums of hundreds of terms: tolerance relative to the scale
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * max(1.0, want.abs().max().item()))


def test_smoa_dispatch_handles_experts_nobody_chose():
    pool = trained_pool(1, num_experts=8)
    with torch.no_grad():  # route everything to expert 3
        pool.expert_embeddings.zero_()
        pool.expert_embeddings[3] = 1.0
        pool.router.weight.zero_()
        pool.router.bias.fill_(1.0)
    h = torch.randn(2, 5, 384)
    expected, routing, _ = loop_smoa(pool, h)
    assert (routing == 3).all()
    for dispatch in ("batched", "sorted", "dense"):
        pool.dispatch = dispatch
        torch.testing.assert_close(pool(h, 0), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dispatch", ["batched", "sorted"])
def test_smoa_grouped_dispatch_reads_the_host_once_per_block(monkeypatch, dispatch):
    """No per-expert ``nonzero``: the only host read is one read of the expert counts."""
    pool = trained_pool(2)
    pool.dispatch = dispatch
    calls = {"nonzero": 0}
    real_nonzero = torch.Tensor.nonzero

    def counting_nonzero(self, *args, **kwargs):
        calls["nonzero"] += 1
        return real_nonzero(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "nonzero", counting_nonzero)
    pool(torch.randn(2, 9, 384), 0)
    assert calls["nonzero"] == 0


def test_smoa_auto_dispatch_is_batched_on_cpu(monkeypatch):
    pool = trained_pool(1)
    used = []
    monkeypatch.setattr(pool, "_batched_experts", lambda *a: used.append("batched") or a[0])
    pool(torch.randn(1, 3, 384), 0)
    assert pool.dispatch == "auto" and used == ["batched"]


def test_smoa_rejects_an_unknown_dispatch():
    from pcpeft.peft.base import PeftError

    with pytest.raises(PeftError, match="dispatch"):
        SharedMixtureOfAdapters(384, dispatch="magic")


# -- FPS and kNN kernels ---------------------------------------------------------------------------------------
from pcpeft.ops import farthest_point_sample, fps_numba, fps_torch, knn_indices, knn_numba, knn_torch  # noqa: E402
from pcpeft.ops import fps as fps_module  # noqa: E402
from pcpeft.ops import knn as knn_module  # noqa: E402


def kernel_clouds() -> dict[str, torch.Tensor]:
    """Random clouds, duplicates, lattice ties, near-origin points, clouds with fewer distinct points than asked."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(3, 300, 3, generator=gen)
    near = torch.randn(2, 700, 3, generator=gen)
    near[:, 5::50] *= 1e-3  # points inside the pointnet2 kernel's near-origin radius
    return {
        "normal": torch.randn(4, 2048, 3, generator=gen),
        "uniform": torch.rand(3, 1500, 3, generator=gen) * 2 - 1,
        "duplicates": torch.cat([base, base, base[:, :60]], dim=1)[:, torch.randperm(660, generator=gen)],
        "lattice": torch.randint(-3, 4, (2, 900, 3), generator=gen).float(),  # many exactly equal distances
        "near_origin": near,
        "exhausted": torch.randn(2, 40, 3, generator=gen).repeat(1, 4, 1),
    }


@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("name", list(kernel_clouds()))
def test_numba_fps_equals_the_torch_loop(name, exclude):
    cloud = kernel_clouds()[name]
    count = min(128, cloud.shape[1])
    expected = fps_torch(cloud, count, exclude)
    got = fps_numba(cloud, count, exclude)
    assert got.dtype == torch.int64 and got.shape == expected.shape
    assert torch.equal(got, expected)


def test_numba_fps_honours_exclude_near_origin():
    # a unit sphere with points at the origin: textbook FPS picks them early, the pointnet2 kernel never can
    gen = torch.Generator().manual_seed(1)
    cloud = F.normalize(torch.randn(2, 500, 3, generator=gen), dim=-1)
    cloud[:, 7::100] = 1e-3 * torch.randn(2, 5, 3, generator=gen)
    near = set(range(7, 500, 100))
    assert set(fps_numba(cloud, 64)[:, 1:].flatten().tolist()) & near
    picked = fps_numba(cloud, 64, exclude_near_origin=True)
    assert not set(picked[:, 1:].flatten().tolist()) & near
    assert torch.equal(picked, fps_torch(cloud, 64, exclude_near_origin=True))


def stable_knn(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Straightforward restatement: per-coordinate float32 distances, a stable full sort, the first k."""
    dist = (queries[:, :, None, 0] - points[:, None, :, 0]) ** 2
    for d in range(1, points.shape[-1]):
        dist = dist + (queries[:, :, None, d] - points[:, None, :, d]) ** 2
    return dist.sort(dim=-1, stable=True).indices[..., :k]


@pytest.mark.parametrize("name", list(kernel_clouds()))
def test_knn_backends_equal_the_stable_restatement(name):
    cloud = kernel_clouds()[name]
    queries = cloud[:, 3:67] + 0.01 * (name == "normal")  # some queries on points, some off
    expected = stable_knn(cloud, queries, 32)
    assert torch.equal(knn_torch(cloud, queries, 32), expected)
    assert torch.equal(knn_numba(cloud, queries, 32), expected)
    assert torch.equal(knn_indices(cloud, queries, 32), expected)


@pytest.mark.parametrize("dims", [2, 5])
def test_knn_numba_in_other_dimensions_equals_the_stable_restatement(dims):
    gen = torch.Generator().manual_seed(4)
    cloud = torch.randint(-2, 3, (2, 517, dims), generator=gen).float()  # ties everywhere, N not a block multiple
    queries = cloud[:, :40] + 0.5
    assert torch.equal(knn_numba(cloud, queries, 24), stable_knn(cloud, queries, 24))


@pytest.mark.parametrize("points", [1, 5, 31, 33, 64, 95])
def test_numba_fps_on_short_lattice_clouds_equals_the_torch_loop(points):
    # every centre taken (all distinct points exhausted, index 0 repeated), ties everywhere, odd lengths
    gen = torch.Generator().manual_seed(points)
    cloud = torch.randint(-2, 3, (3, points, 3), generator=gen).float()
    assert torch.equal(fps_numba(cloud, points, False), fps_torch(cloud, points, False))
    assert torch.equal(fps_numba(cloud, points, True), fps_torch(cloud, points, True))


def test_numba_fps_with_every_point_excluded_equals_the_torch_loop():
    # every min_dist is -1: the integer keys of negative floats must still order and pick index 0
    cloud = 1e-3 * torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(9))
    assert torch.equal(fps_numba(cloud, 20, True), fps_torch(cloud, 20, True))
    assert fps_numba(cloud, 20, True).eq(0).all()


def test_numba_fps_update_loop_compiles_without_masked_stores():
    """An in-place ``a[i] = d if d < a[i] else a[i]`` becomes a conditional store that LLVM vectorises as a masked
    store (``vmaskmovps``: microcoded on AMD Zen, 3-6x slower there). The double-buffered update must not."""
    import numba
    import numpy as np

    from pcpeft.ops import numba_kernels

    fresh = numba.njit(nogil=True)(numba_kernels._fps_cloud.py_func)  # a new compile: cached ones keep no assembly
    x, y, z = (np.random.default_rng(i).random(64, dtype=np.float32) for i in range(3))
    out = np.empty(8, dtype=np.int64)
    fresh(x, y, z, 8, np.full(64, 1e10, np.float32), np.empty(64, np.float32), out)
    assert torch.equal(torch.from_numpy(out), fps_torch(torch.from_numpy(np.stack([x, y, z], -1))[None], 8)[0])
    assert not masked_stores(fresh.inspect_asm(fresh.signatures[0]))


def masked_stores(assembly: str) -> list[str]:
    """AVX/AVX2 ``vmaskmov*`` and AVX-512 ``vmov* %reg, mem {%kN}`` lines of AT&T assembly."""
    avx512 = re.compile(r"^\s*vmov\w*\s+%[xyz]mm\d+,\s*[^,]*\(.*\{%k[1-7]\}")
    return [line for line in assembly.splitlines() if "maskmov" in line or avx512.match(line)]


def test_masked_store_detector_finds_the_in_place_update():
    import numba
    import numpy as np

    @numba.njit
    def in_place(x, md, c):
        for i in range(x.shape[0]):
            d = (x[i] - c) * (x[i] - c)
            m = md[i]
            md[i] = d if d < m else m

    in_place(np.ones(64, np.float32), np.ones(64, np.float32), np.float32(0.5))
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists() or not any(flag in cpuinfo.read_text() for flag in (" avx2", " avx512f")):
        pytest.skip("no AVX2 / AVX-512 here: LLVM emits no vector masked stores at all")
    assert masked_stores(in_place.inspect_asm(in_place.signatures[0]))


@pytest.mark.parametrize("k", [1, 7, 32])
@pytest.mark.parametrize("points", [32 * 32, 3000, 32 * 40 + 31])
def test_numba_knn_column_bound_path_equals_the_stable_restatement_with_ties(points, k):
    # N >= 32 k takes the column-minimum bound; a 5^3 lattice makes ties at every distance, and the tail past the
    # 32-row matrix (N % 32 points) is ranked with the rest
    gen = torch.Generator().manual_seed(points + k)
    cloud = torch.randint(-2, 3, (2, points, 3), generator=gen).float()
    for queries in (cloud[:, :40], cloud[:, -40:] + 0.5, torch.zeros(2, 3, 3)):
        assert torch.equal(knn_numba(cloud, queries, k), stable_knn(cloud, queries, k))


def test_numba_knn_with_nan_points_returns_indices_in_range():
    # NaN distances satisfy no comparison, so the column bound can find fewer than k candidates: the kernel must
    # fall back to the sequential pass instead of returning uninitialised indices
    cloud = torch.randn(2, 2048, 3, generator=torch.Generator().manual_seed(5))
    cloud[:, ::2] = float("nan")
    got = knn_numba(cloud, cloud[:, 1:9].clone(), 32)
    assert bool(((got >= 0) & (got < 2048)).all())
    assert all(len(set(row.tolist())) == 32 for row in got.reshape(-1, 32))  # 32 distinct neighbours each


def test_numba_knn_bound_pass_compiles_without_masked_stores():
    import numba
    import numpy as np

    from pcpeft.ops import numba_kernels

    fresh = numba.njit(nogil=True)(numba_kernels._knn_query_3d.py_func)
    x, y, z = (np.random.default_rng(i).random(2048, dtype=np.float32) for i in range(3))
    out = np.empty(8, dtype=np.int64)
    fresh(x, y, z, np.float32(0.5), np.float32(0.5), np.float32(0.5), 8, np.empty(2048, np.float32),
          np.empty(64, np.float32), np.empty(64, np.float32), out)
    cloud = torch.from_numpy(np.stack([x, y, z], -1))[None]
    assert torch.equal(torch.from_numpy(out), stable_knn(cloud, torch.full((1, 1, 3), 0.5), 8)[0, 0])
    assert not masked_stores(fresh.inspect_asm(fresh.signatures[0]))


def test_knn_torch_still_equals_plain_topk_without_ties():
    gen = torch.Generator().manual_seed(3)
    cloud = torch.randn(2, 3000, 3, generator=gen)
    queries = cloud[:, :100]
    dist = ((queries[:, :, None] - cloud[:, None]) ** 2).sum(-1)
    assert torch.equal(knn_torch(cloud, queries, 16), dist.topk(16, dim=-1, largest=False).indices)


def test_auto_backends_are_measured_once_per_shape(monkeypatch):
    monkeypatch.setattr(fps_module, "_MEASURED", {})
    monkeypatch.setattr(knn_module, "_MEASURED", {})
    cloud = torch.randn(2, 333, 3)
    calls = {"n": 0}
    real = fps_module.measured_fastest

    def counting(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(fps_module, "measured_fastest", counting)
    first = farthest_point_sample(cloud, 20)
    again = farthest_point_sample(cloud, 20)
    assert torch.equal(first, fps_torch(cloud, 20)) and torch.equal(again, first)
    assert list(fps_module._MEASURED) == [("cpu", 2, 333, 20)]
    assert fps_module._MEASURED[("cpu", 2, 333, 20)] in fps_module.available_fps_backends("cpu")
    assert calls["n"] == 2  # consulted each call, measured on the first only (the cache answers the second)
    knn_indices(cloud, cloud[:, :20], 8)
    assert list(knn_module._MEASURED) == [("cpu", 2, 333, 3, 20, 8)]


def test_named_backends_are_checked():
    cloud = torch.randn(1, 50, 3)
    with pytest.raises(ValueError, match="unknown kNN backend"):
        knn_indices(cloud, cloud[:, :4], 3, backend="kd")
    with pytest.raises(ValueError, match="unknown FPS backend"):
        farthest_point_sample(cloud, 4, backend="kd")


# -- bf16 on CPU -----------------------------------------------------------------------------------------------
from pcpeft.engine.training.precision import cpu_native_bf16, select_precision  # noqa: E402

#: Documented bound (docs/benchmarks.md): bf16-autocast logits of the full 12-block Point-MAE differ from fp32 by at
#: most this fraction of the fp32 logits' range (bf16 keeps 8 mantissa bits: ~0.4% per rounding).
BF16_LOGIT_TOLERANCE = 0.05


@pytest.mark.parametrize("method", [None, "adapter_x"])
def test_bf16_inference_logits_are_within_the_documented_tolerance(method):
    import pcpeft
    from pcpeft.peft import get_peft_model

    torch.manual_seed(0)
    model = pcpeft.create_model("point_mae", num_classes=15, num_group=32, group_size=16, drop_path_rate=0.0)
    if method:
        model = get_peft_model(model, method)
        with torch.no_grad():  # make the adapters matter (they are zero-initialised)
            for name, p in model.named_parameters():
                if p.requires_grad and "up_weight" in name:
                    p.normal_(0, 0.02)
    model.eval()
    points = torch.randn(4, 512, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fp32 = model(points)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(points)
    assert bf16.dtype == torch.bfloat16  # autocast really ran the matmuls in bf16
    scale = (fp32.max() - fp32.min()).item()
    assert (bf16.float() - fp32).abs().max().item() <= BF16_LOGIT_TOLERANCE * scale
    assert not torch.equal(bf16.float(), fp32)


def test_cpu_bf16_is_opt_in_and_cuda_amp_is_unchanged():
    assert not select_precision("cpu", amp=True, amp_cpu=False).enabled  # the recipes' amp: true stays fp32 on CPU
    cpu = select_precision("cpu", amp=False, amp_cpu=True)
    native, evidence = cpu_native_bf16()
    assert cpu.enabled == native and (cpu.dtype == torch.bfloat16) == native and evidence in cpu.reason
    cuda = select_precision("cuda", amp=True, amp_cpu=False)
    assert cuda.enabled and cuda.dtype == torch.float16
    assert not select_precision("cuda", amp=False, amp_cpu=True).enabled


def _fps_in_child(queue) -> None:
    cloud = torch.randn(3, 400, 3, generator=torch.Generator().manual_seed(9))
    queue.put(torch.equal(fps_numba(cloud, 40), fps_torch(cloud, 40)))


def test_numba_kernels_run_in_a_forked_worker_after_the_parent_used_them():
    """DataLoader workers fork after the main process has run the kernels (dataset transforms call FPS)."""
    import multiprocessing as mp

    fps_numba(torch.randn(2, 300, 3), 30)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fps_in_child, args=(queue,))
    proc.start()
    try:
        assert queue.get(timeout=120) is True
    finally:
        proc.join(timeout=60)
    assert proc.exitcode == 0


# -- the tokenizer's fp32 step -----------------------------------------------------------------------------------------
def _concatenated_tokenizer(encoder, neighbourhoods: torch.Tensor) -> torch.Tensor:
    """The official Encoder as written: Conv1d on (BG, C, M), concat[global, per-point], in-place-free ReLU."""
    batch, groups, size, _ = neighbourhoods.shape
    x = neighbourhoods.reshape(batch * groups, size, 3).transpose(2, 1)
    feat = encoder.first_conv(x)
    glob = feat.max(dim=2, keepdim=True).values
    feat = encoder.second_conv(torch.cat([glob.expand(-1, -1, size), feat], dim=1))
    return feat.max(dim=2).values.reshape(batch, groups, -1)


@pytest.mark.parametrize("widths", [(128, 256), (256, 512, 1024)], ids=["point_mae", "pointgpt_large"])
def test_split_second_conv_equals_the_concatenated_tokenizer(widths):
    from pcpeft.models.point_tokenizer import MiniPointNet

    torch.manual_seed(0)
    encoder = MiniPointNet(64, widths).train()
    neighbourhoods = torch.randn(2, 8, 16, 3, requires_grad=True)
    ours = encoder(neighbourhoods)
    ours.square().sum().backward()
    ours_grads = {n: p.grad.clone() for n, p in encoder.named_parameters()}
    ours_input_grad, neighbourhoods.grad = neighbourhoods.grad.clone(), None
    encoder.zero_grad()
    reference = _concatenated_tokenizer(encoder, neighbourhoods)
    reference.square().sum().backward()
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5)
    assert torch.allclose(ours_input_grad, neighbourhoods.grad, atol=1e-5, rtol=1e-4)
    for name, param in encoder.named_parameters():
        if name == "second_conv.0.bias" or (name.startswith("first_conv.") and name.endswith(".bias")):
            # each shifts every row of a channel that a train-mode BatchNorm then re-centres: the true gradient
            # is 0 and both computed ones are rounding noise
            continue
        scale = param.grad.abs().max()
        assert (ours_grads[name] - param.grad).abs().max() <= 1e-4 * scale, name  # float rounding of the sums


@pytest.mark.parametrize("widths", [(128, 256), (256, 512, 1024)], ids=["point_mae", "pointgpt_large"])
def test_unrecorded_tokenizer_equals_the_recorded_one_bit_for_bit(widths):
    """Frozen or inference tokenizer: amax and in-place add / ReLU; the recorded one: max(dim) and out-of-place ops.
    Same arithmetic, so the same bits; and both equal the concatenated official form to float rounding."""
    from pcpeft.models.point_tokenizer import MiniPointNet

    torch.manual_seed(0)
    encoder = MiniPointNet(64, widths).eval()
    neighbourhoods = torch.randn(2, 8, 16, 3)
    assert encoder._fusable()
    recorded = encoder(neighbourhoods.clone().requires_grad_())
    assert recorded.grad_fn is not None
    with torch.no_grad():
        unrecorded = encoder(neighbourhoods)
        reference = _concatenated_tokenizer(encoder, neighbourhoods)
    assert torch.equal(recorded.detach(), unrecorded)
    assert torch.allclose(unrecorded, reference, atol=1e-5, rtol=1e-5)


class _ChannelsLastWrapper(torch.nn.Module):
    """A kernel-1 conv wrapped by something other than a Conv1d, run on channels-last input."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return torch.nn.functional.linear(x, self.conv.weight.squeeze(-1), self.conv.bias)


def test_tokenizer_with_a_wrapped_conv_falls_back_to_the_concatenated_form():
    from pcpeft.models.point_tokenizer import MiniPointNet

    torch.manual_seed(0)
    encoder = MiniPointNet(32).eval()
    neighbourhoods = torch.randn(2, 4, 8, 3)
    with torch.no_grad():
        fused = encoder(neighbourhoods)
        encoder.second_conv[0] = _ChannelsLastWrapper(encoder.second_conv[0])  # as a method wrapping it would
        assert not encoder._fusable()
        assert torch.allclose(encoder(neighbourhoods), fused, atol=1e-5, rtol=1e-5)


def test_recorded_max_over_points_sends_the_gradient_to_the_first_maximum_like_the_reference():
    from pcpeft.models.point_tokenizer import _max_over_points

    x = torch.tensor([[[1.0, 5.0], [3.0, 5.0], [3.0, 2.0]]], requires_grad=True)  # (1, M=3, C=2): ties in both
    _max_over_points(x).sum().backward()
    assert x.grad.tolist() == [[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]]
    with torch.no_grad():
        assert torch.equal(_max_over_points(x), torch.tensor([[3.0, 5.0]]))


def test_training_forward_records_no_slice_copy():
    """An in-place ReLU on a reshaped view made autograd record CopySlices (a copy and a zero-fill of the whole
    activation in backward, ~20% of the full step); the tokenizer must not bring it back."""
    import pcpeft

    model = pcpeft.create_model("point_mae", num_classes=5, trans_dim=32, encoder_dims=32, depth=1, num_heads=2,
                                num_group=8, group_size=8).train()
    out = model(torch.rand(2, 64, 3))
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        assert "CopySlices" not in type(node).__name__, type(node).__name__
        stack.extend(next_fn for next_fn, _ in node.next_functions)


# -- the side-by-side bench's reference DAPT ---------------------------------------------------------------------------
def test_restated_reference_dapt_equals_pcpeft_dapt_and_trains():
    import pcpeft
    from benchmarks.reference import reference_dapt
    from pcpeft.peft import get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(pcpeft.create_model("point_mae", num_classes=5, num_group=16, group_size=8, depth=2), "dapt")
    for param in model.parameters():
        if param.requires_grad:
            param.data.add_(0.05 * torch.randn_like(param))  # zero-initialised up-projections would hide the adapter
    points = torch.randn(2, 128, 3)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(reference_dapt(model, points), model(points), atol=1e-5)
    model.train()
    reference_dapt(model, points).sum().backward()  # the restatement reaches the trained tensors themselves
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None for p in trained)


def test_side_by_side_table_marks_the_dapt_time_and_memory_targets():
    from benchmarks.benchmark import side_by_side_markdown

    # per-round ratios 0.40 and 0.80: their median 0.60, not the ratio of the case medians (60 / 100)
    rows = [{"case": "adapter_x step", "median_ms": 60.0, "round_medians_ms": [40.0, 80.0], "peak_mb": 80.0,
             "tensor_mb": 60.0},
            {"case": "reference dapt step", "median_ms": 100.0, "round_medians_ms": [100.0, 100.0], "peak_mb": 100.0,
             "tensor_mb": 100.0},
            {"case": "full step", "median_ms": 90.0, "round_medians_ms": [90.0], "peak_mb": 1.0}]
    table = side_by_side_markdown(rows)
    assert "| adapter_x step / reference DAPT step | 0.60 | 0.40, 0.80 | <= 0.60: met |" in table
    assert "| adapter_x step / pcpeft full | 0.67 |  |  |" in table  # rounds that do not pair: the medians' ratio
    assert "| adapter_x peak live tensors / reference DAPT | 0.60 | | <= 0.70: met |" in table
    assert "| adapter_x peak RSS growth / reference DAPT | 0.80 | | <= 0.70: MISSED |" in table
    assert "| adapter_x step | 60 | 40, 80 | 60 | 80 |" in table


def test_peak_live_tensor_memory_counts_what_a_step_holds_at_once():
    from benchmarks.benchmark import _peak_tensor_mb

    def step():
        a = torch.ones(2 ** 20)  # 4 MB
        b = torch.ones(2 ** 20)  # 8 MB live
        del a, b
        c = torch.ones(2 ** 19)  # 2 MB, after both were freed
        return c.sum()

    peak = _peak_tensor_mb(step)
    assert peak is not None and 8.0 <= peak < 8.5


def test_side_by_side_names_a_bf16_case_it_could_not_run_instead_of_timing_emulated_bf16(monkeypatch):
    from benchmarks import benchmark

    monkeypatch.setattr(benchmark, "cpu_native_bf16", lambda: (False, "no avx512_bf16 cpu flag"))
    rows = benchmark.bench_side_by_side(cases=("full step bf16",))  # would take minutes if it really ran
    assert rows == [{"case": "full step bf16",
                     "skipped": "not run: no avx512_bf16 cpu flag (emulated bf16 is far slower than fp32)"}]
    rows.append({"case": "reference full step", "median_ms": 100.0, "round_medians_ms": [100.0], "peak_mb": 1.0})
    table = benchmark.side_by_side_markdown(rows)
    assert "| full step in bf16 / reference fp32 | - | | <= 0.30: not measured (not run: no avx512_bf16" in table


def test_zeroed_smoa_case_times_the_prompts_alone_and_keeps_the_fresh_logits():
    """The diagnostic ``SMoA zeroed`` case skips the pool (no routing recorded) but still inserts the prompt tokens;
    a fresh adapter_x (zero-initialised up projections) gives the same logits both ways."""
    import pcpeft
    from benchmarks import benchmark
    from pcpeft.peft import get_peft_model

    assert "adapter_x inference, SMoA zeroed" in benchmark.SMOA_ZEROED_CASES
    torch.manual_seed(0)
    model = get_peft_model(pcpeft.create_model("point_mae", num_classes=5, num_group=16, group_size=8, depth=2),
                           "adapter_x").eval()
    points = torch.randn(2, 128, 3)
    tokens = []
    model.base_model.block_stack[1].register_forward_hook(lambda mod, args, out: tokens.append(out.shape[1]))
    with torch.no_grad():
        expected = model(points)
        benchmark.zero_smoa_pool(model)
        model.peft_modules["smoa"].last_routing.clear()
        got = model(points)
    assert torch.equal(got, expected)
    assert model.peft_modules["smoa"].last_routing == {}  # the pool did not run
    assert tokens == [1 + 16 + 1, 1 + 16 + 1]  # cls, 16 groups, block 0's prompt: the prompts still run
