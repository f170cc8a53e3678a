import hashlib
import pickle
import time

import h5py
import numpy as np
import pytest
import torch

from pcpeft.datasets import (
    DEMO_CLASSES,
    DatasetError,
    DatasetFileNotFoundError,
    ModelNet40,
    ModelNetFewShot,
    ScanObjectNN,
    write_demo_dataset,
)
from pcpeft.datasets.modelnet import normalize_unit_sphere
from pcpeft.datasets.scanobjectnn import split_file

RNG = np.random.default_rng(0)


def write_h5(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value
    return path


def scan_root(tmp_path, n=6, points=2048):
    for split in ("OBJ_BG", "OBJ_ONLY", "PB_T50_RS"):
        for subset in ("train", "test"):
            write_h5(split_file(tmp_path, split, subset), data=RNG.normal(size=(n, points, 3)).astype(np.float32),
                     label=np.arange(n).astype(np.int64) % 15)
    return tmp_path


@pytest.mark.parametrize("split, relative", [
    ("OBJ_BG", "main_split/training_objectdataset.h5"),
    ("OBJ_ONLY", "main_split_nobg/training_objectdataset.h5"),
    ("PB_T50_RS", "main_split/training_objectdataset_augmentedrot_scale75.h5")])
def test_scanobjectnn_reads_each_split_file(tmp_path, split, relative):
    data = RNG.normal(size=(5, 2048, 3)).astype(np.float32)
    write_h5(tmp_path / relative, data=data, label=np.array([0, 3, 14, 7, 7], dtype=np.uint8))
    ds = ScanObjectNN(tmp_path, split, "train", seed=0)
    assert len(ds) == 5
    points, label = ds[1]
    assert points.shape == (2048, 3) and points.dtype == torch.float32 and label == 3
    # train shuffles the point order only: same set of points
    assert np.allclose(np.sort(points.numpy(), axis=0), np.sort(data[1], axis=0))


def test_scanobjectnn_test_subset_keeps_point_order(tmp_path):
    scan_root(tmp_path)
    ds = ScanObjectNN(tmp_path, "OBJ_ONLY", "test")
    with h5py.File(split_file(tmp_path, "OBJ_ONLY", "test")) as f:
        assert np.array_equal(ds[2][0].numpy(), f["data"][2])


def test_scanobjectnn_missing_file_names_expected_path_and_readme(tmp_path):
    with pytest.raises(DatasetFileNotFoundError, match=r"main_split_nobg/test_objectdataset\.h5.*datasets/README"):
        ScanObjectNN(tmp_path, "OBJ_ONLY", "test")


@pytest.mark.parametrize("arrays, message", [
    (dict(points=np.zeros((2, 2048, 3), np.float32), label=np.zeros(2)), r"key\(s\) \['data'\] not found"),
    (dict(data=np.zeros((3, 2048, 3), np.float32), label=np.zeros(2)), "2 labels for 3 point clouds"),
    (dict(data=np.full((2, 2048, 3), np.nan, np.float32), label=np.zeros(2)), "NaN or Inf"),
    (dict(data=np.zeros((2, 2048, 3), np.float32), label=np.array([0, 15])), "label 15 at index 1 is outside"),
    (dict(data=np.zeros((2, 2048), np.float32), label=np.zeros(2)), r"shape \(2, 2048\)"),
])
def test_scanobjectnn_bad_files_raise_naming_the_file(tmp_path, arrays, message):
    path = write_h5(split_file(tmp_path, "OBJ_BG", "train"), **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        ScanObjectNN(tmp_path, "OBJ_BG", "train")
    assert str(path) in str(info.value)


def resampled_root(tmp_path, classes=("airplane", "bathtub", "night_stand"), per_class=2, rows=300):
    root = tmp_path / "modelnet40_normal_resampled"
    root.mkdir(parents=True)
    (root / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    ids = {"train": [], "test": []}
    for cls in classes:
        (root / cls).mkdir()
        for i in range(per_class):
            shape_id = f"{cls}_{i + 1:04d}"
            data = np.concatenate([RNG.normal(size=(rows, 3)) * 3 + 5, RNG.normal(size=(rows, 3))], 1)
            np.savetxt(root / cls / f"{shape_id}.txt", data, fmt="%.6f", delimiter=",")
            ids["train" if i == 0 else "test"].append(shape_id)
    for subset, names in ids.items():
        (root / f"modelnet40_{subset}.txt").write_text("\n".join(names) + "\n")
    return root


def test_modelnet_resampled_builds_and_reuses_the_point_mae_cache(tmp_path):
    root = resampled_root(tmp_path)
    ds = ModelNet40(root, "train", npoints=128, progress=False)
    cache = root / "modelnet40_train_128pts_fps.dat"
    assert cache.is_file() and len(ds) == 3
    with open(cache, "rb") as f:
        points, labels = pickle.load(f)
    assert len(points) == 3 and points[0].shape == (128, 6) and points[0].dtype == np.float32
    assert labels[2].shape == (1,) and labels[2].dtype == np.int32 and labels[2][0] == 2
    # night_stand: the class is the id without its last "_" part
    assert ds.classes[2] == "night_stand" and ds[2][1] == 2
    item, _ = ds[0]
    assert item.shape == (128, 3)
    assert np.allclose(item.numpy().mean(0), 0, atol=1e-5) and np.isclose(np.linalg.norm(item, axis=1).max(), 1)
    # the cache rows are FPS-selected rows of the original file
    original = np.loadtxt(root / "airplane/airplane_0001.txt", delimiter=",", dtype=np.float32)
    assert all(any(np.array_equal(row, o) for o in original) for row in points[0][:10])
    # reused, not rebuilt: a modified cache is what the loader returns
    points[0][:, :3] = 7.0
    points[0][0, :3] = 8.0
    with open(cache, "wb") as f:
        pickle.dump([points, labels], f)
    reread = ModelNet40(root, "train", npoints=128, progress=False)
    assert np.allclose(reread.points[0][1:, :3], 7.0)
    with_normals = ModelNet40(root, "train", npoints=128, use_normals=True)[1][0]
    assert with_normals.shape == (128, 6)


def test_modelnet_reads_a_point_mae_cache_without_the_text_files(tmp_path):
    root = tmp_path / "mn"
    root.mkdir()
    (root / "modelnet40_shape_names.txt").write_text("\n".join(f"c{i}" for i in range(40)))
    pts = [RNG.normal(size=(64, 6)).astype(np.float32) for _ in range(4)]
    labels = [np.array([i * 10], dtype=np.int32) for i in range(4)]
    with open(root / "modelnet40_test_64pts_fps.dat", "wb") as f:
        pickle.dump([pts, labels], f)
    ds = ModelNet40(root, "test", npoints=64)
    assert [ds[i][1] for i in range(4)] == [0, 10, 20, 30]
    assert torch.allclose(ds[3][0], torch.from_numpy(normalize_unit_sphere(pts[3][:, :3])))


def test_modelnet_resampled_errors_name_the_file(tmp_path):
    root = resampled_root(tmp_path)
    (root / "airplane/airplane_0001.txt").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DatasetError, match=r"airplane_0001\.txt: rows have 3 values"):
        ModelNet40(root, "train", npoints=2, progress=False)
    with pytest.raises(DatasetFileNotFoundError, match=r"modelnet40_shape_names\.txt.*README"):
        ModelNet40(tmp_path / "nowhere", "train", npoints=2)
    root2 = resampled_root(tmp_path / "b", rows=50)
    with pytest.raises(DatasetError, match="50 points, fewer than npoints=128"):
        ModelNet40(root2, "test", npoints=128, progress=False)


def h5_root(tmp_path, points=2048):
    root = tmp_path / "modelnet40_ply_hdf5_2048"
    for name, n in (("ply_data_train0.h5", 5), ("ply_data_train1.h5", 3), ("ply_data_test0.h5", 4)):
        write_h5(root / name, data=RNG.normal(size=(n, points, 3)).astype(np.float32),
                 label=RNG.integers(0, 40, size=(n, 1)).astype(np.uint8))
    (root / "train_files.txt").write_text("data/modelnet40_ply_hdf5_2048/ply_data_train0.h5\n"
                                          "data/modelnet40_ply_hdf5_2048/ply_data_train1.h5\n")
    (root / "test_files.txt").write_text("data/modelnet40_ply_hdf5_2048/ply_data_test0.h5\n")
    return root


def test_modelnet_h5_layout(tmp_path):
    root = h5_root(tmp_path)
    ds = ModelNet40(root, "train", npoints=1024, format="h5")
    assert len(ds) == 8
    with h5py.File(root / "ply_data_train1.h5") as f:
        assert np.array_equal(ds[6][0].numpy(), f["data"][1, :1024]) and ds[6][1] == int(f["label"][1, 0])


def test_fewer_points_than_requested_is_an_error_unless_resampling_is_asked(tmp_path):
    root = h5_root(tmp_path, points=512)
    with pytest.raises(DatasetError, match="have 512 points but 1024 were requested.*allow_resampling"):
        ModelNet40(root, "test", npoints=1024, format="h5")
    ds = ModelNet40(root, "test", npoints=1024, format="h5", allow_resampling=True)
    assert ds[0][0].shape == (1024, 3)


def test_fewshot_fold(tmp_path):
    folder = tmp_path / "5way_10shot"
    folder.mkdir()
    make = lambda n: [(RNG.normal(size=(256, 6)).astype(np.float32) * 4, i % 5, None) for i in range(n)]  # noqa
    with open(folder / "3.pkl", "wb") as f:
        pickle.dump({"train": make(50), "test": make(20)}, f)
    train = ModelNetFewShot(tmp_path, 5, 10, 3, "train")
    assert len(train) == 50 and train[7][1] == 2 and train[7][0].shape == (256, 3)
    assert np.isclose(np.linalg.norm(train[7][0], axis=1).max(), 1)
    with pytest.raises(DatasetFileNotFoundError, match=r"10way_20shot/0\.pkl"):
        ModelNetFewShot(tmp_path, 10, 20, 0)


def test_demo_dataset_is_deterministic_fast_and_readable_by_the_scanobjectnn_loader(tmp_path):
    start = time.perf_counter()
    write_demo_dataset(tmp_path / "a")
    elapsed = time.perf_counter() - start
    write_demo_dataset(tmp_path / "b")
    assert elapsed < 30, f"default demo set took {elapsed:.1f}s"
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    for name in ("training_objectdataset.h5", "test_objectdataset.h5"):
        assert digest(tmp_path / "a/main_split" / name) == digest(tmp_path / "b/main_split" / name)
    train = ScanObjectNN(tmp_path / "a", "OBJ_BG", "train", num_classes=len(DEMO_CLASSES))
    assert len(DEMO_CLASSES) >= 10 and train[0][0].shape == (2048, 3)
    assert np.bincount(train.labels).tolist() == [80] * len(DEMO_CLASSES)
    with h5py.File(tmp_path / "a/main_split/test_objectdataset.h5") as f:
        assert "SYNTHETIC" in f.attrs["description"]
    write_demo_dataset(tmp_path / "c", seed=1)
    assert digest(tmp_path / "c/main_split/test_objectdataset.h5") != digest(
        tmp_path / "a/main_split/test_objectdataset.h5")


def test_demo_dataset_is_learnable_but_not_trivial(tmp_path):
    from sklearn.linear_model import LogisticRegression

    write_demo_dataset(tmp_path)
    train = ScanObjectNN(tmp_path, "OBJ_BG", "train", num_classes=12)
    test = ScanObjectNN(tmp_path, "OBJ_BG", "test", num_classes=12)

    def global_stats(points):  # covariance spectrum, extents, spread: what a linear probe on crude features sees
        return np.array([np.concatenate([np.linalg.eigvalsh(np.cov(p.T)), np.ptp(p, 0), p.std(0)]) for p in points])

    acc = LogisticRegression(max_iter=3000).fit(global_stats(train.points), train.labels).score(
        global_stats(test.points), test.labels)
    assert 3 / 12 < acc < 0.8, acc  # far above chance (1/12), far from solved
