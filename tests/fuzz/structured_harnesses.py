"""Fuzz harnesses for pcpeft's structured readers: one function per reader, taking the bytes of one file.

Every harness writes its bytes where the reader expects the file (inside an otherwise valid folder), calls the
reader and checks the readers' promise:

- it returns a well-formed result, or raises :class:`pcpeft.errors.UserError` whose message names the file;
- it raises nothing else (a bug), never runs past :data:`SECONDS_PER_INPUT` (a hang) and never touches more than
  :data:`MEMORY_BASE` + :data:`MEMORY_PER_BYTE` x the file's size of new memory (checked with the kernel's peak-RSS
  counter, which ``/proc/self/clear_refs`` resets per input);
- an error caused by a failed allocation counts as a memory violation even when the reader wrapped it, because a
  reader must check sizes and counts before it allocates; an error Python could only report as "unraisable" (numpy
  failing to free an array whose dtype a file corrupted) counts as a crash.

A violation raises :class:`PropertyViolation` chained to the original exception. :data:`READERS` maps the reader
names to the harnesses, :data:`SEEDS` to the small valid files (written here in the real formats) that seed
corpora. The harnesses are plain functions of ``bytes``, so hypothesis (``test_structured_fuzz.py``), atheris
(``structured_atheris.py``) or any other driver can call them.
"""
from __future__ import annotations

import atexit
import copy
import functools
import gc
import io
import os
import pickle
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import h5py
import numpy as np
import torch

from pcpeft.errors import UserError
from tests.fuzz.harnesses import time_limit as point_time_limit

T = TypeVar("T")

#: hard wall-clock bound of one reader call (SIGALRM); the readers take milliseconds on these small files
SECONDS_PER_INPUT = 10.0
#: new resident memory a reader call may touch: this much plus MEMORY_PER_BYTE per byte of the file
MEMORY_BASE = 192 << 20
MEMORY_PER_BYTE = 64

SCAN_CLOUDS, SCAN_POINTS = 3, 32
MODELNET_POINTS, MODELNET_NPOINTS = 32, 16
DAT_NPOINTS = 16
SHAPE_NAMES = tuple(f"class{i:02d}" for i in range(40))
POINT_MAE = dict(num_classes=4, trans_dim=16, encoder_dims=16, depth=1, num_heads=2, num_group=8, group_size=4,
                 head_hidden=8)
VIT = dict(num_classes=3, img_size=16, patch_size=8, embed_dim=8, depth=1, num_heads=2)

_ALLOCATION_FAILURES = ("not enough memory", "unable to allocate", "can't allocate", "cannot allocate",
                        "out of memory", "std::bad_alloc")


#: the last UserError a reader raised inside :func:`check_reader` (tests read its message)
LAST_ERROR: list[UserError] = []


class PropertyViolation(AssertionError):
    """A reader broke its promise on one input: another exception, a hang, or memory far beyond the file."""


class InputTimeout(BaseException):
    """Raised by SIGALRM inside a reader call; a BaseException so that no reader's ``except Exception`` hides it."""


# -- bounds -------------------------------------------------------------------------------------------------------
def time_limit(seconds: float):
    """Raise this module's :class:`InputTimeout` in the main thread after ``seconds`` (the point readers' timer)."""
    return point_time_limit(seconds, error=InputTimeout)


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


@contextmanager
def peak_memory() -> Iterator[Callable[[], int]]:
    """Yields a function giving the most resident memory (bytes) touched since entering, beyond what was
    resident then; 0 where the kernel offers no resettable peak counter."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        start = _status_kib("VmRSS")
    except OSError:
        start = None
    yield lambda: 0 if start is None else max(0, _status_kib("VmHWM") - start) << 10


def _allocation_failure(err: BaseException) -> BaseException | None:
    """The failed allocation somewhere in ``err``'s chain of causes and contexts, if any."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, MemoryError) or any(s in str(err).lower() for s in _ALLOCATION_FAILURES):
            return err
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def unraisable_errors() -> Iterator[list[str]]:
    """Collect the errors Python could not raise (in ``__del__``, finalizers) while inside."""
    found: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda info: found.append(f"{info.exc_type.__name__}: {info.exc_value}")
    try:
        yield found
    finally:
        sys.unraisablehook = previous


