import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import pcpeft
from pcpeft import get_peft_model, viz
from pcpeft.datasets import write_demo_dataset

ROOT = Path(__file__).resolve().parents[1]


def png(path):
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(np.float64), img.size


def colours_present(image, palette, tol=12):
    """How many palette colours appear (by nearest-colour pixels within tol)."""
    flat = image.reshape(-1, 3)
    return sum(int((np.abs(flat - 255 * c).max(axis=1) < tol).any()) for c in palette)


def test_cloud_and_groups_from_a_real_mesh(shared_dir, tmp_path):
    mesh = shared_dir / "data/modelnet_off_samples/loose/chair_0001.off"
    out = viz.render_cloud(viz.load_cloud(mesh), tmp_path / "c.png", size=(400, 300))
    image, size = png(out)
    assert size == (400, 300) and image.var() > 50
    out = viz.render_groups(viz.load_cloud(mesh), tmp_path / "g.png", num_group=8, group_size=64, size=(400, 300))
    image, _ = png(out)
    assert colours_present(image, viz.distinct_colors(8)) >= 7  # every group visible (one may hide behind others)


def test_gallery_routing_tsne_and_curves(tmp_path):
    write_demo_dataset(tmp_path / "demo", train_per_class=2, test_per_class=1)
    from pcpeft.datasets import ScanObjectNN

    ds = ScanObjectNN(tmp_path / "demo", "OBJ_BG", "test", num_classes=12)
    out = viz.render_gallery([ds[i][0].numpy() for i in range(4)], [ds.classes[ds[i][1]] for i in range(4)],
                             tmp_path / "gal.png", columns=2, size=(500, 500))
    assert png(out)[1] == (500, 500) and png(out)[0].var() > 50
    torch.manual_seed(0)
    model = get_peft_model(pcpeft.create_model("point_mae", num_classes=12, num_group=16, group_size=8, depth=3),
                           "adapter_x")
    with torch.no_grad():  # give the router something to do
        for p in model.peft_modules["smoa"].parameters():
            p.normal_(0, 1)
    pts, experts, n = viz.routing_panels(model, ds[0][0][:512])
    assert len(pts) == 3 and experts[0].shape == (16 * 8,) and n == 8
    out = viz.render_routing(pts, experts, n, tmp_path / "r.png", size=(600, 300))
    used = len(set(np.concatenate(experts).tolist()))
    assert colours_present(png(out)[0], viz.distinct_colors(n)[sorted(set(np.concatenate(experts)))]) >= used - 1
    feats = np.random.default_rng(0).normal(size=(30, 8)) + np.repeat(np.eye(3, 8) * 6, 10, axis=0)
    out = viz.render_tsne(feats, np.repeat(np.arange(3), 10), ["a", "b", "c"], tmp_path / "t.png", size=(400, 400))
    assert colours_present(png(out)[0], viz.distinct_colors(3)) == 3
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp/results.json").write_text('{"history": [{"epoch": 0, "train_loss": 2.0, "test_acc": 10},'
                                               ' {"epoch": 1, "train_loss": 1.0, "test_acc": 30}]}')
    out = viz.render_curves(tmp_path / "exp", tmp_path / "curves.png", size=(600, 300))
    assert png(out)[1] == (600, 300) and png(out)[0].var() > 50


def test_visualize_tool_command_line(shared_dir, tmp_path):
    mesh = shared_dir / "data/modelnet_off_samples/loose/toilet_0001.off"
    result = subprocess.run([sys.executable, str(ROOT / "tools/visualize.py"), "cloud", "--file", str(mesh),
                             "--out", str(tmp_path / "t.png"), "--width", "320", "--height", "240", "--interactive"],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "renderer: matplotlib" in result.stderr or "renderer: open3d" in result.stderr
    assert png(tmp_path / "t.png")[1] == (320, 240)
