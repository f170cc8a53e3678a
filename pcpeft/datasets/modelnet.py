"""ModelNet40 in the two layouts the references use, and few-shot ModelNet40 folds.

``format='resampled'`` (``modelnet40_normal_resampled``, as Point-BERT / Point-MAE):
    modelnet40_shape_names.txt, modelnet40_{train,test}.txt (ids such as ``airplane_0001``; the class is the id
    without its last ``_`` part), ``<class>/<id>.txt`` with comma-separated x,y,z,nx,ny,nz rows (10,000 points).
    The first use FPS-samples ``npoints`` of each shape and caches them as Point-MAE does in
    ``modelnet40_{subset}_{npoints}pts_fps.dat``: a pickle of [list of (npoints, 6) float32 arrays, list of (1,)
    int32 label arrays]. An existing Point-MAE cache file is read as is. (Point-MAE's own FPS starts at a random
    point; ours starts at point 0, so a cache we build is deterministic.)
``format='h5'`` (``modelnet40_ply_hdf5_2048``): ``{train,test}_files.txt`` list ``ply_data_*.h5`` files with
    ``data`` (N, 2048, 3) and ``label`` (N, 1); the first ``npoints`` points are used, as the PointNet/DGCNN
    loaders do, and the data is used as stored (already in the unit sphere).

Both pickle formats are read through the allow-list unpickler of :mod:`pcpeft.io.safe_pickle` (numpy arrays,
dtypes, numbers, strings and containers only): a data folder cannot run code.

Normalisation (resampled and few-shot, as the reference ``pc_normalize``): subtract the centroid, divide by the
largest norm.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io.safe_pickle import RefusedPickleError, safe_pickle_load
from .errors import DatasetError, require_file
from .h5 import read_h5
from .validation import check_enough_points, check_labels, check_points


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """(N, 3) -> centred at the centroid and scaled so the farthest point has norm 1."""
    centred = points - points.mean(axis=0)
    scale = np.sqrt((centred ** 2).sum(axis=1)).max()
    return centred / scale if scale > 0 else centred


def _read_lines(path: Path, what: str) -> list[str]:
    try:
        text = require_file(path, what).read_text()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a text file (not UTF-8)") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_resampled_shape(path: Path) -> np.ndarray:
    """One ``<class>/<id>.txt`` file -> (N, 6) float32, checked for shape and finiteness."""
    require_file(path, "ModelNet40 shape")
    try:
        data = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise DatasetError(f"{path}: not comma-separated numeric rows ({err})") from None
    if data.shape[1] != 6:
        raise DatasetError(f"{path}: rows have {data.shape[1]} values; expected 6 (x,y,z,nx,ny,nz)")
    if not np.isfinite(data).all():
        raise DatasetError(f"{path}: contains NaN or Inf values")
    return data


def _fps_rows(points: np.ndarray, count: int) -> np.ndarray:
    from ..ops.fps import farthest_point_sample

    idx = farthest_point_sample(torch.from_numpy(np.ascontiguousarray(points[None, :, :3])), count)[0].numpy()
    return points[idx]


def build_fps_cache(root: Path, subset: str, npoints: int, num_category: int = 40,
                    progress: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """FPS-sample every shape of ``subset`` to ``npoints`` rows and write the Point-MAE ``.dat`` cache atomically."""
    from tqdm import tqdm

    names = _read_lines(root / f"modelnet{num_category}_shape_names.txt", "ModelNet40 class names")
    class_index = {name: i for i, name in enumerate(names)}
    ids = _read_lines(root / f"modelnet{num_category}_{subset}.txt", f"ModelNet40 {subset} list")
    points, labels = [], []
    for shape_id in tqdm(ids, desc=f"FPS cache modelnet{num_category} {subset} {npoints}pts", disable=not progress):
        cls = "_".join(shape_id.split("_")[:-1])
        if cls not in class_index:
            raise DatasetError(f"{root / f'modelnet{num_category}_{subset}.txt'}: id {shape_id!r} names class "
                               f"{cls!r}, not in modelnet{num_category}_shape_names.txt")
        data = read_resampled_shape(root / cls / f"{shape_id}.txt")
        if len(data) < npoints:
            raise DatasetError(f"{root / cls / f'{shape_id}.txt'}: {len(data)} points, fewer than npoints={npoints}")
        points.append(_fps_rows(data, npoints).astype(np.float32))
        labels.append(np.array([class_index[cls]], dtype=np.int32))
    cache = root / f"modelnet{num_category}_{subset}_{npoints}pts_fps.dat"
    tmp = cache.with_name(cache.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump([points, labels], f)
    os.replace(tmp, cache)
    return points, labels


#: the arrays of a pickle may hold at most one value per byte of the file, plus this many (a genuine cache stores
#: every value in at least one byte; references to one array repeated many times would stack to far more)
VALUE_SLACK = 1 << 16


def _load_pickle(path: Path, what: str) -> object:
    """The allow-listed unpickling of ``path``; any failure but a refused name is a :class:`DatasetError`."""
    try:
        return safe_pickle_load(path)
    except RefusedPickleError:
        raise
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DatasetError(f"{path}: not a readable {what} ({type(err).__name__}: {str(err)[:200]})") from None


def _number_array(value: object, path: Path, what: str) -> np.ndarray:
    """``value`` (a numpy array, numpy scalar or Python number) as an array of numbers; anything else refused."""
    if isinstance(value, (int, float, np.generic)) and not isinstance(value, (str, bytes)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise DatasetError(f"{path}: {what} is a {type(value).__name__}, not a numpy array")
    if value.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {what} holds values of type {value.dtype}, not numbers")
    return value


def _check_value_count(arrays: list[np.ndarray], path: Path) -> None:
    """Refuse arrays that hold more values than the file has bytes (before anything stacks or converts them)."""
    count, size = sum(int(a.size) for a in arrays), path.stat().st_size
    if count > size + VALUE_SLACK:
        raise DatasetError(f"{path}: its arrays hold {count:,} values, more than a {size:,}-byte file stores; the "
                           f"file repeats references to the same arrays, which no genuine data file does")


def stack_clouds(clouds: list[np.ndarray], path: Path) -> np.ndarray:
    """(samples, points, dims) from equally shaped (points, dims) arrays; a :class:`DatasetError` naming the first
    cloud whose shape differs."""
    if not clouds:
        return np.zeros((0, 0, 6), dtype=np.float32)
    first = clouds[0].shape
    for index, cloud in enumerate(clouds):
        if cloud.ndim != 2 or cloud.shape != first:
            raise DatasetError(f"{path}: cloud {index} has shape {cloud.shape}; every cloud must be (points, dims) "
                               f"of the same shape as cloud 0 {first}")
    return np.stack(clouds)


def read_fps_cache(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A Point-MAE ``*_fps.dat`` cache: (list of point arrays, list of label arrays), each checked to be numbers."""
    content = _load_pickle(path, "Point-MAE FPS cache")
    if not (isinstance(content, (list, tuple)) and len(content) == 2
            and all(isinstance(part, (list, tuple, np.ndarray)) for part in content)
            and len(content[0]) == len(content[1])):
        raise DatasetError(f"{path}: expected a pickle of [list of point arrays, list of label arrays] "
                           f"of equal length")
    points = [_number_array(p, path, f"cloud {i}") for i, p in enumerate(content[0])]
    labels = [_number_array(label, path, f"label {i}") for i, label in enumerate(content[1])]
    _check_value_count(points + labels, path)
    return points, labels