def check_reader(reader: str, data: bytes, call: Callable[[], T], names: Sequence[str]) -> T | None:
    """Run ``call`` (a reader on the file holding ``data``) under the bounds; return its result, or None when it
    raised a well-formed :class:`UserError` naming one of ``names``. Anything else raises
    :class:`PropertyViolation`."""
    LAST_ERROR.clear()
    with unraisable_errors() as unraisable:
        result = _bounded_call(reader, data, call, names)
        gc.collect(0)
    if unraisable:
        raise PropertyViolation(f"{reader}: an internal error was swallowed while reading: {unraisable[0]}"[:1000])
    return result


def _bounded_call(reader: str, data: bytes, call: Callable[[], T], names: Sequence[str]) -> T | None:
    with peak_memory() as peak:
        try:
            with time_limit(SECONDS_PER_INPUT):
                result = call()
        except UserError as err:
            result = None
            LAST_ERROR[:] = [err]
            _check_user_error(reader, err, names)
        except InputTimeout as err:
            raise PropertyViolation(f"{reader}: {err} on a {len(data)}-byte input") from err
        except Exception as err:  # noqa: BLE001 - anything but a UserError breaks the promise
            raise PropertyViolation(f"{reader}: {type(err).__name__} escaped: {err}"[:2000]) from err
        touched = peak()
    bound = MEMORY_BASE + MEMORY_PER_BYTE * len(data)
    if touched > bound:
        raise PropertyViolation(f"{reader}: touched {touched >> 20} MiB for a {len(data)}-byte file (bound "
                                f"{bound >> 20} MiB)")
    return result


def _check_user_error(reader: str, err: UserError, names: Sequence[str]) -> None:
    message = str(err)
    if not any(name in message for name in names):
        raise PropertyViolation(f"{reader}: the error does not name the file ({list(names)}): {message[:500]}") \
            from err
    failed = _allocation_failure(err)
    if failed is not None:
        raise PropertyViolation(f"{reader}: the reader tried a huge allocation before refusing the file: "
                                f"{type(failed).__name__}: {str(failed)[:300]}") from err


@contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` while inside."""
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- scratch folders ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _scratch_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="pcpeft-structured-fuzz-"))
    atexit.register(shutil.rmtree, root, True)
    return root


def _folder(name: str) -> Path:
    folder = _scratch_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _fresh_folder(name: str) -> Path:
    folder = _scratch_root() / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


_WARM: set[str] = set()


def _warm_up(reader: str) -> None:
    """Run a reader once on its first seed without bounds: imports and caches are not the input's doing."""
    if reader in _WARM:
        return
    _WARM.add(reader)
    try:
        _READER_CALLS[reader](seeds(reader)[0])
    except Exception:  # noqa: BLE001 - the checked run reports it
        pass


# -- writers of the real formats ----------------------------------------------------------------------------------
def h5_bytes(arrays: dict[str, np.ndarray], attrs: dict[str, Any] | None = None, **dataset_options: Any) -> bytes:
    """An h5 file (as written by h5py, like the released data sets) holding ``arrays``."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, **dataset_options)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return buffer.getvalue()


def _clouds(n: int, points: int, dims: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, points, dims)).astype(np.float32)


def _scan_seeds() -> list[bytes]:
    data, labels = _clouds(SCAN_CLOUDS, SCAN_POINTS), np.array([0, 3, 14])
    return [h5_bytes({"data": data, "label": labels.astype(np.int64)}),
            h5_bytes({"data": data, "label": labels.astype(np.uint8)}, {"description": "released layout"}),
            h5_bytes({"data": data.astype(np.float64), "label": labels.reshape(-1, 1).astype(np.int32)}),
            h5_bytes({"data": data, "label": labels.astype(np.int64)}, compression="gzip", shuffle=True)]


def _modelnet_seeds() -> list[bytes]:
    data = _clouds(2, MODELNET_POINTS, seed=1)
    return [h5_bytes({"data": data, "label": np.array([[5], [39]], np.uint8)}),
            h5_bytes({"data": data, "label": np.array([[5], [39]], np.uint8)}, compression="gzip"),
            h5_bytes({"data": _clouds(3, MODELNET_POINTS, seed=2), "label": np.array([0, 1, 2], np.int64)})]


def dat_bytes(protocol: int = 2, numpy1: bool = False, clouds: int = 3) -> bytes:
    """A Point-MAE FPS cache (``modelnet40_<subset>_<n>pts_fps.dat``): [list of (n, 6) float32, list of (1,)
    int32]; ``numpy1`` names numpy.core as numpy 1.x (which wrote the released files) does."""
    points = list(_clouds(clouds, DAT_NPOINTS, 6))
    labels = [np.array([i * 7 % 40], dtype=np.int32) for i in range(clouds)]
    data = pickle.dumps([points, labels], protocol=protocol)
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if numpy1 else data


def _dat_seeds() -> list[bytes]:
    return [dat_bytes(2), dat_bytes(4), dat_bytes(2, numpy1=True), dat_bytes(4, clouds=1)]


def fewshot_bytes(protocol: int = 2, label_kind: str = "int") -> bytes:
    """A few-shot fold ``<way>way_<shot>shot/<fold>.pkl``: {'train': [(points, label, _)], 'test': [...]}."""
    def items(n: int, seed: int) -> list:
        clouds = _clouds(n, DAT_NPOINTS, 6, seed)
        label = (lambda i: i % 5) if label_kind == "int" else (lambda i: np.array([i % 5], np.int64))
        return [(clouds[i], label(i), None) for i in range(n)]

    return pickle.dumps({"train": items(4, 3), "test": items(2, 4)}, protocol=protocol)


def _fewshot_seeds() -> list[bytes]:
    return [fewshot_bytes(2), fewshot_bytes(4, "array")]


@functools.lru_cache(maxsize=None)
def point_mae_backbone() -> torch.nn.Module:
    """The tiny Point-MAE every checkpoint harness loads into (seeded: adapter fingerprints match)."""
    import pcpeft

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return pcpeft.create_model("point_mae", **POINT_MAE)


@functools.lru_cache(maxsize=None)
def vit_backbone() -> torch.nn.Module:
    import pcpeft

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return pcpeft.create_model("vit_tiny_patch16_224", **VIT)


def small_point_mae_state() -> dict[str, torch.Tensor]:
    """The Point-MAE tensors of at most 2,048 elements (the encoder's wide convolutions left out: a partial
    checkpoint is still one the loader reports on)."""
    return {k: v.clone() for k, v in point_mae_backbone().state_dict().items() if v.numel() <= 2048}


def torch_bytes(obj: Any, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def _torch_seeds() -> list[bytes]:
    state = small_point_mae_state()
    pretrain = {f"module.MAE_encoder.{k}": v for k, v in state.items() if not k.startswith(("cls_", "cls_head"))}
    pretrain["module.mask_token"] = torch.zeros(1, 1, POINT_MAE["trans_dim"])
    return [torch_bytes(state),
            torch_bytes({"base_model": state, "epoch": 3, "metrics": {"acc": np.float64(0.5)}}),
            torch_bytes({"base_model": pretrain, "optimizer": {}}),
            torch_bytes({"model": {f"module.{k}": v for k, v in vit_backbone().state_dict().items()}}),
            torch_bytes(state, legacy=True)]


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


def _safetensors_seeds() -> list[bytes]:
    return [safetensors_bytes(small_point_mae_state()),
            safetensors_bytes(dict(vit_backbone().state_dict()), {"format": "pt"}),
            safetensors_bytes({k: v.half() for k, v in list(small_point_mae_state().items())[:6]})]


ADAPTER_METHODS = (("adapter",), ("lora", "bitfit"))
ADAPTER_MEMBERS = ("adapter_config.json", "adapter_model.safetensors")


@functools.lru_cache(maxsize=None)
def adapter_folder_files(methods: tuple[str, ...] = ADAPTER_METHODS[0]) -> dict[str, bytes]:
    """The two files ``save_pretrained`` writes for ``methods`` on the tiny Point-MAE."""
    import pcpeft

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = pcpeft.get_peft_model(copy.deepcopy(point_mae_backbone()), list(methods))
    folder = _fresh_folder("adapter-seed")
    model.save_pretrained(folder)
    return {name: (folder / name).read_bytes() for name in ADAPTER_MEMBERS}


def adapter_input(member: str, content: bytes, methods: tuple[str, ...] = ADAPTER_METHODS[0]) -> bytes:
    """The harness input replacing ``member`` of a valid adapter folder of ``methods`` by ``content``."""
    return bytes([ADAPTER_MEMBERS.index(member) | ADAPTER_METHODS.index(methods) << 1]) + content


def _adapter_seeds() -> list[bytes]:
    return [adapter_input(member, adapter_folder_files(methods)[member], methods)
            for methods in ADAPTER_METHODS for member in ADAPTER_MEMBERS]


EXPORT_METHODS = (("lora",), ("adapter",))


@functools.lru_cache(maxsize=None)
def exported_bytes(methods: tuple[str, ...] = EXPORT_METHODS[0]) -> bytes:
    """A ``tools/export.py`` safetensors file of the tiny ViT with ``methods`` (merged when they all merge)."""
    import pcpeft
    from pcpeft.export import export_safetensors

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        model = pcpeft.get_peft_model(copy.deepcopy(vit_backbone()), list(methods))
    path = _fresh_folder("export-seed") / "model.safetensors"
    export_safetensors(model, path, {"name": "vit_tiny_patch16_224", **VIT}, ("a", "b", "c"),
                       {"img_size": VIT["img_size"], "mean": [0.5] * 3, "std": [0.5] * 3})
    return path.read_bytes()


def _exported_seeds() -> list[bytes]:
    return [exported_bytes(methods) for methods in EXPORT_METHODS]


RECIPE_BASE = "model: {name: point_mae, num_classes: 12, trans_dim: 32, depth: 1, num_heads: 2}\n" \
              "optimizer: {lr: 1.0e-3}\n"
RECIPE_SEEDS = (
    "_base_: [../base.yaml]\n"
    "dataset: {name: SyntheticDemo, root: datasets/synthetic_demo, npoints: 256}\n"
    "scheduler: {epochs: 2, warmup_epochs: 0}\n"
    "train: {batch_size: 8, num_workers: 0}\n",
    "_base_: ../base.yaml\n"
    "model: &m {name: point_mae, num_classes: 15, num_group: 64, group_size: 32}\n"
    "dataset: {name: ScanObjectNN, root: data/ScanObjectNN, split: OBJ_ONLY, npoints: 2048, val_fraction: 0.1}\n"
    "peft: [adapter, {method: lora, rank: 4}]\n"
    "augmentation: {rotate: true, up_axis: z}\n",
    "task: partseg\n"
    "model: {name: point_mae_partseg, num_parts: 50}\n"
    "dataset: {name: SyntheticParts, npoints: 512}\n"
    "test: {vote_times: 3}\n",
    # an official repository's recipe (Point-MAE dialect), translated on the fly
    "optimizer : {\n  type: AdamW,\n  kwargs: {\n  lr : 0.0005,\n  weight_decay : 0.05\n}}\n\n"
    "scheduler: {\n  type: CosLR,\n  kwargs: {\n    epochs: 300,\n    initial_epochs : 10\n}}\n\n"
    "dataset : {\n"
    "  train : { _base_: cfgs/dataset_configs/ScanObjectNN_objectbg.yaml,\n            others: {subset: 'train'}},\n"
    "  val : { _base_: cfgs/dataset_configs/ScanObjectNN_objectbg.yaml,\n            others: {subset: 'test'}},\n"
    "  test : { _base_: cfgs/dataset_configs/ScanObjectNN_objectbg.yaml,\n            others: {subset: 'test'}}}\n"
    "model : {\n  NAME: PointTransformer,\n  trans_dim: 384,\n  depth: 12,\n  drop_path_rate: 0.1,\n"
    "  cls_dim: 15,\n  num_heads: 6,\n  group_size: 32,\n  num_group: 128,\n  encoder_dims: 384,\n}"
    "\n\nnpoints: 2048\ntotal_bs : 32\nstep_per_update : 1\nmax_epoch : 300\ngrad_norm_clip : 10\n",
)
OVERRIDE_SEEDS = ("train.batch_size=16\nscheduler.epochs=3", "peft=adapter", "model.depth=2\ndataset.npoints=128",
                  "augmentation.up_axis=z\npeft=[lora, bitfit]", "train={batch_size: 4, amp: false}")


def _recipe_seeds() -> list[bytes]:
    return [text.encode() for text in RECIPE_SEEDS]


def _override_seeds() -> list[bytes]:
    return [text.encode() for text in OVERRIDE_SEEDS]


# -- the harnesses ------------------------------------------------------------------------------------------------
def _call_scanobjectnn(data: bytes) -> Any:
    from pcpeft.datasets import ScanObjectNN
    from pcpeft.datasets.scanobjectnn import split_file

    root = _folder("scanobjectnn")
    path = split_file(root, "OBJ_BG", "train")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return check_reader("h5_scanobjectnn", data, lambda: ScanObjectNN(root, "OBJ_BG", "train", seed=0),
                        [path.name])


def _check_clouds(points: np.ndarray, labels: np.ndarray, classes: int, dims: int, what: str) -> None:
    ok = (points.dtype == np.float32 and points.ndim == 3 and points.shape[2] == dims and labels.dtype == np.int64
          and labels.shape == (len(points),) and bool(np.isfinite(points).all())
          and bool(((labels >= 0) & (labels < classes)).all()))
    if not ok:
        raise PropertyViolation(f"{what}: ill-formed result: points {points.dtype} {points.shape}, labels "
                                f"{labels.dtype} {labels.shape}")


def h5_scanobjectnn(data: bytes) -> None:
    """``data`` as ``main_split/training_objectdataset.h5`` read by :class:`~pcpeft.datasets.ScanObjectNN`."""
    _warm_up("h5_scanobjectnn")
    ds = _call_scanobjectnn(data)
    if ds is not None:
        _check_clouds(ds.points, ds.labels, 15, 3, "h5_scanobjectnn")
        if len(ds):
            ds[len(ds) - 1]


def _call_modelnet(data: bytes) -> Any:
    from pcpeft.datasets import ModelNet40

    root = _folder("modelnet_h5")
    if not (root / "ply_data_train0.h5").is_file():
        (root / "ply_data_train0.h5").write_bytes(_modelnet_seeds()[0])
        (root / "train_files.txt").write_text("data/modelnet40_ply_hdf5_2048/ply_data_train0.h5\n"
                                              "data/modelnet40_ply_hdf5_2048/ply_data_train1.h5\n")
    path = root / "ply_data_train1.h5"
    path.write_bytes(data)
    return check_reader("h5_modelnet", data, lambda: ModelNet40(root, "train", MODELNET_NPOINTS, format="h5"),
                        [path.name])


def h5_modelnet(data: bytes) -> None:
    """``data`` as the second ``ply_data_train*.h5`` of a ModelNet40 h5 folder (the first one valid)."""
    _warm_up("h5_modelnet")
    ds = _call_modelnet(data)
    if ds is not None:
        _check_clouds(ds.points, ds.labels, 40, 3, "h5_modelnet")
        if ds.points.shape[1] != MODELNET_NPOINTS:
            raise PropertyViolation(f"h5_modelnet: clouds of {ds.points.shape[1]} points, {MODELNET_NPOINTS} asked")


def _call_dat(data: bytes) -> Any:
    from pcpeft.datasets import ModelNet40

    root = _folder("modelnet_dat")
    names = root / "modelnet40_shape_names.txt"
    if not names.is_file():
        names.write_text("\n".join(SHAPE_NAMES) + "\n")
    path = root / f"modelnet40_train_{DAT_NPOINTS}pts_fps.dat"
    path.write_bytes(data)
    return check_reader("pickle_dat", data, lambda: ModelNet40(root, "train", DAT_NPOINTS, progress=False),
                        [path.name])


def pickle_dat(data: bytes) -> None:
    """``data`` as the Point-MAE FPS cache ``modelnet40_train_16pts_fps.dat`` read by ModelNet40 ('resampled')."""
    _warm_up("pickle_dat")
    ds = _call_dat(data)
    if ds is not None:
        if ds.points.ndim != 3 or ds.points.shape[1] != DAT_NPOINTS or ds.points.shape[2] < 3:
            raise PropertyViolation(f"pickle_dat: ill-formed clouds {ds.points.shape}")
        _check_clouds(ds.points[..., :3].copy(), ds.labels, 40, 3, "pickle_dat")


def _call_fewshot(data: bytes) -> Any:
    from pcpeft.datasets import ModelNetFewShot

    folder = _folder("fewshot") / "5way_10shot"
    folder.mkdir(exist_ok=True)
    path = folder / "0.pkl"
    path.write_bytes(data)
    return check_reader("pickle_fewshot", data, lambda: ModelNetFewShot(folder.parent, 5, 10, 0, "train"),
                        [path.name])


def pickle_fewshot(data: bytes) -> None:
    """``data`` as the few-shot fold ``5way_10shot/0.pkl`` read by ModelNetFewShot."""
    _warm_up("pickle_fewshot")
    ds = _call_fewshot(data)
    if ds is not None:
        if ds.points.ndim != 3 or ds.points.shape[2] < 3:
            raise PropertyViolation(f"pickle_fewshot: ill-formed clouds {ds.points.shape}")
        _check_clouds(ds.points[..., :3].copy(), ds.labels, 5, 3, "pickle_fewshot")


def _check_report(report: Any, what: str) -> None:
    from pcpeft.models.checkpoints import LoadReport

    if not isinstance(report, LoadReport) or not all(
            isinstance(k, str) for k in report.loaded + report.missing + report.unexpected):
        raise PropertyViolation(f"{what}: ill-formed load report {report!r}")
    str(report)


def _call_checkpoint(reader: str, suffix: str, data: bytes) -> list | None:
    from pcpeft.models.checkpoints import load_checkpoint

    path = _folder("checkpoints") / f"ckpt{suffix}"
    path.write_bytes(data)
    reports = []
    for model in (point_mae_backbone(), vit_backbone()):
        reports.append(check_reader(reader, data, lambda: load_checkpoint(model, path), [path.name]))
    return reports if any(r is not None for r in reports) else None


def torch_checkpoint(data: bytes) -> None:
    """``data`` as a ``.pth`` file loaded (weights only) into the tiny Point-MAE and the tiny ViT."""
    _warm_up("torch_checkpoint")
    for report in _call_checkpoint("torch_checkpoint", ".pth", data) or []:
        if report is not None:
            _check_report(report, "torch_checkpoint")


def safetensors_checkpoint(data: bytes) -> None:
    """``data`` as a ``.safetensors`` file loaded into the tiny Point-MAE and the tiny ViT."""
    _warm_up("safetensors_checkpoint")
    for report in _call_checkpoint("safetensors_checkpoint", ".safetensors", data) or []:
        if report is not None:
            _check_report(report, "safetensors_checkpoint")


def _call_adapter(data: bytes) -> Any:
    from pcpeft.peft import PeftModel

    member = ADAPTER_MEMBERS[data[0] % 2] if data else ADAPTER_MEMBERS[1]
    folder = _fresh_folder("adapter")
    valid = adapter_folder_files(ADAPTER_METHODS[(data[0] >> 1) % 2] if data else ADAPTER_METHODS[0])
    for name, content in valid.items():
        (folder / name).write_bytes(data[1:] if name == member else content)
    backbone = copy.deepcopy(point_mae_backbone())
    return check_reader("adapter_folder", data, lambda: PeftModel.from_pretrained(backbone, folder),
                        [member, folder.name])


def adapter_folder(data: bytes) -> None:
    """A valid adapter folder of the tiny Point-MAE with one file replaced: byte 0 picks the file (bit 0:
    ``adapter_config.json`` / ``adapter_model.safetensors``) and the folder's methods (bit 1), the rest is the
    file's content. Read by ``PeftModel.from_pretrained``."""
    _warm_up("adapter_folder")
    model = _call_adapter(data)
    if model is not None:
        from pcpeft.peft import PeftModel

        if not isinstance(model, PeftModel):
            raise PropertyViolation(f"adapter_folder: returned {type(model).__name__}, not a PeftModel")


def _call_exported(data: bytes) -> Any:
    from pcpeft.export import load_exported

    path = _folder("exported") / "model.safetensors"
    path.write_bytes(data)
    return check_reader("exported_safetensors", data, lambda: load_exported(path), [path.name])


def exported_safetensors(data: bytes) -> None:
    """``data`` as a ``tools/export.py`` safetensors model file read by ``load_exported``."""
    _warm_up("exported_safetensors")
    net = _call_exported(data)
    if net is not None:
        names, pre = getattr(net, "class_names", None), getattr(net, "preprocessing", None)
        if not (isinstance(net, torch.nn.Module) and not net.training and isinstance(names, tuple)
                and all(isinstance(n, str) for n in names) and isinstance(pre, dict)):
            raise PropertyViolation(f"exported_safetensors: ill-formed model (class_names {names!r}, "
                                    f"preprocessing {pre!r})"[:2000])


def _recipe_folder() -> Path:
    root = _folder("recipes")
    if not (root / "base.yaml").is_file():
        (root / "base.yaml").write_text(RECIPE_BASE)
        (root / "sub").mkdir()
    return root


def _call_recipe(data: bytes) -> Any:
    from pcpeft.commands.recipe_input import load_recipe
    from pcpeft.engine.recipe.schema import validate_recipe

    path = _recipe_folder() / "sub" / "recipe.yaml"
    path.write_bytes(data)

    def read() -> Any:
        with quiet_logger("pcpeft"):  # an official recipe's translation logs every decision
            return validate_recipe(load_recipe(path).config, str(path))

    return check_reader("recipe_yaml", data, read, [path.name])


def recipe_yaml(data: bytes) -> None:
    """``data`` as ``sub/recipe.yaml`` (beside a valid ``base.yaml`` one folder up) read by ``load_recipe`` and
    checked by ``validate_recipe``."""
    _warm_up("recipe_yaml")
    settings = _call_recipe(data)
    if settings is not None:
        from pcpeft.engine.recipe.schema import Settings

        if not isinstance(settings, Settings) or not isinstance(settings.raw, dict):
            raise PropertyViolation(f"recipe_yaml: returned {type(settings).__name__}")


def _call_overrides(data: bytes) -> Any:
    from pcpeft.engine.recipe.yaml_io import apply_overrides, load_config

    config = load_config(_recipe_folder() / "base.yaml")
    text = data.decode("utf-8", errors="replace")
    items = [item for item in text.split("\n") if item]
    return check_reader("recipe_overrides", data, lambda: apply_overrides(config, items),
                        ["override"])


def recipe_overrides(data: bytes) -> None:
    """``data`` as ``--opts key=value`` overrides, one a line, applied to a valid recipe."""
    _warm_up("recipe_overrides")
    config = _call_overrides(data)
    if config is not None and not isinstance(config, dict):
        raise PropertyViolation(f"recipe_overrides: returned {type(config).__name__}")


READERS: dict[str, Callable[[bytes], None]] = {
    "h5_scanobjectnn": h5_scanobjectnn, "h5_modelnet": h5_modelnet, "pickle_dat": pickle_dat,
    "pickle_fewshot": pickle_fewshot, "torch_checkpoint": torch_checkpoint,
    "safetensors_checkpoint": safetensors_checkpoint, "adapter_folder": adapter_folder,
    "exported_safetensors": exported_safetensors, "recipe_yaml": recipe_yaml, "recipe_overrides": recipe_overrides,
}
_READER_CALLS: dict[str, Callable[[bytes], Any]] = {
    "h5_scanobjectnn": _call_scanobjectnn, "h5_modelnet": _call_modelnet, "pickle_dat": _call_dat,
    "pickle_fewshot": _call_fewshot, "torch_checkpoint": lambda d: _call_checkpoint("torch_checkpoint", ".pth", d),
    "safetensors_checkpoint": lambda d: _call_checkpoint("safetensors_checkpoint", ".safetensors", d),
    "adapter_folder": _call_adapter, "exported_safetensors": _call_exported, "recipe_yaml": _call_recipe,
    "recipe_overrides": _call_overrides,
}
SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "h5_scanobjectnn": _scan_seeds, "h5_modelnet": _modelnet_seeds, "pickle_dat": _dat_seeds,
    "pickle_fewshot": _fewshot_seeds, "torch_checkpoint": _torch_seeds, "safetensors_checkpoint": _safetensors_seeds,
    "adapter_folder": _adapter_seeds, "exported_safetensors": _exported_seeds, "recipe_yaml": _recipe_seeds,
    "recipe_overrides": _override_seeds,
}


@functools.lru_cache(maxsize=None)
def _seeds_cached(reader: str) -> tuple[bytes, ...]:
    return tuple(SEEDS[reader]())


def seeds(reader: str) -> list[bytes]:
    """The valid seed files of ``reader`` (written once per process)."""
    return list(_seeds_cached(reader))


def write_seed_corpus(reader: str, folder: str | os.PathLike) -> list[Path]:
    """Write ``reader``'s seeds into ``folder`` (a libFuzzer corpus) as ``seed-<i>``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, data in enumerate(seeds(reader)):
        path = folder / f"seed-{index}"
        path.write_bytes(data)
        written.append(path)
    return written


def regression_files(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(reader, file) of every saved input under ``root/<reader>/``."""
    root = Path(root)
    return [(folder.name, path) for folder in sorted(root.iterdir()) if folder.name in READERS
            for path in sorted(folder.iterdir()) if path.is_file()] if root.is_dir() else []


def read(reader: str, data: bytes) -> Any:
    """What ``reader``'s reader returned for ``data`` (None when it raised a UserError, kept in
    :data:`LAST_ERROR`), with the property checked as the harness checks it, minus the result's shape."""
    _warm_up(reader)
    return _READER_CALLS[reader](data)


__all__ = ["READERS", "SEEDS", "LAST_ERROR", "PropertyViolation", "InputTimeout", "check_reader", "read", "seeds",
           "time_limit", "write_seed_corpus", "regression_files", "h5_bytes", "dat_bytes", "fewshot_bytes",
           "torch_bytes", "safetensors_bytes", "adapter_input", "adapter_folder_files", "exported_bytes"]
