import subprocess
import sys
from pathlib import Path

import yaml

import pcpeft

ROOT = Path(__file__).resolve().parents[2]


def test_model_summary_tool_runs_and_prints_the_reference_count():
    out = subprocess.run([sys.executable, str(ROOT / "tools/model_summary.py"), "--npoints", "512",
                          "--num-group", "32", "--batch", "1"], capture_output=True, text=True, check=True).stdout
    assert "22,093,327 parameters" in out and "output (1, 15)" in out


def test_model_recipes_build():
    for path in sorted((ROOT / "cfgs/models").glob("*.yaml")):
        spec = dict(yaml.safe_load(path.read_text())["model"])
        model = pcpeft.create_model(spec.pop("name"), **spec)
        assert model.config.trans_dim == 384, path


def test_peft_table_tool_lists_every_method_with_the_documented_adapter_x_row():
    out = subprocess.run([sys.executable, str(ROOT / "tools/peft_table.py")], capture_output=True, text=True,
                         check=True).stdout
    # (the official-count column was added with the official DAPT / IDPT / PPT / PointGST)
    assert "| adapter_x | 417,903 | — | 22,233,711 | 1.880 |" in out
    assert "| dapt | 1,087,771 | 1,087,771 |" in out
    for method in ["full", "linear", "bitfit", "ssf", "adapter", "lora", "vpt", "idpt", "dapt", "smoa", "dapt_x",
                   "ppt", "pointgst", "adapter_x_2d"]:
        assert f"| {method} |" in out
    doc = (ROOT / "docs/methods.md").read_text()
    assert all(line in doc for line in out.strip().splitlines()), "docs/methods.md table is stale"


def test_peft_table_tool_runs_on_a_vit_and_refuses_point_options_there():
    tool = str(ROOT / "tools/peft_table.py")
    out = subprocess.run([sys.executable, tool, "--model", "vit_base_patch16_224", "--num-classes", "100"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    # the 2D preset's budget without the head: 168,800 of ViT-B/16's 85,798,656 (docs/methods.md)
    assert "| adapter_x_2d | 245,700 |" in out.stdout  # 168,800 + head 76,900 (768 x 100 + 100)
    bad = subprocess.run([sys.executable, tool, "--model", "vit_base_patch16_224", "--num-group", "64"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--num_group" in bad.stderr and "Traceback" not in bad.stderr
    zero = subprocess.run([sys.executable, tool, "--num-group", "0"], capture_output=True, text=True)
    assert zero.returncode == 2 and "--num_group: must be at least 1" in zero.stderr  # not silently 128


def test_bench_tool_runs_on_tiny_settings(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "tools/bench.py"), "--shape", "modelnet40", "--batch", "2",
                             "--repeats", "1", "--warmup", "0", "--methods", "full", "ssf", "adapter_x",
                             "--skip_grouping", "--out", str(out)], capture_output=True, text=True, check=True)
    assert "| ssf |" in result.stdout and "adapter_x step / full step" in result.stdout
    import json

    saved = json.loads(out.read_text())
    ssf = next(r for r in saved["methods"] if r["method"] == "ssf")
    assert ssf["merged_infer_ms"] > 0 and ssf["plain_infer_ms"] > 0 and ssf["train_step_ms"] > 0
    by = {r["method"]: r for r in saved["methods"]}  # live tensors: full fine-tuning holds more than adapter_x
    assert 0 < by["adapter_x"]["peak_tensors_mb"] < by["full"]["peak_tensors_mb"]


def test_grouping_bench_lists_every_cpu_backend():
    from benchmarks.benchmark import bench_grouping

    rows = bench_grouping(repeats=1, batch=2)
    assert {"fps_torch_ms", "fps_fpsample_ms", "fps_numba_ms", "knn32_torch_ms", "knn32_numba_ms"} <= set(rows[0])
