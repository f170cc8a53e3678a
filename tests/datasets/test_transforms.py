import math

import pytest
import torch

from pcpeft.datasets import Compose, FPSResample, Jitter, RandomSubsetOfFPS, RotateAboutUpAxis, ScaleAndTranslate
from pcpeft.ops import farthest_point_sample


def batch(b=3, n=2048, c=3, seed=0):
    return torch.randn(b, n, c, generator=torch.Generator().manual_seed(seed))


def test_scale_and_translate_is_per_sample_affine_within_ranges():
    pts = batch()
    out = ScaleAndTranslate(generator=torch.Generator().manual_seed(1))(pts)
    for b in range(3):  # recover scale/shift per axis from two points
        scale = (out[b, 0] - out[b, 1]) / (pts[b, 0] - pts[b, 1])
        shift = out[b, 0] - pts[b, 0] * scale
        assert ((scale >= 2 / 3 - 1e-5) & (scale <= 1.5 + 1e-5)).all()
        assert (shift.abs() <= 0.2 + 1e-5).all()
        torch.testing.assert_close(out[b], pts[b] * scale + shift)
    assert not torch.equal(out[0] / pts[0], out[1] / pts[1])


def test_rotation_about_up_axis_keeps_height_and_norms_and_rotates_normals():
    pts = batch(c=6)
    out = RotateAboutUpAxis("y", generator=torch.Generator().manual_seed(2))(pts)
    assert torch.equal(out[..., 1], pts[..., 1])
    torch.testing.assert_close(out[..., :3].norm(dim=-1), pts[..., :3].norm(dim=-1))
    torch.testing.assert_close(out[..., 3:].norm(dim=-1), pts[..., 3:].norm(dim=-1))
    assert not torch.allclose(out[..., 0], pts[..., 0])
    rot = RotateAboutUpAxis("z", max_angle=0.0)
    assert torch.equal(rot(pts), pts)


def test_jitter_is_clipped():
    pts = batch()
    noise = Jitter(sigma=1.0, clip=0.05, generator=torch.Generator().manual_seed(3))(pts) - pts
    assert noise.abs().max() <= 0.05 + 1e-6 and noise.abs().max() > 0.04


def test_fps_resample_equals_fps_selection():
    pts = batch(n=1200)
    out = FPSResample(1024)(pts)
    idx = farthest_point_sample(pts, 1024)
    assert torch.equal(out, torch.gather(pts, 1, idx.unsqueeze(-1).expand(-1, -1, 3)))


def test_random_subset_of_fps_follows_point_mae_sizes_and_works_at_2048():
    pts = batch(n=8192)
    sampler = RandomSubsetOfFPS(1024, generator=torch.Generator().manual_seed(0))
    assert sampler.point_all == 1200
    out = sampler(pts)
    fps_1200 = torch.gather(pts, 1, farthest_point_sample(pts, 1200).unsqueeze(-1).expand(-1, -1, 3))
    for b in range(3):  # every chosen point is one of the 1200 FPS points
        assert torch.cdist(out[b].double(), fps_1200[b].double()).min(dim=1).values.max() == 0
    scan = batch(n=2048)  # ScanObjectNN: 2048 points, point_all capped at N -> a permutation
    perm = RandomSubsetOfFPS(2048, generator=torch.Generator().manual_seed(0))(scan)
    assert perm.shape == scan.shape
    assert torch.equal(perm.sort(dim=1).values, scan.sort(dim=1).values)
    with pytest.raises(ValueError, match="cannot take 2048 points from clouds of 1024"):
        RandomSubsetOfFPS(2048)(batch(n=1024))


def test_compose_and_determinism():
    make = lambda: Compose([ScaleAndTranslate(generator=torch.Generator().manual_seed(5)),  # noqa: E731
                            RotateAboutUpAxis(generator=torch.Generator().manual_seed(6))])
    pts = batch()
    assert torch.equal(make()(pts), make()(pts))
    assert math.isclose(float(make()(pts)[..., 1].abs().max() / pts[..., 1].abs().max()), 1.0, abs_tol=0.9)


def test_rotation_per_batch_turns_every_cloud_by_one_angle():
    """``per_batch``: one angle for the whole batch (the same matrix for every cloud); per cloud they differ."""
    shared = RotateAboutUpAxis("y", generator=torch.Generator().manual_seed(3), per_batch=True).matrices(4)
    own = RotateAboutUpAxis("y", generator=torch.Generator().manual_seed(3)).matrices(4)
    assert all(torch.equal(shared[0], m) for m in shared[1:])
    assert not torch.allclose(own[0], own[1])
    torch.testing.assert_close(shared[0], own[0])  # the first draw is the same angle
