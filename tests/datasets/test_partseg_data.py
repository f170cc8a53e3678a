"""ShapeNetPart loader (official layout and semantics), its clear errors, the part-segmentation metrics, and the
synthetic parts demo set."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pcpeft.datasets.demo_parts import ensure_parts_dataset, part_table
from pcpeft.datasets.errors import DatasetError, DatasetFileNotFoundError
from pcpeft.datasets.shapenet_part import SHAPENET_PART_CATEGORIES, ShapeNetPart, parts_by_category_index
from pcpeft.engine.training.partseg_metrics import PartSegMeter, restricted_prediction
from pcpeft.errors import UserError

# Bag is listed first: the category index is the line order of synsetoffset2category.txt
CATEGORY_LINES = "Bag\t02773838\nAirplane\t02691156\n"
SHAPES = {  # (synset, id): (points, split)
    ("02691156", "a1"): (40, "train"), ("02691156", "a2"): (25, "val"), ("02691156", "a3"): (30, "test"),
    ("02773838", "b2"): (35, "train"), ("02773838", "b1"): (20, "train"), ("02773838", "b3"): (50, "test"),
}
PARTS = {"02691156": [0, 1, 2, 3], "02773838": [4, 5]}


def _rows(count: int, parts: list[int], rng: np.random.Generator) -> np.ndarray:
    xyz = rng.normal(size=(count, 3)) * [3.0, 1.0, 2.0] + [5.0, -2.0, 1.0]
    normals = rng.normal(size=(count, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return np.hstack([xyz, normals, rng.choice(parts, size=(count, 1))])


def _write_rows(path: Path, rows: np.ndarray) -> None:
    path.write_text("".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in rows))


@pytest.fixture
def part_root(tmp_path) -> Path:
    """A tiny folder in the official layout: 2 categories, 6 shapes, labels written as floats as in the data."""
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (root / "train_test_split").mkdir(parents=True)
    (root / "synsetoffset2category.txt").write_text(CATEGORY_LINES)
    rng = np.random.default_rng(0)
    lists = {"train": [], "val": [], "test": []}
    for (synset, shape_id), (count, split) in SHAPES.items():
        (root / synset).mkdir(exist_ok=True)
        _write_rows(root / synset / f"{shape_id}.txt", _rows(count, PARTS[synset], rng))
        lists[split].append(f"shape_data/{synset}/{shape_id}")
    for split, entries in lists.items():
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return root


def test_items_have_the_official_shapes_dtypes_order_and_category_indices(part_root):
    data = ShapeNetPart(part_root, "train", npoints=64)
    assert data.categories == data.classes == ("Bag", "Airplane")
    assert data.category_parts == [[4, 5], [0, 1, 2, 3]] and data.num_parts == 6 and data.num_categories == 2
    assert [path.name for _, path in data.items] == ["b1.txt", "b2.txt", "a1.txt"]  # by category, then file name
    points, category, parts = data[2]
    assert points.shape == (64, 3) and points.dtype == torch.float32
    assert category.shape == () and category.dtype == torch.int64 and int(category) == 1
    assert parts.shape == (64,) and parts.dtype == torch.int64 and set(parts.tolist()) <= {0, 1, 2, 3}
    assert ShapeNetPart(part_root, "train", npoints=64, normal_channel=True)[2][0].shape == (64, 6)
    assert len(ShapeNetPart(part_root, "val")) == 1 and len(ShapeNetPart(part_root, "test")) == 2


def test_xyz_is_normalised_and_every_row_keeps_its_normal_and_label(part_root):
    data = ShapeNetPart(part_root, "train", npoints=500, normal_channel=True)  # more rows than the file: replacement
    points, _, parts = data[2]
    raw = np.loadtxt(part_root / "02691156" / "a1.txt")
    centred = raw[:, :3] - raw[:, :3].mean(axis=0)
    expected = np.hstack([centred / np.linalg.norm(centred, axis=1).max(), raw[:, 3:6]])
    nearest = np.abs(points.numpy()[:, None, :] - expected[None]).max(axis=2).argmin(axis=1)
    np.testing.assert_allclose(points.numpy(), expected[nearest], atol=1e-5)
    np.testing.assert_array_equal(parts.numpy(), raw[nearest, 6].astype(int))
    assert len(set(nearest.tolist())) == len(raw)  # 500 draws from 40 rows reach every row


def test_trainval_is_train_plus_val(part_root):
    names = {split: {str(path) for _, path in ShapeNetPart(part_root, split).items}
             for split in ("train", "val", "trainval")}
    assert names["trainval"] == names["train"] | names["val"] and len(names["trainval"]) == 4


def test_resampling_is_reproducible_per_seed_and_epoch_and_changes_across_epochs(part_root):
    first, again = ShapeNetPart(part_root, "train", npoints=32), ShapeNetPart(part_root, "train", npoints=32)
    epoch0 = first[0][0]
    assert torch.equal(epoch0, again[0][0])
    first.set_epoch(1)
    assert not torch.equal(first[0][0], epoch0)
    first.set_epoch(0)
    assert torch.equal(first[0][0], epoch0)
    assert not torch.equal(ShapeNetPart(part_root, "train", npoints=32, seed=1)[0][0], epoch0)


def test_parts_json_replaces_the_official_part_table(part_root):
    (part_root / "parts.json").write_text(json.dumps({"Airplane": [0, 1, 2, 3], "Bag": [4, 5, 6]}))
    assert ShapeNetPart(part_root, "train").category_parts == [[4, 5, 6], [0, 1, 2, 3]]
    (part_root / "parts.json").write_text(json.dumps({"Airplane": [0, 1, 2, 3]}))
    with pytest.raises(DatasetError, match="parts.json.*'Bag'"):
        ShapeNetPart(part_root, "train")
    assert parts_by_category_index(["Chair", "Mug"]) == [[12, 13, 14, 15], [36, 37]]
    assert sum(len(p) for p in SHAPENET_PART_CATEGORIES.values()) == 50


def test_the_synthetic_generator_never_overwrites_a_real_set(part_root):
    with pytest.raises(DatasetError, match="refusing to overwrite"):
        ensure_parts_dataset(part_root)
    assert (part_root / "synsetoffset2category.txt").read_text() == CATEGORY_LINES


def _remove(path: Path) -> None:
    path.unlink()


BREAKAGES = {  # name: (change to the folder, split, file named in the message, error type, raised on reading)
    "missing synsetoffset2category.txt": (lambda r: _remove(r / "synsetoffset2category.txt"), "train",
                                          "synsetoffset2category.txt", DatasetFileNotFoundError, False),
    "missing split file": (lambda r: _remove(r / "train_test_split/shuffled_val_file_list.json"), "trainval",
                           "shuffled_val_file_list.json", DatasetFileNotFoundError, False),
    "listed shape missing": (lambda r: _remove(r / "02691156/a1.txt"), "train", "a1.txt",
                             DatasetFileNotFoundError, False),
    "no points": (lambda r: (r / "02691156/a1.txt").write_text(""), "train", "a1.txt.*no points",
                  DatasetError, True),
    "wrong column count": (lambda r: _write_rows(r / "02691156/a1.txt", np.ones((5, 6))), "train",
                           "a1.txt.*6 values; expected 7", DatasetError, True),
    "NaN": (lambda r: _write_rows(r / "02691156/a1.txt", np.array([[0, 0, 0, 0, 0, 1, 0], [np.nan, 0, 0, 0, 0, 1, 0]])),
            "train", "a1.txt.*row 2.*NaN", DatasetError, True),
    "part of another category": (lambda r: _write_rows(r / "02691156/a1.txt", np.array([[0, 0, 0, 0, 0, 1, 4.0]])),
                                 "train", "a1.txt.*label 4.*not a part of Airplane", DatasetError, True),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_each_bad_input_raises_a_clear_error_naming_the_file(part_root, name):
    breakage, split, message, error, on_reading = BREAKAGES[name]
    breakage(part_root)
    with pytest.raises(error, match=message) as raised:
        data = ShapeNetPart(part_root, split)
        if on_reading:
            data[2]
    assert isinstance(raised.value, UserError)


def test_a_missing_data_folder_says_where_to_get_the_data(tmp_path):
    with pytest.raises(DatasetFileNotFoundError, match="nowhere.*shapenetcore_partanno_segmentation_benchmark"):
        ShapeNetPart(tmp_path / "nowhere")


# -- metrics: categories A (parts 0, 1), B (parts 2, 3, 4), C (part 5, no shapes) ------------------------------
PARTS_ABC = [[0, 1], [2, 3, 4], [5]]


def test_metrics_match_a_hand_computed_example():
    meter = PartSegMeter(["A", "B", "C"], PARTS_ABC)
    # shape 1 (A): part 0 IoU 1/2, part 1 IoU 2/3 -> 7/12
    # shape 2 (A): part 0 IoU 3/4, part 1 predicted but absent from the truth -> 0 -> 3/8
    meter.update(torch.tensor([[0, 1, 1, 1], [0, 0, 0, 1]]), torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0]]),
                 torch.tensor([0, 0]))
    # shape 3 (B): part 2 IoU 2/3, part 3 IoU 1/2, part 4 absent from both -> 1 -> 13/18
    meter.update(np.array([[3, 2, 2, 3]]), np.array([[2, 2, 2, 3]]), np.array([1]))
    result = meter.compute()
    assert result["shapes"] == 3
    assert result["instance_miou"] == pytest.approx(100 * (7 / 12 + 3 / 8 + 13 / 18) / 3)  # 56.02
    assert result["per_category_iou"] == pytest.approx({"A": 100 * (7 / 12 + 3 / 8) / 2, "B": 100 * 13 / 18})
    assert result["class_miou"] == pytest.approx(100 * ((7 / 12 + 3 / 8) / 2 + 13 / 18) / 2)  # 60.07: C left out
    assert result["categories_without_shapes"] == ["C"]
    assert result["accuracy"] == pytest.approx(100 * 9 / 12)
    # per part correct / seen: 0: 4/6, 1: 2/2, 2: 2/3, 3: 1/1; parts 4 and 5 never occur in the truth
    assert result["class_avg_accuracy"] == pytest.approx(100 * (4 / 6 + 1 + 2 / 3 + 1) / 4)


def test_restricted_prediction_never_picks_a_part_of_another_category():
    scores = torch.randn(6, 50, 6)
    categories = torch.tensor([0, 1, 2, 0, 1, 2])
    scores[categories == 0, :, 2:] += 100  # the other categories' parts score best
    pred = restricted_prediction(scores.log_softmax(-1), categories, PARTS_ABC)
    assert pred.shape == (6, 50) and pred.dtype == torch.int64
    for row, category in zip(pred, categories.tolist()):
        assert set(row.tolist()) <= set(PARTS_ABC[category])
    np.testing.assert_array_equal(pred[0].numpy(), scores[0, :, :2].argmax(-1).numpy())
    assert (pred[2] == 5).all()


# -- the synthetic parts set ------------------------------------------------------------------------------------
def test_the_synthetic_parts_set_is_read_by_shapenet_part_and_regenerated_only_when_settings_change(tmp_path):
    root = ensure_parts_dataset(tmp_path, 2, 1, 1, seed=0, npoints_per_shape=256)
    data = ShapeNetPart(root, "trainval", npoints=128, normal_channel=True)
    assert len(data) == 6 * 3 and data.categories == tuple(part_table())
    seen = set()
    for points, category, parts in (data[i] for i in range(len(data))):
        assert set(parts.tolist()) <= set(data.category_parts[int(category)])
        np.testing.assert_allclose(points[:, 3:].norm(dim=1), 1, atol=1e-4)
        seen |= set(parts.tolist())
    assert seen == set(range(data.num_parts))
    assert len(ShapeNetPart(root, "test")) == 6
    one_file = data.items[0][1]
    stamp = one_file.stat().st_mtime_ns
    ensure_parts_dataset(tmp_path)  # nothing named: the existing set as it is
    ensure_parts_dataset(tmp_path, 2, 1, 1, seed=0, npoints_per_shape=256)
    assert one_file.stat().st_mtime_ns == stamp
    ensure_parts_dataset(tmp_path, npoints_per_shape=300)
    assert len(one_file.read_text().splitlines()) == 300