class ModelNet40(Dataset):
    """ModelNet40 classification. Item: (points float32 (npoints, 3 or 6), label int64).

    Args:
        root: ``modelnet40_normal_resampled`` folder (format 'resampled') or ``modelnet40_ply_hdf5_2048`` (h5).
        subset: 'train' | 'test'.
        npoints: points per sample (resampled: the FPS cache size, 8192 in Point-MAE; h5: at most 2048).
        format: 'resampled' | 'h5'.
        use_normals: also return the normals (resampled only).
        allow_resampling: when a cloud has fewer than ``npoints`` points, sample with replacement instead of
            raising (off by default: it silently changes the data).
        progress: show a progress bar while building the FPS cache.
    """

    def __init__(self, root: str | Path, subset: str = "train", npoints: int = 8192, format: str = "resampled",
                 use_normals: bool = False, num_category: int = 40, allow_resampling: bool = False,
                 progress: bool = True) -> None:
        if subset not in ("train", "test"):
            raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
        self.root, self.subset, self.npoints = Path(root), subset, npoints
        self.use_normals, self.format = use_normals, format
        if format == "resampled":
            self._load_resampled(num_category, progress)
        elif format == "h5":
            if use_normals:
                raise ValueError("use_normals needs format='resampled' (the h5 layout has no normals in our loader)")
            self._load_h5(num_category, allow_resampling)
        else:
            raise ValueError(f"unknown ModelNet40 format {format!r}; choose 'resampled' or 'h5'")
        self.num_classes = num_category

    def _load_resampled(self, num_category: int, progress: bool) -> None:
        names = self.root / f"modelnet{num_category}_shape_names.txt"
        self.classes = tuple(_read_lines(names, "ModelNet40 class names"))
        cache = self.root / f"modelnet{num_category}_{self.subset}_{self.npoints}pts_fps.dat"
        if cache.is_file():
            points, labels = read_fps_cache(cache)
        else:
            points, labels = build_fps_cache(self.root, self.subset, self.npoints, num_category, progress)
        stacked = check_points(stack_clouds([np.asarray(p) for p in points], cache), cache)
        if stacked.shape[1] != self.npoints:
            raise DatasetError(f"{cache}: clouds have {stacked.shape[1]} points, the file name says {self.npoints}")
        self.points = stacked
        self.labels = check_labels(np.concatenate([np.asarray(label).reshape(-1) for label in labels]) if labels
                                   else np.zeros(0), len(stacked), len(self.classes), cache)

    def _load_h5(self, num_category: int, allow_resampling: bool) -> None:
        listing = self.root / f"{self.subset}_files.txt"
        files = [self.root / Path(line).name for line in _read_lines(listing, f"ModelNet40 h5 {self.subset} list")]
        if not files:
            raise DatasetError(f"{listing}: lists no h5 files")
        points, labels = [], []
        for path in files:
            arrays = read_h5(path, ("data", "label"), f"ModelNet40 h5 file listed in {listing}")
            pts = check_points(arrays["data"], path)
            if points and pts.shape[1] != points[0].shape[1]:
                raise DatasetError(f"{path}: clouds have {pts.shape[1]} points, those of {files[0]} have "
                                   f"{points[0].shape[1]}; every file must hold clouds of the same size")
            labels.append(check_labels(arrays["label"], len(pts), num_category, path))
            points.append(pts[..., :3])
        self.points = np.concatenate(points)
        self.labels = np.concatenate(labels)
        available = self.points.shape[1]
        check_enough_points(available, self.npoints, files[0], allow_resampling)
        if available >= self.npoints:
            self.points = np.ascontiguousarray(self.points[:, : self.npoints])
        else:
            rng = np.random.default_rng(0)
            extra = rng.integers(0, available, size=(len(self.points), self.npoints - available))
            self.points = np.concatenate([self.points, np.take_along_axis(
                self.points, extra[..., None].repeat(3, axis=2), axis=1)], axis=1)
        self.classes = tuple(str(i) for i in range(num_category))
        shape_names = self.root / "shape_names.txt"
        if shape_names.is_file():
            self.classes = tuple(_read_lines(shape_names, "ModelNet40 class names"))

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        points = np.array(self.points[index], dtype=np.float32)
        if self.format == "resampled":
            points[:, :3] = normalize_unit_sphere(points[:, :3])
            if not self.use_normals:
                points = points[:, :3]
        return torch.from_numpy(np.ascontiguousarray(points)), int(self.labels[index])


