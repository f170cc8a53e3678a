"""Property-based tests of the structured readers: every input either reads to a well-formed result or raises
pcpeft's UserError naming the file, within a time and memory bound, and never runs code from the file.

Each reader's harness (``structured_harnesses.py``) checks that property; here hypothesis feeds it byte mutations of
valid seed files (truncation, bit flips, inserted and overwritten bytes, repeated chunks, extreme length fields)
and structured inputs where the format matters: planted pickles, memory and time bombs in pickles, h5 files, torch
archives, safetensors headers, exported metadata, adapter configs and YAML recipes. The examples are derandomized,
so a run is the same on every machine; the inputs the coverage-guided runs found (``structured_atheris.py``) are
replayed from ``regressions/<reader>/``.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import structured_harnesses as H

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
NUMPY_CORE = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"


def bounded(examples: int):
    """Deterministic hypothesis settings: ``examples`` examples, a per-example deadline, no example database."""
    return settings(max_examples=examples, derandomize=True, deadline=timedelta(seconds=5), database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], print_blob=True)


def refused(reader: str, data: bytes, *fragments: str | tuple[str, ...]) -> str:
    """The message of the UserError ``reader`` raises for ``data`` (the property checked on the way); it must hold
    every fragment (a tuple: one of its strings)."""
    assert H.read(reader, data) is None, f"{reader} accepted the file"
    message = str(H.LAST_ERROR[0])
    for fragment in fragments:
        assert any(f in message for f in ((fragment,) if isinstance(fragment, str) else fragment)), \
            (fragment, message)
    return message


# -- byte mutations of the seeds ----------------------------------------------------------------------------------
@st.composite
def mutated(draw, reader: str) -> bytes:
    """A seed of ``reader`` with 1-4 mutations: truncation, bit flip, inserted or overwritten bytes, a repeated
    chunk, or a 2-, 4- or 8-byte field set to an extreme value (the length and offset fields of every format)."""
    seeds = H.seeds(reader)
    data = bytearray(seeds[draw(st.integers(0, len(seeds) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["truncate", "flip", "insert", "overwrite", "repeat", "extreme"]))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 256))] * draw(st.integers(1, 8))
        elif op == "extreme":
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from([0, 1, 2 ** (8 * width - 1) - 1, 2 ** (8 * width) - 1, 2 ** (8 * width - 1)]))
            data[at:at + width] = value.to_bytes(width, "little")
    return bytes(data)


MUTATION_EXAMPLES = {"h5_scanobjectnn": 200, "h5_modelnet": 100, "pickle_dat": 250, "pickle_fewshot": 120,
                     "torch_checkpoint": 100, "safetensors_checkpoint": 150, "adapter_folder": 25,
                     "exported_safetensors": 60, "recipe_yaml": 150, "recipe_overrides": 150}


def _mutation_test(reader: str):
    @bounded(MUTATION_EXAMPLES[reader])
    @given(data=mutated(reader))
    def test(data: bytes) -> None:
        H.READERS[reader](data)

    test.__doc__ = f"Byte mutations of the {reader} seeds keep the property."
    return test


test_h5_scanobjectnn_mutations = _mutation_test("h5_scanobjectnn")
test_h5_modelnet_mutations = _mutation_test("h5_modelnet")
test_pickle_dat_mutations = _mutation_test("pickle_dat")
test_pickle_fewshot_mutations = _mutation_test("pickle_fewshot")
test_torch_checkpoint_mutations = _mutation_test("torch_checkpoint")
test_safetensors_checkpoint_mutations = _mutation_test("safetensors_checkpoint")
test_adapter_folder_mutations = _mutation_test("adapter_folder")
test_exported_safetensors_mutations = _mutation_test("exported_safetensors")
test_recipe_yaml_mutations = _mutation_test("recipe_yaml")
test_recipe_overrides_mutations = _mutation_test("recipe_overrides")


@pytest.mark.parametrize("reader", sorted(H.READERS))
def test_every_seed_is_a_valid_file_that_reads(reader: str) -> None:
    for data in H.seeds(reader):
        assert H.read(reader, data) is not None, (reader, H.LAST_ERROR)
        H.READERS[reader](data)


@pytest.mark.parametrize("reader, path", H.regression_files(REGRESSIONS),
                         ids=[f"{r}/{p.name}" for r, p in H.regression_files(REGRESSIONS)])
def test_saved_fuzz_inputs_keep_the_property(reader: str, path: Path) -> None:
    H.READERS[reader](path.read_bytes())


# -- pickles: planted code ----------------------------------------------------------------------------------------
class Reduced:
    """Pickles as ``func(*args)`` (then ``__setstate__(state)``): what a crafted file asks the unpickler to do."""

    def __init__(self, func: Any, args: tuple, state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _planted(marker: Path) -> list[tuple[str, Reduced]]:
    """(the global the pickle names, the payload): ``os.system`` pickles as ``posix.system``."""
    import builtins
    import importlib

    touch = f"open({str(marker)!r}, 'w').close()"
    calls = [(os.system, (f"touch {marker}",)), (subprocess.Popen, (["touch", str(marker)],)),
             (builtins.exec, (touch,)), (builtins.eval, (touch,)), (getattr, ("text", "upper")),
             (builtins.__import__, ("os",)), (importlib.import_module, ("os",))]
    return [(f"{pickle.whichmodule(f, f.__qualname__)}.{f.__qualname__}", Reduced(f, args)) for f, args in calls]


PLANTED = ["os.system", "subprocess.Popen", "builtins.exec", "builtins.eval", "builtins.getattr",
           "builtins.__import__", "importlib.import_module"]


def _planted_files(payload: Reduced) -> dict[str, bytes]:
    cloud = np.zeros((H.DAT_NPOINTS, 6), np.float32)
    return {"pickle_dat": pickle.dumps([[cloud, payload], [np.array([0], np.int32)] * 2], protocol=2),
            "pickle_fewshot": pickle.dumps({"train": [(cloud, 0, payload)]}, protocol=4),
            "torch_checkpoint": H.torch_bytes({"base_model": H.small_point_mae_state(), "metrics": payload}),
            "legacy": H.torch_bytes({"state_dict": {"norm.bias": torch.zeros(16)}, "x": payload}, legacy=True)}


@pytest.mark.parametrize("index", range(7), ids=PLANTED)
def test_planted_pickles_are_refused_by_name_and_never_run(tmp_path: Path, index: int) -> None:
    marker = tmp_path / "ran"
    name, payload = _planted(marker)[index]
    for kind, data in _planted_files(payload).items():
        reader = "torch_checkpoint" if kind == "legacy" else kind
        refused(reader, data, name, "refused to load")
        assert not marker.exists(), kind


# -- pickles: memory and time bombs -------------------------------------------------------------------------------
def _laughs(levels: int, fanout: int) -> bytes:
    """Opcodes leaving on the stack a tuple nest where level i holds ``fanout`` references to level i-1 (memo
    ``levels``): tiny in the file, ``fanout ** levels`` nodes to hash, compare or print."""
    ops = b"\x80\x02)r" + struct.pack("<I", 0)  # EMPTY_TUPLE, LONG_BINPUT 0
    for level in range(1, levels + 1):
        ops += b"(" + (b"j" + struct.pack("<I", level - 1)) * fanout + b"tr" + struct.pack("<I", level)
    return ops


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _pickle_bombs() -> dict[str, bytes]:
    big, lol = struct.pack("<i", 1 << 30), _laughs(40, 8)
    reconstruct = (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct
    empty = (np.ndarray, (0,), b"b")
    return {
        "bytearray(<1 GiB>)": b"\x80\x02" + _global("__builtin__", "bytearray") + b"J" + big + b"\x85R.",
        "bytes(<1 GiB>)": b"\x80\x02" + _global("__builtin__", "bytes") + b"J" + big + b"\x85R.",
        "numpy.ndarray(<1 Gi values>)": b"\x80\x02" + _global("numpy", "ndarray") + b"(J" + big + b"\x85tR.",
        "_reconstruct(<1 Gi values>)": b"\x80\x02" + _global(NUMPY_CORE, "_reconstruct") + _global("numpy", "ndarray")
        + b"J" + big + b"\x85C\x01b\x87R.",
        "object array of 1 Gi slots": pickle.dumps(Reduced(reconstruct, empty, (1, (1 << 30,), np.dtype("O"), False,
                                                                                [None])), 2),
        "float array claiming 1 Gi values": pickle.dumps(Reduced(reconstruct, empty, (1, (1 << 30,), np.dtype("f4"),
                                                                                      False, b"\0" * 4)), 2),
        "float32 dtype flagged as holding objects": pickle.dumps(Reduced(
            reconstruct, (np.ndarray, (0,), Reduced(np.dtype, ("f4", False, True),
                                                   (3, "<", None, None, None, -1, -1, 63))), None), 2),
        "timedelta dtype state without its unit": pickle.dumps(Reduced(
            reconstruct, (np.ndarray, (0,), Reduced(np.dtype, ("m8", False, True),
                                                   (3, "<", None, None, None, -1, -1, 0))), None), 2),
        "list of a 2**40-row array": pickle.dumps(Reduced(list, (np.zeros((1 << 40, 0), np.float32),)), 2),
        "memo index 2**28": b"\x80\x02Nr\xff\xff\xff\x0f.",
        "BINBYTES8 of 1 TiB": b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc.",
        "BYTEARRAY8 of 1 TiB": b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b"abc.",
        "BINUNICODE8 of 1 TiB": b"\x80\x04\x8d" + struct.pack("<Q", 1 << 40) + b"abc.",
        "FRAME of 1 TiB": b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"N.",
        "LONG4 of 2 GiB": b"\x80\x02\x8b" + struct.pack("<i", (1 << 31) - 1) + b"\x01.",
        "tuple nest as a dict key": lol + b"}r\x00\x01\x00\x00j" + struct.pack("<I", 40) + b"Ns.",
        "tuple nest in a set": lol + _global("__builtin__", "set") + b"(j" + struct.pack("<I", 40) + b"l\x85R.",
        "str of a tuple nest": lol + _global("__builtin__", "str") + b"j" + struct.pack("<I", 40) + b"\x85R.",
        "numpy.dtype of a tuple nest": lol + _global("numpy", "dtype") + b"j" + struct.pack("<I", 40) + b"\x85R.",
        "frozenset of a tuple nest": b"\x80\x04" + lol[2:] + b"(j" + struct.pack("<I", 40) + b"\x91.",
    }


@pytest.mark.parametrize("bomb", sorted(_pickle_bombs()))
@pytest.mark.parametrize("reader", ["pickle_dat", "pickle_fewshot"])
def test_pickle_bombs_are_refused_within_the_bounds(reader: str, bomb: str) -> None:
    H.READERS[reader](_pickle_bombs()[bomb])


def test_repeated_references_to_one_cloud_are_refused_before_stacking() -> None:
    """A list of 100,000 references to one cloud: 400 kB of pickle, 40 MB once stacked (a million: 400 MB)."""
    cloud = np.zeros((H.DAT_NPOINTS, 6), np.float32)
    data = pickle.dumps([[cloud] * 100_000, [np.array([0], np.int32)] * 100_000], protocol=4)
    refused("pickle_dat", data, "references")


# -- h5 -----------------------------------------------------------------------------------------------------------
def _h5(build) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        build(f)
    return buffer.getvalue()


def _labels(f: h5py.File, n: int = H.SCAN_CLOUDS) -> None:
    f["label"] = np.zeros(n, np.int64)


def _h5_cases(tmp: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file, fragment its refusal names)."""
    other = tmp / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros((3, 32, 3), np.float32)
    outside = tmp / "outside.bin"
    outside.write_bytes(np.zeros((3, 32, 3), np.float32).tobytes())
    layout = h5py.VirtualLayout(shape=(3, 32, 3), dtype="f4")
    layout[:] = h5py.VirtualSource(str(other), "x", shape=(3, 32, 3))
    cases = {
        "lazy 24 GB dataset": (lambda f: (f.create_dataset("data", (1_000_000, 2048, 3), "f4", chunks=(1, 2048, 3)),
                                          _labels(f)), "claims"),
        "contiguous 24 GB never written": (lambda f: (f.create_dataset("data", (1_000_000, 2048, 3), "f4"),
                                                      _labels(f)), "claims"),
        "gzip of 20 MB of zeros": (lambda f: (f.create_dataset("data", data=np.zeros((800, 2048, 3), np.float32),
                                                               compression="gzip", chunks=(100, 2048, 3)),
                                              _labels(f, 800)), "claims"),
        "compound dtype": (lambda f: (f.create_dataset("data", data=np.zeros((3, 32), [("x", "f4"), ("y", "i4")])),
                                      _labels(f)), "not numbers"),
        "strings": (lambda f: (f.create_dataset("data", data=np.array([b"abc"] * 3)), _labels(f)), "not numbers"),
        "variable-length strings": (lambda f: (f.create_dataset("data", data=["a", "bc", "d"],
                                                                dtype=h5py.string_dtype()), _labels(f)),
                                    "not numbers"),
        "complex": (lambda f: (f.create_dataset("data", data=np.zeros((3, 32, 3), np.complex64)), _labels(f)),
                    "not numbers"),
        "array dtype": (lambda f: (f.create_dataset("data", (3, 32), np.dtype(("f4", (3,)))), _labels(f)),
                        "not numbers"),
        "string labels": (lambda f: (f.create_dataset("data", data=np.zeros((3, 32, 3), np.float32)),
                                     f.create_dataset("label", data=np.array([b"1", b"2", b"3"]))), "not numbers"),
        "group instead of data": (lambda f: (f.create_group("data"), _labels(f)), "not a dataset"),
        "external link": (lambda f: (f.__setitem__("data", h5py.ExternalLink(str(other), "x")), _labels(f)),
                          "link to another file"),
        "external raw data": (lambda f: (f.create_dataset("data", (3, 32, 3), "f4",
                                                          external=[(str(outside), 0, 3 * 32 * 3 * 4)]),
                                         _labels(f)), "outside this file"),
        "virtual dataset": (lambda f: (f.create_virtual_dataset("data", layout), _labels(f)), "outside this file"),
        "empty dataspace": (lambda f: (f.create_dataset("data", data=h5py.Empty("f4")), _labels(f)), "no values"),
        "dangling soft link": (lambda f: (f.__setitem__("data", h5py.SoftLink("/nowhere")), _labels(f)), "data"),
        "labels out of range": (lambda f: (f.create_dataset("data", data=np.zeros((3, 32, 3), np.float32)),
                                           f.create_dataset("label", data=np.array([0, 15, -1]))), "label"),
        "NaN points": (lambda f: (f.create_dataset("data", data=np.full((3, 32, 3), np.nan, np.float32)),
                                  _labels(f)), "NaN"),
        "scalar data": (lambda f: (f.create_dataset("data", data=3.0), _labels(f)), "shape"),
    }
    return {name: (_h5(build), fragment) for name, (build, fragment) in cases.items()}


