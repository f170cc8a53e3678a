import numpy as np
import pytest
import torch

from pcpeft.ops import available_fps_backends, farthest_point_sample, group_points, knn_indices
from pcpeft.ops.fps import fps_torch
from tests.references.impl import numpy_fps

CPU_BACKENDS = available_fps_backends("cpu")


def clouds() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    normal = torch.randn(4, 2048, 3, generator=gen)
    uniform = torch.rand(4, 1024, 3, generator=gen) * 2 - 1
    base = torch.randn(3, 300, 3, generator=gen)
    dup = torch.cat([base, base, base[:, :60]], dim=1)[:, torch.randperm(660, generator=gen)]
    exact = torch.randn(2, 128, 3, generator=gen)  # N == number of centres
    few = torch.randn(2, 40, 3, generator=gen).repeat(1, 4, 1)  # 40 distinct points, 128 centres asked
    return {"normal": normal, "uniform": uniform, "duplicates": dup, "n_equals_g": exact, "exhausted": few}


def test_fpsample_backend_is_installed():
    assert "fpsample" in CPU_BACKENDS, "fpsample is a required dependency (requirements.txt)"


@pytest.mark.parametrize("name", list(clouds()))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_fps_backends_match_numpy_reference(name, backend):
    cloud = clouds()[name]
    count = min(128, cloud.shape[1])
    idx = farthest_point_sample(cloud, count, backend=backend)
    expected = np.stack([numpy_fps(c, count) for c in cloud.numpy()])
    assert idx.dtype == torch.int64 and idx.shape == (cloud.shape[0], count)
    np.testing.assert_array_equal(idx.numpy(), expected)


def test_fps_starts_at_zero_and_covers_all_points_when_n_equals_g():
    cloud = clouds()["n_equals_g"]
    idx = farthest_point_sample(cloud, 128)
    assert (idx[:, 0] == 0).all()
    assert all(len(set(row.tolist())) == 128 for row in idx)


def test_exclude_near_origin_reproduces_pointnet2_kernel_filter():
    # points on a unit sphere plus one at the origin: the origin is far from every chosen centre, so textbook
    # FPS picks it early, while the pointnet2_ops kernel never can.
    gen = torch.Generator().manual_seed(1)
    sphere = torch.nn.functional.normalize(torch.randn(1, 500, 3, generator=gen), dim=-1)
    cloud = torch.cat([sphere[:, :1], torch.zeros(1, 1, 3), sphere[:, 1:]], dim=1)
    plain = fps_torch(cloud, 64)
    assert 1 in plain[0].tolist()
    results = [farthest_point_sample(cloud, 64, backend=b, exclude_near_origin=True) for b in CPU_BACKENDS]
    assert 1 not in results[0][0].tolist()
    for other in results[1:]:
        assert torch.equal(results[0], other)


def test_knn_returns_nearest_first_and_includes_the_query():
    gen = torch.Generator().manual_seed(2)
    pts = torch.randn(2, 500, 3, generator=gen)
    queries = pts[:, :10]
    idx = knn_indices(pts, queries, 16)
    assert idx.shape == (2, 10, 16)
    assert torch.equal(idx[:, :, 0], torch.arange(10).expand(2, 10))
    brute = torch.cdist(queries.double(), pts.double()).argsort(dim=-1)[..., :16]
    assert torch.equal(idx, brute)


def test_group_points_shapes_and_relative_coordinates():
    gen = torch.Generator().manual_seed(3)
    pts = torch.randn(2, 1024, 3, generator=gen)
    neigh, centres = group_points(pts, 64, 32)
    assert neigh.shape == (2, 64, 32, 3) and centres.shape == (2, 64, 3)
    assert torch.equal(neigh[:, :, 0], torch.zeros(2, 64, 3))  # the centre is its own nearest point
    absolute = (neigh + centres.unsqueeze(2)).reshape(2, -1, 3)
    for b in range(2):  # every grouped point is a point of the cloud
        assert torch.cdist(absolute[b].double(), pts[b].double()).min(dim=1).values.max() < 1e-6


@pytest.mark.parametrize("shape", [(1024, 3), (2, 1024, 6), (2, 1024)])
def test_grouping_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        group_points(torch.randn(*shape), 16, 8)


def test_grouping_rejects_too_few_points():
    with pytest.raises(ValueError, match="cannot pick 64 centres from a cloud of 32 points"):
        group_points(torch.randn(1, 32, 3), 64, 8)
    with pytest.raises(ValueError, match="group_size 64 exceeds"):
        group_points(torch.randn(1, 32, 3), 8, 64)


def test_unknown_or_unavailable_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown FPS backend"):
        farthest_point_sample(torch.randn(1, 64, 3), 8, backend="quick")
    with pytest.raises(RuntimeError, match="not available"):
        farthest_point_sample(torch.randn(1, 64, 3), 8, backend="pointnet2")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_backends_match_cpu():
    cloud = clouds()["normal"]
    expected = farthest_point_sample(cloud, 128, backend="torch")
    for backend in available_fps_backends("cuda"):
        got = farthest_point_sample(cloud.cuda(), 128, backend=backend).cpu()
        assert torch.equal(got, expected), backend