class ModelNetFewShot(Dataset):
    """Few-shot ModelNet40 fold: ``{way}way_{shot}shot/{fold}.pkl`` holding {'train': [...], 'test': [...]} with
    (points, label, _) items. Item: (normalised points float32 (N, 3 or 6), label int64)."""

    def __init__(self, root: str | Path, way: int, shot: int, fold: int, subset: str = "train",
                 use_normals: bool = False) -> None:
        self.path = Path(root) / f"{way}way_{shot}shot" / f"{fold}.pkl"
        require_file(self.path, f"few-shot ModelNet40 {way}-way {shot}-shot fold {fold}")
        content = _load_pickle(self.path, "few-shot pickle")
        if not isinstance(content, dict) or subset not in content:
            keys = sorted(map(str, content)) if isinstance(content, dict) else type(content).__name__
            raise DatasetError(f"{self.path}: expected a dict with key {subset!r}, found {keys}")
        clouds, labels = _fewshot_items(content[subset], self.path, subset)
        self.points = check_points(stack_clouds([c.astype(np.float32) for c in clouds], self.path), self.path)
        self.labels = check_labels(np.array(labels), len(labels), way, self.path)
        self.use_normals, self.num_classes = use_normals, way

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        points = np.array(self.points[index], dtype=np.float32)
        points[:, :3] = normalize_unit_sphere(points[:, :3])
        if not self.use_normals:
            points = points[:, :3]
        return torch.from_numpy(np.ascontiguousarray(points)), int(self.labels[index])


def _fewshot_items(items: object, path: Path, subset: str) -> tuple[list[np.ndarray], list[float]]:
    """(clouds, labels) of a few-shot fold's ``(points, label, _)`` items, each checked before anything stacks."""
    if not isinstance(items, (list, tuple)) or not items:
        raise DatasetError(f"{path}: {subset!r} must be a non-empty list of (points, label, _) items, found "
                           f"{type(items).__name__}{'' if items else ' (empty)'}")
    clouds, labels = [], []
    for index, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) < 2:
            raise DatasetError(f"{path}: {subset} item {index} is not a (points, label, _) tuple")
        clouds.append(_number_array(item[0], path, f"{subset} item {index} points"))
        label = _number_array(item[1], path, f"{subset} item {index} label").reshape(-1)
        if label.size == 0:
            raise DatasetError(f"{path}: {subset} item {index} has an empty label")
        labels.append(label[0].item())
    _check_value_count(clouds, path)
    return clouds, labels
