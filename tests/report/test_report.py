"""``pcpeft report``: the pages of a tiny classification run, a tiny SMoA (adapter_x) run, a tiny part-segmentation
run and a sweep of runs; their content checked against results.json and config.yaml; ``viz --html``; and the page
opened in a real headless Chromium (offline, no console error, the 3-D view drawn and turned by a mouse drag)."""
from __future__ import annotations

import html.parser
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import pcpeft
from pcpeft.commands import main
from pcpeft.commands.recipe_input import load_recipe
from pcpeft.engine.training.finetune import RunOptions, train
from pcpeft.report import ReportError, ReportOptions, build_run_report, read_page_data
from pcpeft.report import browser as chromium
from pcpeft.report.clouds import gallery_order, panels_figure
from pcpeft.report.page import Page
from pcpeft.viz import groups_panel

MAX_BYTES = 15_000_000
#: a classification run in seconds: the synthetic recipe, 2 clouds a class, a 32-wide one-block model, one epoch
TINY = ["dataset.npoints=256", "dataset.train_per_class=2", "dataset.test_per_class=2", "model.num_group=16",
        "model.group_size=8", "model.depth=1", "model.trans_dim=32", "model.encoder_dims=32", "train.batch_size=8",
        "scheduler.epochs=1", "scheduler.warmup_epochs=0"]
TINY_PARTS = ["dataset.npoints=256", "dataset.train_per_category=2", "dataset.val_per_category=1",
              "dataset.test_per_category=2", "model.trans_dim=32", "model.depth=1", "model.fetch_layers=[0]",
              "model.num_group=16", "scheduler.epochs=1", "scheduler.warmup_epochs=0", "train.batch_size=8"]


def train_tiny(root: Path, recipe: str, overrides: list[str], peft: str, name: str, ckpts: str | None = None) -> Path:
    config = load_recipe(recipe, overrides).config
    options = RunOptions(config_path=f"{recipe}.yaml", ckpts=ckpts, peft=peft, exp_name=name,
                         experiments_root=str(root / "experiments"), progress=False)
    train(config, options)
    return root / "experiments" / Path(recipe).name / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three tiny runs: linear on a saved tiny backbone (so the run records its path and sha256), adapter_x (SMoA)
    and a part-segmentation run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report_runs")
    torch.manual_seed(0)
    backbone = pcpeft.create_model("point_mae", num_classes=12, trans_dim=32, encoder_dims=32, depth=1, num_heads=2,
                                   num_group=16, group_size=8)
    from safetensors.torch import save_file

    save_file(dict(backbone.state_dict()), str(root / "tiny_backbone.safetensors"))
    data = [f"dataset.root={root / 'demo'}"]
    try:
        return {"linear": train_tiny(root, "finetune_synthetic", [*TINY, *data], "linear", "linear",
                                     str(root / "tiny_backbone.safetensors")),
                "adapter_x": train_tiny(root, "finetune_synthetic", [*TINY, *data], "adapter_x", "adapter_x"),
                "partseg": train_tiny(root, "partseg/synthetic", [*TINY_PARTS, f"dataset.root={root / 'parts'}"],
                                      "linear", "seg")}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def linear_report(runs) -> Path:
    return build_run_report(runs["linear"])


@pytest.fixture(scope="module")
def partseg_report(runs) -> Path:
    return build_run_report(runs["partseg"], options=ReportOptions(clouds=4))


