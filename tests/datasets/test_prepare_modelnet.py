import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcpeft.datasets import DatasetError, ModelNet40
from pcpeft.datasets.mesh import read_off, sample_surface
from pcpeft.datasets.prepare_modelnet import prepare_modelnet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def meshes(shared_dir):
    return shared_dir / "data" / "modelnet_off_samples"


def test_read_off_accepts_both_header_variants(meshes, tmp_path):
    path = meshes / "ModelNet10/sofa/test/sofa_0681.off"
    vertices, faces = read_off(path)
    assert vertices.shape == (384, 3) and len(faces) >= 232
    lines = path.read_text().splitlines()
    glued = tmp_path / "sofa_glued.off"
    glued.write_text("\n".join([f"OFF{lines[1]}"] + lines[2:]) + "\n")
    v2, f2 = read_off(glued)
    assert np.array_equal(vertices, v2) and np.array_equal(faces, f2)


def test_read_off_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.off"
    bad.write_text("OFF\n4 2 0\n0 0 0\n1 0 0\n")
    with pytest.raises(DatasetError, match="broken.off: header announces 4 vertices and 2 faces"):
        read_off(bad)
    ply = tmp_path / "mesh.off"
    ply.write_text("ply\nformat ascii 1.0\n")
    with pytest.raises(DatasetError, match="mesh.off: not an OFF file"):
        read_off(ply)


@pytest.mark.parametrize("name", ["loose/chair_0059.off", "loose/toilet_0001.off",
                                  "ModelNet40/desk/train/desk_0001.off"])
def test_samples_lie_on_the_mesh_surface_with_unit_normals(meshes, name):
    vertices, faces = read_off(meshes / name)
    points, normals, tri = sample_surface(vertices, faces, 5000, np.random.default_rng(0))
    assert points.shape == (5000, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-9)
    a, b, c = (vertices[faces[tri, i]] for i in range(3))
    scale = np.linalg.norm(vertices.max(0) - vertices.min(0))
    # on the plane of its triangle ...
    assert np.abs(((points - a) * normals).sum(1)).max() < 1e-9 * scale
    # ... and inside it (barycentric coordinates in [0, 1])
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denom = d00 * d11 - d01 * d01
    beta, gamma = (d11 * d20 - d01 * d21) / denom, (d00 * d21 - d01 * d20) / denom
    assert (beta > -1e-6).all() and (gamma > -1e-6).all() and (beta + gamma < 1 + 1e-6).all()


def test_prepare_real_meshes_then_load_them(meshes, tmp_path):
    out = tmp_path / "mn"
    counts = prepare_modelnet(meshes / "ModelNet40", out, points=2000, seed=3, progress=False, h5_points=1024)
    assert counts == {"train": 2, "test": 2, "skipped": 0}
    assert (out / "modelnet40_shape_names.txt").read_text().split() == ["desk", "monitor"]
    assert (out / "modelnet40_train.txt").read_text().split() == ["desk_0001", "monitor_0001"]
    rows = np.loadtxt(out / "monitor/monitor_0466.txt", delimiter=",")
    assert rows.shape == (2000, 6)
    np.testing.assert_allclose(np.linalg.norm(rows[:, 3:], axis=1), 1, atol=1e-5)
    assert np.isclose(np.linalg.norm(rows[:, :3], axis=1).max(), 1, atol=1e-5)
    ds = ModelNet40(out, "test", npoints=512, progress=False)
    assert len(ds) == 2 and ds[1][1] == 1
    h5 = ModelNet40(out / "h5", "train", npoints=1024, format="h5")
    assert len(h5) == 2 and h5.classes == ("desk", "monitor")


def test_prepare_is_deterministic_and_resumes(meshes, tmp_path):
    first = tmp_path / "a"
    prepare_modelnet(meshes / "ModelNet10", first, points=500, progress=False)
    second = tmp_path / "b"
    prepare_modelnet(meshes / "ModelNet10", second, points=500, progress=False)
    target = second / "table/table_0393.txt"
    reference = target.read_bytes()
    target.unlink()  # an interrupted run: one shape missing
    (second / "sofa/sofa_0001.txt.tmp").write_text("partial")
    counts = prepare_modelnet(meshes / "ModelNet10", second, points=500, progress=False)
    assert counts["skipped"] == 3 and target.read_bytes() == reference
    for rel in ["sofa/sofa_0001.txt", "sofa/sofa_0681.txt", "table/table_0001.txt", "table/table_0393.txt"]:
        assert (first / rel).read_bytes() == (second / rel).read_bytes()


def test_prepare_tool_command_line(meshes, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tools/prepare_modelnet.py"), "--src", str(meshes / "ModelNet10"),
                          "--out_dir", str(tmp_path / "o"), "--points", "300", "--name", "modelnet10"],
                         capture_output=True, text=True, check=True)
    assert "prepared 2 train and 2 test shapes" in out.stdout
    assert (tmp_path / "o/modelnet10_shape_names.txt").read_text().split() == ["sofa", "table"]