def test_h5_files_that_are_not_point_data_are_refused_naming_the_key(tmp_path: Path) -> None:
    for name, (data, fragment) in _h5_cases(tmp_path).items():
        message = refused("h5_scanobjectnn", data, "training_objectdataset.h5", fragment)
        assert "\n" not in message, (name, message)
        refused("h5_modelnet", data, "ply_data_train1.h5", fragment)


def test_a_soft_link_inside_the_file_still_reads() -> None:
    data = _h5(lambda f: (f.create_dataset("points", data=np.ones((3, 32, 3), np.float32)),
                          f.__setitem__("data", h5py.SoftLink("/points")), _labels(f)))
    assert H.read("h5_scanobjectnn", data) is not None


def test_h5_files_with_clouds_of_another_size_are_refused_naming_the_file() -> None:
    data = H.h5_bytes({"data": np.zeros((2, 48, 3), np.float32), "label": np.zeros((2, 1), np.uint8)})
    refused("h5_modelnet", data, "ply_data_train1.h5", "48 points")


# -- torch checkpoints --------------------------------------------------------------------------------------------
def _deflated_member(data: bytes, member: str, size: int) -> bytes:
    """The torch archive ``data`` with ``member`` replaced by ``size`` zero bytes, deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename.endswith(member):
                target.writestr(info.filename, bytes(size), compress_type=zipfile.ZIP_DEFLATED)
            else:
                target.writestr(info, source.read(info.filename))
    return out.getvalue()


def test_a_torch_archive_that_inflates_beyond_its_size_is_refused_before_inflating() -> None:
    data = _deflated_member(H.torch_bytes({"w": torch.zeros(10)}), "data/0", 64 << 20)
    refused("torch_checkpoint", data, "ckpt.pth", "inflate")


def test_a_legacy_file_claiming_a_huge_storage_is_refused_within_the_bounds() -> None:
    data = H.torch_bytes({"norm.weight": torch.zeros(16)}, legacy=True)
    data = data.replace(b"cpuq\x06K\x10N", b"cpuq\x06J\x00\x00\x00\x60N")
    assert data != H.torch_bytes({"norm.weight": torch.zeros(16)}, legacy=True)
    refused("torch_checkpoint", data, "ckpt.pth")


DTYPES = [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int8, torch.uint8, torch.bool,
          torch.complex64, torch.float8_e4m3fn]


@bounded(25)
@given(st.data())
def test_checkpoints_of_wrong_dtypes_and_shapes_load_or_are_refused(data: st.DataObject) -> None:
    state = H.small_point_mae_state()
    changed = {}
    for key, value in state.items():
        change = data.draw(st.sampled_from(["keep", "dtype", "shape", "drop"]), label=key)
        if change == "dtype":
            value = value.to(data.draw(st.sampled_from(DTYPES)))
        elif change == "shape":
            value = torch.zeros(data.draw(st.lists(st.integers(0, 5), max_size=4)))
        if change != "drop":
            changed[key] = value
    if changed:
        H.READERS["torch_checkpoint"](H.torch_bytes(changed))
        H.READERS["safetensors_checkpoint"](H.safetensors_bytes(changed))


def test_tensors_the_model_cannot_hold_are_refused_naming_the_key() -> None:
    state = H.small_point_mae_state()
    for odd in (torch.eye(16)[0].to_sparse(), torch.zeros(16, device="meta"), torch.zeros(16, dtype=torch.complex64)):
        refused("torch_checkpoint", H.torch_bytes({**state, "norm.weight": odd}), "ckpt.pth", "norm.weight")
    refused("torch_checkpoint", H.torch_bytes({**state, 7: torch.zeros(1)}), "ckpt.pth", "not a string")


# -- safetensors headers ------------------------------------------------------------------------------------------
ST_DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "I8", "U8", "BOOL", "C64", "F8_E4M3", "U64", "F4", "XX"]
HUGE = [0, 1, 3, 16, 255, 2 ** 31, 2 ** 32 + 1, 2 ** 40, 2 ** 63 - 1, 2 ** 64 - 1]


@st.composite
def safetensors_files(draw) -> bytes:
    """A safetensors file whose JSON header may lie: offsets past the data, overlapping or reversed, shapes whose
    product overflows, unknown dtypes, odd metadata, and a length field that claims more than the file."""
    payload = draw(st.binary(max_size=256))
    header: dict[str, Any] = {}
    for index in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["norm.weight", "norm.bias", "cls_token", f"t{index}", "", "__metadata__x"]))
        shape = draw(st.lists(st.one_of(st.integers(0, 8), st.sampled_from(HUGE)), max_size=4))
        start = draw(st.one_of(st.integers(0, len(payload)), st.sampled_from(HUGE)))
        end = draw(st.one_of(st.integers(0, len(payload)), st.sampled_from(HUGE)))
        header[name] = {"dtype": draw(st.sampled_from(ST_DTYPES)), "shape": shape, "data_offsets": [start, end]}
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=8), st.one_of(
            st.text(max_size=8), st.integers(), st.none()), max_size=3))
    text = json.dumps(header).encode()
    length = draw(st.one_of(st.just(len(text)), st.sampled_from(HUGE), st.integers(0, len(text) + 8)))
    return struct.pack("<Q", length % 2 ** 64) + text + payload


@bounded(80)
@given(safetensors_files())
def test_safetensors_headers_that_lie_are_refused(data: bytes) -> None:
    H.READERS["safetensors_checkpoint"](data)
    H.READERS["exported_safetensors"](data)
    H.READERS["adapter_folder"](H.adapter_input("adapter_model.safetensors", data))


# -- exported model files and adapter folders ---------------------------------------------------------------------
def _with_metadata(data: bytes, **changes: Any) -> bytes:
    """An exported file with metadata entries replaced (values are JSON-encoded unless already text)."""
    from safetensors import safe_open
    from safetensors.torch import load

    path = H._folder("exported-edit") / "edit.safetensors"
    path.write_bytes(data)
    with safe_open(str(path), "pt") as handle:
        meta = dict(handle.metadata())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    return H.safetensors_bytes(load(data), meta)


def _model_spec(**changes: Any) -> dict:
    return {"name": "vit_tiny_patch16_224", **H.VIT, **changes}


EXPORT_CASES = {
    "a model a million wide": dict(model=_model_spec(embed_dim=1_000_000)),
    "a model a million deep": dict(model=_model_spec(depth=1_000_000)),
    "a model of another depth": dict(model=_model_spec(depth=2)),
    "an unknown model": dict(model=_model_spec(name="no_such_model")),
    "an unknown model option": dict(model=_model_spec(img_sze=16)),
    "a model option of the wrong type": dict(model=_model_spec(depth="two")),
    "heads that do not divide the width": dict(model=_model_spec(num_heads=3)),
    "a model without a name": dict(model={"depth": 1}),
    "a LoRA of rank ten million": dict(peft=[{"method": "lora", "rank": 10_000_000}], merged=False),
    "an unknown method": dict(peft=[{"method": "nope"}]),
    "an unknown method option": dict(peft=[{"method": "lora", "rnak": 4}]),
    "method configs that are not dicts": dict(peft=["lora"]),
    "no model entry": dict(model=None),
    "model entry not JSON": dict(model="{not json"),
    "model entry nested 100000 deep": dict(model="[" * 100_000 + "]" * 100_000),
    "merged not a bool": dict(merged="yes"),
    "class names not strings": dict(class_names=[1, 2, 3]),
    "preprocessing not a dict": dict(preprocessing=[1]),
    "a number of 10000 digits": dict(model='{"name": "vit_tiny_patch16_224", "depth": ' + "9" * 10_000 + "}"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_exported_files_whose_metadata_lies_are_refused_before_building(case: str) -> None:
    data = _with_metadata(H.exported_bytes(), **EXPORT_CASES[case])
    refused("exported_safetensors", data, "model.safetensors")


ADAPTER_CASES = {
    "an adapter a million wide": [{"method": "adapter", "bottleneck": 1_000_000}],
    "a LoRA of rank ten million": [{"method": "lora", "rank": 10_000_000}],
    "a rank of the wrong type": [{"method": "adapter", "bottleneck": "wide"}],
    "a negative size": [{"method": "adapter", "bottleneck": -4}],
    "an unknown method": [{"method": "nope"}],
    "an unknown option": [{"method": "adapter", "bottlenek": 8}],
    "a config that is not a dict": ["adapter"],
    "a config of pairs": [[["method", "adapter"]]],
}


def _adapter_config(**changes: Any) -> bytes:
    meta = json.loads(H.adapter_folder_files()["adapter_config.json"])
    meta.update(changes)
    return H.adapter_input("adapter_config.json", json.dumps(meta).encode())


@pytest.mark.parametrize("case", sorted(ADAPTER_CASES))
def test_adapter_configs_that_ask_for_other_layers_are_refused_before_building(case: str) -> None:
    refused("adapter_folder", _adapter_config(configs=ADAPTER_CASES[case]),
            ("adapter_config.json", "adapter_model.safetensors"))


@pytest.mark.parametrize("changes", [dict(backbone_fingerprint=7), dict(architecture=[1]), dict(backbone=[]),
                                     dict(configs={"method": "adapter"})], ids=str)
def test_adapter_configs_of_the_wrong_types_are_refused(changes: dict) -> None:
    refused("adapter_folder", _adapter_config(**changes), "adapter_config.json")


def test_adapter_configs_that_are_not_json_are_refused() -> None:
    for text in ("[" * 100_000, '{"configs": [], "backbone_fingerprint": ' + "1" * 10_000 + "}", "\xff\xfe"):
        refused("adapter_folder", H.adapter_input("adapter_config.json", text.encode("utf-8", "surrogateescape")),
                "adapter_config.json")


@bounded(25)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                max_size=3), max_leaves=12),
       st.sampled_from(["configs", "architecture", "backbone", "backbone_fingerprint"]))
def test_adapter_configs_with_any_json_keep_the_property(value: Any, key: str) -> None:
    H.READERS["adapter_folder"](_adapter_config(**{key: value}))


# -- recipes ------------------------------------------------------------------------------------------------------
def _recipe(text: str) -> bytes:
    return text.encode()


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch {m}']",
                                 "!!python/object/apply:subprocess.Popen [['touch', '{m}']]",
                                 "!!python/object/new:builtins.exec [\"open('{m}', 'w')\"]",
                                 "!!python/name:builtins.eval", "!!python/module:os",
                                 "!!python/object:collections.OrderedDict {{}}"])
def test_python_tags_in_recipes_are_refused_and_never_run(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "ran"
    text = f"model: {tag.format(m=marker)}\ndataset: {{name: SyntheticDemo}}\n"
    refused("recipe_yaml", _recipe(text), "recipe.yaml")
    refused("recipe_overrides", f"train.batch_size={tag.format(m=marker)}".encode(), "override")
    assert not marker.exists()


@st.composite
def alias_bombs(draw) -> str:
    """A recipe whose anchors nest ``fanout`` aliases per level: a few lines, ``fanout ** levels`` values."""
    levels, fanout = draw(st.integers(2, 12)), draw(st.integers(2, 12))
    merge = draw(st.booleans())
    lines = ["a0: &a0 [x]" if not merge else "a0: &a0 {k0: 1}"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * fanout)
        lines.append(f"a{level}: &a{level} [{refs}]" if not merge else
                     f"a{level}: &a{level} {{<<: [{refs}], k{level}: [{refs}]}}")
    key = draw(st.sampled_from(["train: {batch_size: *top}", "model: {name: point_mae, num_classes: *top}",
                                "peft: *top", "run: *top", "dataset: {name: SyntheticDemo, root: *top}"]))
    return "\n".join(lines).replace("a0: &a0", "a0: &a0", 1) + "\n" + key.replace("*top", f"*a{levels}") + "\n"


@bounded(40)
@given(alias_bombs())
def test_alias_bombs_are_bounded(text: str) -> None:
    H.READERS["recipe_yaml"](_recipe("dataset: {name: SyntheticDemo}\nmodel: {num_classes: 12}\n" + text))


def test_a_billion_laughs_recipe_is_refused_naming_the_file() -> None:
    lines = ["a0: &a0 [lol]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    refused("recipe_yaml", _recipe("\n".join(lines) + "\ntrain: {batch_size: *a9}\n"), "recipe.yaml", "unfolds")


@bounded(12)
@given(st.integers(1, 1000), st.sampled_from(["flow list", "flow dict", "block dict", "block list"]))
def test_deep_nesting_is_bounded(depth: int, style: str) -> None:
    if style == "flow list":
        value = "[" * depth + "1" + "]" * depth
    elif style == "flow dict":
        value = "{a: " * depth + "1" + "}" * depth
    elif style == "block dict":
        value = "\n" + "".join("  " * (i + 1) + "a:\n" for i in range(depth - 1)) + "  " * depth + "a: 1"
    else:
        value = "\n" + "".join("  " * i + "- \n" for i in range(depth)) + "  " * depth + "- 1"
    H.READERS["recipe_yaml"](_recipe(f"dataset: {{name: SyntheticDemo}}\nrun: {value}\n"))
    H.READERS["recipe_overrides"](f"run={value}".encode())


def test_a_recipe_nested_1000_deep_is_refused_naming_the_file() -> None:
    refused("recipe_yaml", _recipe("run: " + "[" * 1000 + "]" * 1000 + "\n"), "recipe.yaml")


@pytest.mark.parametrize("value", ["1e400", "-.inf", ".nan", "9" * 5000, "0x" + "f" * 5000, "0o" + "7" * 6000,
                                   ":".join(["59"] * 3000), "2001-13-45", "2001-02-30 25:61:61", "!!binary ===",
                                   "!!int abc", "!!float x", "!!timestamp 2001-99-99", "0b" + "1" * 20000,
                                   "1_000_000_000_000_000_000_000_000"])
def test_huge_and_impossible_numbers_are_bounded(value: str) -> None:
    for key in ("train.batch_size", "optimizer.lr", "model.depth", "scheduler.epochs"):
        section, name = key.split(".")
        H.READERS["recipe_yaml"](_recipe(f"dataset: {{name: SyntheticDemo}}\nmodel: {{num_classes: 12}}\n"
                                         f"{section}: {{{name}: {value}}}\n"))
        H.READERS["recipe_overrides"](f"{key}={value}".encode())


@pytest.mark.parametrize("text", ["", "~", "3", "just text", "[1, 2]", "- a\n- b\n", "---\na: 1\n---\nb: 2\n",
                                  "!!binary aGVsbG8=", "!!set {a, b}", "? [a, b]\n: c\n", "{[a]: b}", "'\\x00'",
                                  "\ufeffdataset: {name: SyntheticDemo}", "\x00\x01\x02", "key: value\tand tab",
                                  "&a [*a]", "&a {b: *a}", "a: &x [*x]", "\xff\xfe\xfd"])
def test_documents_that_are_not_recipes_keep_the_property(text: str) -> None:
    data = text.encode("utf-8", "surrogateescape") if text != "\xff\xfe\xfd" else b"\xff\xfe\xfd"
    H.READERS["recipe_yaml"](data)


@bounded(60)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["model", "dataset", "train", "peft", "name", "root", "num_classes",
                                         "batch_size", "_base_", "task", "lr", "run", "x"]) | st.text(max_size=6),
                        inner, max_size=4), max_leaves=20))
def test_any_yaml_data_as_a_recipe_keeps_the_property(value: Any) -> None:
    import yaml

    H.READERS["recipe_yaml"](yaml.safe_dump(value).encode())


def _write_chain(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_base_cycles_are_refused_naming_the_files() -> None:
    root = H._recipe_folder()
    _write_chain(root, {"sub/cycle_a.yaml": "_base_: cycle_b.yaml\n", "sub/cycle_b.yaml": "_base_: cycle_a.yaml\n"})
    refused("recipe_yaml", b"_base_: cycle_a.yaml\n", "circular _base_ include")
    refused("recipe_yaml", b"_base_: recipe.yaml\n", "circular _base_ include", "recipe.yaml")


def test_a_diamond_chain_of_includes_is_read_once_per_file() -> None:
    """30 files each including the next twice: 2**30 includes without a cache, 60 with it (each file read once);
    more than 64 includes are refused."""
    root = H._recipe_folder()
    files = {f"sub/d{i}.yaml": f"_base_: [d{i + 1}.yaml, d{i + 1}.yaml]\nrun: {{level{i}: {i}}}\n" for i in range(30)}
    files["sub/d30.yaml"] = "model: {name: point_mae, num_classes: 12}\n"
    _write_chain(root, files)
    settings = H.read("recipe_yaml", b"_base_: d0.yaml\ndataset: {name: SyntheticDemo}\n")
    assert settings is not None and settings.raw["run"] == {f"level{i}": i for i in range(30)}
    refused("recipe_yaml", b"_base_: [" + b", ".join([b"d29.yaml"] * 65) + b"]\n", "recipe.yaml",
            "more than 64")


@pytest.mark.parametrize("base", ["../" * 12 + "etc/passwd", "/etc/passwd", "/dev/zero", "/proc/self/environ",
                                  "../" * 12 + "tmp/no_such_recipe.yaml", "/no/such/dir/x.yaml", "secret.txt",
                                  "", 5, [1, 2], {"a": "b"}, [None], "a\0b.yaml", ["../" * 30 + "x.yaml"],
                                  "sub", ".", ".yaml"], ids=repr)
def test_base_paths_outside_or_not_recipes_are_refused_naming_the_recipe(base: Any) -> None:
    import yaml

    root = H._recipe_folder()
    (root / "sub" / "secret.txt").write_text("SECRET-TOKEN-123\n")
    text = yaml.safe_dump({"_base_": base, "dataset": {"name": "SyntheticDemo"}})
    message = refused("recipe_yaml", text.encode(), "recipe.yaml", "_base_")
    assert "SECRET-TOKEN" not in message


def test_a_base_one_folder_up_still_reads_as_the_shipped_recipes_use_it() -> None:
    assert H.read("recipe_yaml", H.seeds("recipe_yaml")[0]) is not None


@bounded(60)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40), max_size=4))
def test_any_override_text_keeps_the_property(items: list[str]) -> None:
    H.READERS["recipe_overrides"]("\n".join(item.replace("\n", " ") for item in items).encode())


# -- the other files these readers open ---------------------------------------------------------------------------
def _npz(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _with_member(data: bytes, name: str, change) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            member = source.read(info.filename)
            target.writestr(info, change(member) if info.filename == name else member)
    return out.getvalue()


def test_npz_weights_that_inflate_or_whose_headers_lie_are_refused_before_allocating(tmp_path: Path) -> None:
    from pcpeft.models.checkpoints import read_checkpoint_file

    genuine = _npz({"w": np.ones((3, 4), np.float32), "b": np.arange(5)})
    cases = {"genuine": genuine, "compressed": _npz({"w": np.random.default_rng(0).random((30, 4))}, True),
             "inflating": _npz({"w": np.zeros(20_000_000, np.float32)}, True),
             "lying header": _with_member(genuine, "w.npy", lambda m: m.replace(b"(3, 4)", b"(9999999999, 4)")),
             "truncated": genuine[: len(genuine) // 2], "object array": _npz({"o": np.array([None, 1], object)})}
    for name, data in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.npz"
        path.write_bytes(data)
        result = H.check_reader("npz", data, lambda: read_checkpoint_file(path), [path.name])
        assert (result is not None) == (name in ("genuine", "compressed")), (name, H.LAST_ERROR)


def test_shapenet_part_text_and_json_files_that_are_not_are_refused_naming_them(tmp_path: Path) -> None:
    from pcpeft.datasets.shapenet_part import CATEGORY_FILE, PARTS_FILE, read_categories, read_part_table

    (tmp_path / CATEGORY_FILE).write_bytes(b"Airplane\t02691156\n\xff\xfe\n")
    H.check_reader("shapenet", b"", lambda: read_categories(tmp_path), [CATEGORY_FILE])
    assert "not a text file" in str(H.LAST_ERROR[0])
    for text in ("[" * 100_000, '{"Airplane": [' + "1" * 10_000 + "]}", "\xff"):
        (tmp_path / PARTS_FILE).write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff" else b"\xff")
        assert H.check_reader("shapenet", b"", lambda: read_part_table(tmp_path), [PARTS_FILE]) is None


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary", b"NAME: [" * 2000, b"NAME: 2001-13-45\n",
                                     b"NAME: ScanObjectNN\nROOT: !!python/object/apply:os.system ['true']\n"],
                         ids=["not text", "nested 2000 deep", "impossible date", "python tag"])
def test_an_official_recipes_data_set_file_that_is_not_yaml_is_refused_naming_the_recipe(content: bytes) -> None:
    folder = H._recipe_folder() / "sub" / "cfgs" / "dataset_configs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "odd.yaml").write_bytes(content)
    official = H.RECIPE_SEEDS[3].replace("ScanObjectNN_objectbg.yaml", "odd.yaml")
    refused("recipe_yaml", official.encode(), "recipe.yaml")


@bounded(40)
@given(mutated("torch_checkpoint"))
def test_training_checkpoints_for_resume_keep_the_property(data: bytes) -> None:
    """``--resume`` reads its checkpoint through the same weights-only loader (one byte ``)`` ended in IndexError)."""
    from pcpeft.engine.runs.training_state import load_training_state

    path = H._folder("resume") / "ckpt-last.pth"
    path.write_bytes(data)
    H.check_reader("resume", data, lambda: load_training_state(path), [path.name])