def run_command(argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return done.value.code, out, err


class Fetches(html.parser.HTMLParser):
    """Every element of a page that would make a browser fetch something, and every link."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        elif any(values.get(a) for a in ("src", "href", "srcset", "data", "poster")) or tag in ("link", "iframe",
                                                                                               "object", "embed"):
            self.fetching.append(self.get_starttag_text())


def check_self_contained(page: Path) -> Fetches:
    text = page.read_text(encoding="utf-8")
    assert page.stat().st_size <= MAX_BYTES
    assert "<script src" not in text.lower()
    parser = Fetches()
    parser.feed(text)
    assert parser.fetching == []
    assert not [link for link in parser.links if link.startswith(("http://", "https://", "//"))]
    return parser


def by_source(card: list[dict]) -> dict[str, object]:
    return {row["source"]: row["value"] for row in card}


# -- content ------------------------------------------------------------------------------------------------------
def test_run_page_card_confusion_and_gallery(runs, linear_report):
    run = runs["linear"]
    assert linear_report == run / "report.html"
    check_self_contained(linear_report)
    data = read_page_data(linear_report)
    results = json.loads((run / "results.json").read_text())
    import yaml

    record = yaml.safe_load((run / "config.yaml").read_text())["run"]
    sources = by_source(data["card"])
    for key in ("methods", "trainable_parameters", "total_parameters", "dataset", "split", "npoints", "voting",
                "augmentation", "seed", "best_chosen_on", "epochs_run", "device"):
        assert sources[f"results.json: {key}"] == results[key], key
    assert sources["results.json: best.overall_acc"] == results["best"]["overall_acc"]
    for key in ("ckpts", "ckpts_path", "ckpts_sha256"):
        assert sources[f"config.yaml: run.{key}"] == record[key]
    assert len(record["ckpts_sha256"]) == 64
    text = linear_report.read_text(encoding="utf-8")
    assert record["ckpts_sha256"] in text and f"{results['trainable_parameters']:,}" in text

    matrix = np.asarray(data["confusion_matrix"])
    assert matrix.shape == (12, 12) and matrix.sum() == data["test_samples"] == results["best"]["samples"] == 24
    assert data["overall_acc"] == pytest.approx(results["best"]["overall_acc"])  # the numbers of pcpeft test
    assert [row["samples"] for row in data["per_class"]] == matrix.sum(axis=1).tolist()

    gallery = data["gallery"]
    wrong = int(matrix.sum() - np.trace(matrix))
    assert len(gallery) == 24 and [g["correct"] for g in gallery] == [False] * wrong + [True] * (24 - wrong)
    mistakes = [g["probability"] for g in gallery[:wrong]]
    assert mistakes == sorted(mistakes, reverse=True)
    assert all(g["label"] != g["predicted"] for g in gallery[:wrong])
    assert all(0 < g["points"] <= data["display_points"] for g in gallery)
    assert "subsampled for display" in text


def test_gallery_order_puts_mistakes_first_then_each_class_in_turn():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    probability = np.array([0.9, 0.4, 0.8, 0.6, 0.7, 0.95])
    assert gallery_order(labels, predicted, probability, 6) == [5, 1, 0, 3, 4, 2]
    assert gallery_order(labels, predicted, probability, 3) == [5, 1, 0]


def test_smoa_run_page_colours_by_expert_and_refuses_what_a_run_lacks(runs, tmp_path, capsys):
    out = tmp_path / "ax.html"
    code, stdout, _ = run_command(["report", runs["adapter_x"], "--color", "experts", "--block", "0", "--clouds", "6",
                                   "--out", out], capsys)
    assert code == 0 and f"wrote {out}" in stdout
    check_self_contained(out)
    data = read_page_data(out)
    assert data["color"] == "experts" and len(data["gallery"]) == 6
    assert "expert 0" in out.read_text(encoding="utf-8") and "SMoA block 0" in out.read_text(encoding="utf-8")

    code, _, err = run_command(["report", runs["adapter_x"], "--color", "experts", "--block", "7"], capsys)
    assert code == 2 and "--block 7" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_command(["report", runs["linear"], "--color", "experts"], capsys)
    assert code == 2 and "no SMoA" in err and "linear" in err
    code, _, err = run_command(["report", tmp_path], capsys)
    assert code == 2 and str(tmp_path) in err and "Traceback" not in err
    code, _, err = run_command(["report", runs["linear"], "--out", tmp_path], capsys)
    assert code == 2 and "--out" in err


def test_partseg_page_shapes_side_by_side_worst_first(runs, partseg_report):
    check_self_contained(partseg_report)
    data = read_page_data(partseg_report)
    results = json.loads((runs["partseg"] / "results.json").read_text())
    assert data["task"] == "partseg"
    assert data["instance_miou"] == pytest.approx(results["best"]["instance_miou"])
    assert set(data["per_category_iou"]) == set(results["best"]["per_category_iou"])
    ious = [g["shape_iou"] for g in data["gallery"]]
    assert len(ious) == 4 and ious == sorted(ious)
    assert partseg_report.read_text(encoding="utf-8").count('data-scenes="2"') == 4
    with pytest.raises(ReportError, match="--color groups: .*part"):
        build_run_report(runs["partseg"], options=ReportOptions(color="groups"))


def test_sweep_page_links_every_run_to_its_report(runs, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for peft in ("linear", "adapter_x"):
        folder = sweep / "finetune_synthetic" / peft
        shutil.copytree(runs[peft], folder, ignore=shutil.ignore_patterns("report.html", "*.tfevents*"))
        (folder / "trial.json").write_text(json.dumps({"axes": {"peft": peft, "seed": 0}, "seed": 0,
                                                       "cell": {"peft": peft}}))
    (sweep / "sweep.yaml").write_text("replicate: seed\n")
    code, stdout, _ = run_command(["report", sweep, "--baseline", "peft=linear", "--clouds", "2", "--device", "cpu"],
                                  capsys)
    assert code == 0, stdout
    page = sweep / "report.html"
    links = check_self_contained(page).links
    for peft in ("linear", "adapter_x"):
        assert f"finetune_synthetic/{peft}/report.html" in links
        assert read_page_data(sweep / "finetune_synthetic" / peft / "report.html")["run"].endswith(peft)
    data = read_page_data(page)
    assert data["baseline"] == {"peft": "linear"} and {tuple(r["cell"].items()) for r in data["rows"]} == {
        (("peft", "linear"),), (("peft", "adapter_x"),)}
    assert all(not run["missing"] for row in data["rows"] for run in row["runs"])
    assert "Paired comparisons" in page.read_text(encoding="utf-8")

    code, _, _ = run_command(["report", sweep, "--no_run_reports", "--out", tmp_path / "linked.html"], capsys)
    assert code == 0 and "finetune_synthetic/linear/report.html" in (tmp_path / "linked.html").read_text()
    code, _, err = run_command(["report", runs["linear"], "--baseline", "peft=linear"], capsys)
    assert code == 2 and "sweep" in err


def test_viz_html_writes_the_3d_view_beside_the_png(tmp_path, capsys):
    cloud = tmp_path / "cloud.xyz"
    np.savetxt(cloud, np.random.default_rng(0).normal(size=(300, 3)))
    code, stdout, _ = run_command(["viz", "groups", cloud, "--num_group", "8", "--group_size", "16", "--out",
                                   tmp_path / "groups.png", "--html", "--renderer", "matplotlib"], capsys)
    assert code == 0 and (tmp_path / "groups.png").is_file() and "groups.html" in stdout
    check_self_contained(tmp_path / "groups.html")
    assert read_page_data(tmp_path / "groups.html") == {"what": "groups", "panels": 1}
    code, _, err = run_command(["viz", "gallery", "--config", "datasets/synthetic_demo", "--out",
                                tmp_path / "g.png", "--html"], capsys)
    assert code == 2 and "--html" in err


def test_a_gallery_of_48_dense_clouds_stays_under_15_mb(tmp_path):
    rng = np.random.default_rng(0)
    page = Page("size")
    for _ in range(48):  # 64 groups of 32 points: 2048 points a view before thinning
        panel = groups_panel(rng.normal(size=(4096, 3)).astype(np.float32), 64, 32)
        page.figure(panels_figure([panel]), three_d=True)
    path = page.write(tmp_path / "big.html")
    assert path.stat().st_size <= MAX_BYTES


# -- in a real browser --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    reason = chromium.missing_reason()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    with chromium.headless_browser(800, 700) as driver:
        yield driver


def camera_eye(driver, element, scene: str = "scene") -> dict:
    return driver.execute_script(f"return arguments[0]._fullLayout.{scene}.camera.eye;", element)


def test_the_page_works_offline_in_headless_chromium_and_the_3d_view_turns(browser, linear_report, partseg_report):
    from selenium.webdriver.common.by import By

    chromium.open_page(browser, linear_report)
    assert browser.execute_script("return document.querySelectorAll('#card tr').length") >= 15
    chromium.wait_drawn(browser, browser.find_element(By.CSS_SELECTOR, "#confusion .plot"))
    view = browser.find_element(By.CSS_SELECTOR, "#gallery .plot.three-d")
    chromium.wait_drawn(browser, view)
    canvas = view.find_element(By.CSS_SELECTOR, ".gl-container canvas")
    before = chromium.settled_image(canvas)
    assert chromium.drawn_pixels(before) > 100 and len(np.unique(before.reshape(-1, 3), axis=0)) > 3
    eye = camera_eye(browser, view)
    chromium.drag(browser, canvas)
    after = chromium.settled_image(canvas)
    assert before.shape == after.shape and np.abs(before.astype(int) - after.astype(int)).mean() > 0.5
    assert camera_eye(browser, view) != eye
    assert not browser.find_elements(By.CSS_SELECTOR, '.modebar-btn[data-title^="Share"]')  # no upload button
    views = browser.find_elements(By.CSS_SELECTOR, "#gallery .plot.three-d")
    for view in (views[len(views) // 2], views[-1]):  # down the gallery: far views give their WebGL contexts back
        chromium.wait_drawn(browser, view)
    assert browser.execute_script("return document.querySelectorAll('.three-d[data-state]').length") <= 10
    log = browser.get_log("browser")
    assert not [m for m in log if m["level"] == "SEVERE" or "Too many active WebGL" in m["message"]
                or "CONTEXT_LOST" in m["message"]]
    assert chromium.remote_urls(chromium.requested_urls(browser)) == []

    chromium.open_page(browser, partseg_report)  # the two views of a shape turn together
    view = browser.find_element(By.CSS_SELECTOR, "#gallery .plot.three-d")
    chromium.wait_drawn(browser, view)
    canvas = view.find_element(By.CSS_SELECTOR, ".gl-container canvas")
    chromium.drag(browser, canvas, -120, 0)
    chromium.settled_image(canvas)
    assert camera_eye(browser, view, "scene") == pytest.approx(camera_eye(browser, view, "scene2"))
    assert chromium.console_errors(browser) == []
    assert chromium.remote_urls(chromium.requested_urls(browser)) == []
