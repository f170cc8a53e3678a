"""Bounded fuzzing of the point-file readers inside the suite, the replay of every saved finding, and the explicit
refusals of files whose headers claim far more than they hold.

The promise (checked by ``harnesses.check``): any bytes read as a .ply, .pcd, .off, .xyz or .npy file give a
well-formed cloud or one ``DatasetError`` naming the file, in bounded time and memory. The long coverage-guided
runs are ``tools/fuzz.py``; every finding of theirs is a file under ``regressions/<reader>/``, replayed here.
"""
from __future__ import annotations

import itertools
import resource
import struct
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pcpeft.datasets import point_files  # noqa: E402
from pcpeft.datasets.errors import DatasetError  # noqa: E402
from pcpeft.viz import cloud_io  # noqa: E402
from tests.fuzz import harnesses  # noqa: E402

REGRESSIONS = Path(__file__).parent / "regressions"
ROOT = Path(__file__).resolve().parents[2]
#: seed files of each reader (without the shared meshes, which the suite may not have)
SEEDS = {reader: list(harnesses.seed_corpus(reader).values()) for reader in harnesses.READERS}
#: inputs per reader: hypothesis examples and plain seeded mutants
HYPOTHESIS_EXAMPLES = 300
MUTANTS = 3000
#: how much the process's peak resident memory may grow while fuzzing one reader
RSS_GROWTH_LIMIT = 256 * 2 ** 20
#: the real meshes read whole in the suite (the largest take seconds)
REAL_MESH_BYTES = 600_000
#: refusing a file whose header lies must take no longer than this, and allocate no more than this
FAST_SECONDS = 0.5
SMALL_PEAK = 2 ** 20


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@st.composite
def mutants(draw, reader: str) -> bytes:
    """A seed of ``reader`` with 1-4 mutations (bit flips, insertions, deletions, cuts, numbers and words of the
    header swapped for extreme ones, packed integers, splices), every choice drawn from hypothesis; or raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=512))
    seeds = SEEDS[reader]
    data = seeds[draw(st.integers(0, len(seeds) - 1))]
    choices = (draw(st.integers(0, 2 ** 30)) for _ in itertools.count())
    for _ in range(draw(st.integers(1, 4))):
        data = harnesses.mutate(data, choices, seeds)
    return data


def fuzz_settings(examples: int) -> settings:
    """Deterministic, bounded hypothesis settings that write nothing into the checkout."""
    return settings(max_examples=examples, derandomize=True, deadline=timedelta(seconds=2), database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("reader", harnesses.READERS)
def test_seed_files_read_to_well_formed_clouds(reader):
    for data in SEEDS[reader]:
        assert harnesses.check(reader, data) is not None


@pytest.mark.parametrize("reader", harnesses.READERS)
def test_mutants_of_the_seed_files_read_or_are_refused_naming_the_file(reader):
    rss_before = peak_rss()

    @fuzz_settings(HYPOTHESIS_EXAMPLES)
    @given(data=mutants(reader))
    def one(data: bytes) -> None:
        harnesses.bounded(reader, data, seconds=5)
        assert peak_rss() - rss_before <= RSS_GROWTH_LIMIT, "one input made the process grow by hundreds of MiB"

    one()
    for data in harnesses.mutated_inputs(SEEDS[reader], MUTANTS, seed=sum(map(ord, reader))):
        harnesses.bounded(reader, data, seconds=5)
    assert peak_rss() - rss_before <= RSS_GROWTH_LIMIT


def regression_files() -> list[Path]:
    return sorted(path for path in REGRESSIONS.glob("*/*") if path.parent.name in harnesses.READERS)


@pytest.mark.parametrize("path", regression_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_findings_read_or_are_refused_in_bounded_time_and_memory(path):
    harnesses.bounded(path.parent.name, path.read_bytes(), seconds=2, trace_memory=True)


def test_every_reader_has_saved_findings():
    assert {path.parent.name for path in regression_files()} == set(harnesses.READERS)


def test_the_real_meshes_read_and_their_mutants_are_refused_or_read(shared_dir):
    meshes = sorted((shared_dir / harnesses.MESH_SAMPLES).rglob("*.off"))
    assert meshes, f"no .off files under {shared_dir / harnesses.MESH_SAMPLES}"
    readable = [path.read_bytes() for path in meshes if path.stat().st_size <= REAL_MESH_BYTES]
    assert len(readable) >= 5 and all(harnesses.check("off", data) is not None for data in readable)
    seeds = list(harnesses.seed_corpus("off", shared_dir).values())
    for data in harnesses.mutated_inputs(seeds, 300, seed=3):
        harnesses.bounded("off", data, seconds=5)


# --------------------------------------------------------------------------------------- headers that claim too much

def _ply(count: int | str, encoding: str = "binary_little_endian", body: bytes = b"\0" * 120) -> bytes:
    return (f"ply\nformat {encoding} 1.0\nelement vertex {count}\nproperty float x\nproperty float y\n"
            f"property float z\nend_header\n").encode() + body


def _pcd(points: int | str, encoding: str, body: bytes) -> bytes:
    return (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {points}\nHEIGHT 1\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA {encoding}\n").encode() + body


def _npy(shape: str, body: bytes = b"\0" * 36, descr: str = "<f4") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


_LITERAL = bytes([31]) + bytes(32) + bytes([3]) + bytes(4)  # 36 zero bytes as two LZF literal runs

LIARS = {
    "ply-binary-1e12-vertices": (".ply", _ply(10 ** 12), "claims 1000000000000 vertices of 12 bytes"),
    "ply-ascii-1e12-vertices": (".ply", _ply(10 ** 12, "ascii", b"0 1 2\n" * 3), "1000000000000 vertices"),
    "ply-negative-vertices": (".ply", _ply(-5), "negative count -5"),
    "ply-nan-vertices": (".ply", _ply("nan"), "count 'nan'"),
    "ply-ends-mid-record": (".ply", _ply(3, body=b"\0" * 30), "claims 3 vertices of 12 bytes"),
    "pcd-binary-1e12-points": (".pcd", _pcd(10 ** 12, "binary", b"\0" * 36), "claims 1000000000000 points"),
    "pcd-ascii-1e12-points": (".pcd", _pcd(10 ** 12, "ascii", b"0 1 2\n"), "1000000000000 points"),
    "pcd-compressed-1e12-points": (".pcd", _pcd(10 ** 12, "binary_compressed", struct.pack("<II", 38, 36) + _LITERAL),
                                   "fewer than 1000000000000 points"),
    "pcd-compressed-size-lies": (".pcd", _pcd(3, "binary_compressed", struct.pack("<II", 2 ** 32 - 1, 36) + _LITERAL),
                                 "claims 4294967295 compressed bytes"),
    "pcd-uncompressed-size-lies": (".pcd", _pcd(3, "binary_compressed", struct.pack("<II", 38, 2 ** 32 - 1)
                                                + _LITERAL), "cannot expand to 4294967295 bytes"),
    "pcd-negative-points": (".pcd", _pcd(-3, "binary", b"\0" * 36), "negative number of points"),
    "pcd-nan-points": (".pcd", _pcd("nan", "binary", b"\0" * 36), "malformed PCD header"),
    "npy-1e12-rows": (".npy", _npy("(1000000000000, 3)"), "claims shape (1000000000000, 3)"),
    "npy-48GiB": (".npy", _npy("(4294967296, 3)"), "51539607552 bytes"),
    "npy-negative-shape": (".npy", _npy("(-3, 3)"), "impossible shape"),
    "npy-nan-shape": (".npy", _npy("(nan, 3)"), "malformed .npy header"),
    "npy-object-dtype": (".npy", _npy("(3, 3)", descr="|O"), "holds object values"),
    "npy-ends-mid-record": (".npy", _npy("(3, 3)", b"\0" * 30), "file holds 30 bytes after the header"),
    "off-1e12-vertices": (".off", b"OFF\n1000000000000 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "1000000000000 vertices"),
    "off-negative-counts": (".off", b"OFF\n-3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "negative OFF counts"),
    "off-ends-mid-face": (".off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1", "announces 3 vertices but lists 2"),
}


@pytest.mark.parametrize("name", LIARS)
def test_a_header_that_claims_more_than_the_file_holds_is_refused_fast_and_small(tmp_path, name):
    suffix, data, message = LIARS[name]
    path = tmp_path / f"liar{suffix}"
    path.write_bytes(data)
    started = time.perf_counter()
    with harnesses.peak_memory_limit(SMALL_PEAK):
        with pytest.raises(DatasetError) as err:
            point_files.read_cloud(path)
    assert time.perf_counter() - started < FAST_SECONDS
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_lzf_refuses_a_size_its_input_cannot_expand_to_before_allocating():
    with harnesses.peak_memory_limit(SMALL_PEAK):
        with pytest.raises(DatasetError, match="cannot expand to 4294967295 bytes"):
            point_files.lzf_decompress(b"\x00a", 2 ** 32 - 1, "x.pcd")
    assert point_files.lzf_decompress(bytes([0, 97, 0xE0, 255 - 7 + 7, 0]), 1 + 264) == b"a" * 265  # the 88x bound


def test_npy_keeps_reading_every_layout(tmp_path):
    table = np.arange(18, dtype=np.float64).reshape(6, 3)
    for name, array in {"c": table, "fortran": np.asfortranarray(table), "big": table.astype(">f4"),
                        "int": table.astype(np.int32)}.items():
        np.save(tmp_path / f"{name}.npy", array)
        np.testing.assert_array_equal(point_files.read_cloud(tmp_path / f"{name}.npy").points, table.astype(np.float32))


def test_pcd_with_a_repeated_padding_field_reads(tmp_path):
    header = _pcd(2, "binary", b"").replace(b"FIELDS x y z", b"FIELDS x y z _").replace(b"SIZE 4 4 4", b"SIZE 4 4 4 4")
    header = header.replace(b"TYPE F F F", b"TYPE F F F F").replace(b"COUNT 1 1 1", b"COUNT 1 1 1 1")
    header = header.replace(b"FIELDS x y z _", b"FIELDS x _ y z _").replace(b"SIZE 4 4 4 4", b"SIZE 4 4 4 4 4")
    header = header.replace(b"TYPE F F F F", b"TYPE F F F F F").replace(b"COUNT 1 1 1 1", b"COUNT 1 1 1 1 1")
    rows = np.array([[1, 9, 2, 3, 9], [4, 9, 5, 6, 9]], "<f4")
    (tmp_path / "pad.pcd").write_bytes(header + rows.tobytes())
    np.testing.assert_array_equal(point_files.read_cloud(tmp_path / "pad.pcd").points, [[1, 2, 3], [4, 5, 6]])


def test_viz_reads_clouds_with_the_same_readers():
    for name in ("read_cloud", "load_cloud", "read_ply_fields", "read_pcd_fields", "lzf_decompress", "CloudFile"):
        assert getattr(cloud_io, name) is getattr(point_files, name)


def test_fuzz_tool_has_help_on_every_argument():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz.py"), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for argument in ("READER", "--seconds", "--corpus", "--crashes", "--timeout", "--memory-mb", "--max-len",
                     "--seed", "--keep", "--shared"):
        assert argument in out.stdout
    assert "ply, pcd, off, xyz, npy" in out.stdout
