"""Fuzz harnesses of the point-file readers, shared by the suite (hypothesis, regression replay) and by
``tools/fuzz.py`` (atheris).

Each harness (:func:`ply`, :func:`pcd`, :func:`off`, :func:`xyz`, :func:`npy`) writes its bytes to a file of the
reader's suffix in one temporary folder per process, reads it with :func:`pcpeft.datasets.point_files.read_cloud`
(what the data sets and ``pcpeft viz cloud`` use) and checks the readers' promise: a well-formed cloud (finite
float32 points of shape (N, 3), N >= 1, and optional fields of N rows), or one :class:`DatasetError` whose one-line
message names the file. Any other exception propagates: it is a finding. :func:`bounded` adds the time and memory
bounds under which a hang or a huge allocation is a finding too.
"""
from __future__ import annotations

import atexit
import contextlib
import io
import os
import random
import re
import resource
import shutil
import signal
import struct
import tempfile
import tracemalloc
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pcpeft.datasets.errors import DatasetError
from pcpeft.datasets.point_files import CloudFile, read_cloud, write_cloud

TESTS = Path(__file__).resolve().parents[1]

#: reader name -> the suffix its inputs are written with
SUFFIXES = {"ply": ".ply", "pcd": ".pcd", "off": ".off", "xyz": ".xyz", "npy": ".npy"}
READERS = tuple(SUFFIXES)
#: points sampled from a fuzzed mesh (few: the sampling is not what is fuzzed)
MESH_POINTS = 64
#: the shared folder's real ModelNet meshes
MESH_SAMPLES = "data/modelnet_off_samples"
#: a real mesh larger than this enters the corpus cut down to its first vertices and the faces among them
SEED_MESH_BYTES = 16_000

_TEMP: list[Path] = []


class PropertyViolation(AssertionError):
    """A reader broke its promise on one input (a malformed result, or an error that does not name the file)."""


class InputTimeout(PropertyViolation):
    """One input took longer than the time bound."""


# ------------------------------------------------------------------------------------------------------ harnesses

def temp_dir() -> Path:
    """This process's one temporary folder for harness inputs (removed at exit)."""
    if not _TEMP:
        folder = Path(tempfile.mkdtemp(prefix="pcpeft-fuzz-"))
        atexit.register(shutil.rmtree, folder, True)
        _TEMP.append(folder)
    return _TEMP[0]


def check(reader: str, data: bytes) -> CloudFile | None:
    """Write ``data`` as the input of ``reader``, read it, and check the promise. Returns the cloud, or None when
    the file was refused with a proper :class:`DatasetError`."""
    path = temp_dir() / f"input{SUFFIXES[reader]}"
    overwrite(path, data)
    try:
        cloud = read_cloud(path, mesh_points=MESH_POINTS)
    except DatasetError as err:
        check_error(err, path)
        return None
    check_cloud(cloud, path)
    return cloud


def ply(data: bytes) -> CloudFile | None:
    """Harness of the PLY reader (ascii, binary little and big endian)."""
    return check("ply", data)


def pcd(data: bytes) -> CloudFile | None:
    """Harness of the PCD reader (ascii, binary, binary_compressed)."""
    return check("pcd", data)


def off(data: bytes) -> CloudFile | None:
    """Harness of the OFF mesh reader and its surface sampling."""
    return check("off", data)


def xyz(data: bytes) -> CloudFile | None:
    """Harness of the text-column reader (.xyz/.txt/.pts)."""
    return check("xyz", data)


def npy(data: bytes) -> CloudFile | None:
    """Harness of the .npy reader."""
    return check("npy", data)


def overwrite(path: Path, data: bytes) -> None:
    """Put ``data`` in ``path``, reusing the file: written over, then cut to length (opening with O_TRUNC costs
    milliseconds on some file systems, more than reading the input)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
        os.ftruncate(handle, len(data))
    finally:
        os.close(handle)


HARNESSES: dict[str, Callable[[bytes], CloudFile | None]] = {"ply": ply, "pcd": pcd, "off": off, "xyz": xyz,
                                                              "npy": npy}


def check_error(err: DatasetError, path: Path) -> None:
    """A refusal must name the file in a one-line message."""
    message = str(err)
    if str(path) not in message:
        raise PropertyViolation(f"the error does not name the file: {message!r}") from err
    if "\n" in message:
        raise PropertyViolation(f"the error is not one line: {message!r}") from err


def check_cloud(cloud: CloudFile, path: Path) -> None:
    """The shape and type promise of :class:`CloudFile` (points, normals, colours, fields, :meth:`as_array`)."""
    points = cloud.points
    _expect(isinstance(points, np.ndarray) and points.dtype == np.float32, f"points are {type(points)}", path)
    _expect(points.ndim == 2 and points.shape[1] == 3 and len(points) >= 1, f"points of shape {points.shape}", path)
    _expect(bool(np.isfinite(points).all()), "points with NaN/inf coordinates", path)
    n = len(points)
    if cloud.normals is not None:
        _expect(cloud.normals.shape == (n, 3) and cloud.normals.dtype == np.float32,
                f"normals of shape {cloud.normals.shape} and type {cloud.normals.dtype}", path)
    if cloud.colors is not None:
        colors = cloud.colors
        _expect(colors.shape == (n, 3), f"colours of shape {colors.shape}", path)
        _expect(bool(np.isfinite(colors).all() and (colors >= 0).all() and (colors <= 1).all()),
                "colours outside [0, 1]", path)
    for name, values in cloud.fields.items():
        _expect(isinstance(name, str) and values.shape == (n,), f"field {name!r} of shape {values.shape}", path)
    array = cloud.as_array()
    _expect(array.dtype == np.float32 and array.shape in ((n, 3), (n, 6)), f"as_array() of shape {array.shape}",
            path)


def _expect(condition: bool, what: str, path: Path) -> None:
    if not condition:
        raise PropertyViolation(f"{path}: malformed result: {what}")


# --------------------------------------------------------------------------------------------------------- bounds

@contextlib.contextmanager
def time_limit(seconds: float, error: type[BaseException] = InputTimeout) -> Iterator[None]:
    """Raise ``error`` (:class:`InputTimeout`) in the body once ``seconds`` have passed (SIGALRM; main thread, POSIX
    only); the previous handler is restored."""
    def alarm(signum, frame):
        raise error(f"one input ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)  # None: set outside Python


@contextlib.contextmanager
def peak_memory_limit(limit_bytes: int) -> Iterator[None]:
    """Fail with :class:`PropertyViolation` when the traced allocations (Python and numpy) of the body peak above
    ``limit_bytes``. Slow (tracemalloc): for single inputs, not for fuzz loops."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
    if peak > limit_bytes:
        raise PropertyViolation(f"one input allocated {peak} bytes at its peak, more than {limit_bytes}")


def memory_allowance(data: bytes) -> int:
    """The most a reader may allocate for one input: a fixed part plus a constant factor of the file's size (an
    LZF stream expands at most 88-fold; text parses into Python objects of tens of bytes a token)."""
    return 16 * 2 ** 20 + 400 * len(data)


def limit_address_space(headroom_bytes: int) -> int:
    """Cap this process's address space at its current size plus ``headroom_bytes`` (RLIMIT_AS), so a huge
    allocation fails as a MemoryError instead of succeeding. Returns the limit set. Linux only."""
    with open("/proc/self/statm") as handle:
        current = int(handle.read().split()[0]) * resource.getpagesize()
    limit = current + headroom_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def bounded(reader: str, data: bytes, seconds: float = 2.0, trace_memory: bool = False) -> CloudFile | None:
    """:func:`check` under a time bound, and under a traced peak-memory bound with ``trace_memory``."""
    with time_limit(seconds):
        if not trace_memory:
            return check(reader, data)
        with peak_memory_limit(memory_allowance(data)):
            return check(reader, data)


# ---------------------------------------------------------------------------------------------------------- seeds

def seed_corpus(reader: str, shared: Path | None = None) -> dict[str, bytes]:
    """Valid files of ``reader``'s format by name: what the tests write (``write_cloud`` ascii and binary, the
    PLY and PCD writers of ``tests/report/test_viz_io.py`` in every encoding, the OFF meshes of
    ``tests/folder_data.py``) and, for OFF, the real meshes under ``shared``'s ModelNet samples (cut down when
    large)."""
    return {"ply": _ply_seeds, "pcd": _pcd_seeds, "off": lambda: _off_seeds(shared), "xyz": _xyz_seeds,
            "npy": _npy_seeds}[reader]()


def _cloud(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def _written(suffix: str, points: np.ndarray, ascii_: bool = False) -> bytes:
    path = temp_dir() / f"seed{suffix}"
    write_cloud(path, points, ascii=ascii_)
    return path.read_bytes()


def _ply_seeds() -> dict[str, bytes]:
    from tests.report.test_viz_io import ply_bytes

    seeds = {f"write_cloud-{mode}-{n}.ply": _written(".ply", _cloud(n), mode == "ascii")
             for mode in ("ascii", "binary") for n in (1, 7)}
    for encoding in ("ascii", "binary_little_endian", "binary_big_endian"):
        for faces_first in (False, True):
            seeds[f"viz_io-{encoding}-{'faces_first' if faces_first else 'vertices_first'}.ply"] = \
                ply_bytes(encoding, faces_first)
    return seeds


def _pcd_seeds() -> dict[str, bytes]:
    from tests.report.test_viz_io import pcd_bytes

    seeds = {f"write_cloud-{mode}-{n}.pcd": _written(".pcd", _cloud(n), mode == "ascii")
             for mode in ("ascii", "binary") for n in (1, 7)}
    for encoding in ("ascii", "binary", "binary_compressed"):
        seeds[f"viz_io-{encoding}.pcd"] = pcd_bytes(encoding)
        seeds[f"viz_io-{encoding}-3.pcd"] = pcd_bytes(encoding, _cloud(3, 1))
    return seeds


def _off_seeds(shared: Path | None) -> dict[str, bytes]:
    from tests.folder_data import write_off_mesh

    seeds = {}
    for label in range(3):
        path = write_off_mesh(temp_dir() / "seed.off", label, np.random.default_rng(label))
        seeds[f"folder_data-{label}.off"] = path.read_bytes()
    seeds["counts-on-first-line.off"] = b"OFF4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n4 0 1 3 2\n"
    samples = shared / MESH_SAMPLES if shared is not None else None
    if samples is not None and samples.is_dir():
        for mesh in sorted(samples.rglob("*.off")):
            raw = mesh.read_bytes()
            seeds[f"modelnet-{mesh.stem}.off"] = raw if len(raw) <= SEED_MESH_BYTES else _cut_mesh(raw)
    return seeds


def _cut_mesh(raw: bytes, vertices: int = 40) -> bytes:
    """A large OFF mesh cut down to its first ``vertices`` vertices and the faces among them, keeping its header
    style (counts on the OFF line or on the next one)."""
    lines = raw.decode("ascii", errors="replace").splitlines()
    inline = lines[0].strip() != "OFF"
    counts = (lines[0][3:] if inline else lines[1]).split()
    n_vertices, body = int(counts[0]), lines[1 if inline else 2:]
    keep = min(vertices, n_vertices)
    faces = [ln for ln in body[n_vertices:] if ln.split() and all(int(i) < keep for i in ln.split()[1:])]
    header = [f"OFF{keep} {len(faces)} 0"] if inline else ["OFF", f"{keep} {len(faces)} 0"]
    return ("\n".join(header + body[:keep] + faces) + "\n").encode()


def _xyz_seeds() -> dict[str, bytes]:
    seeds = {f"write_cloud-{n}.xyz": _written(".xyz", _cloud(n)) for n in (1, 7)}
    table = np.concatenate([_cloud(5), _cloud(5, 1)], axis=1)
    text = io.StringIO()
    np.savetxt(text, table, delimiter=",")  # ModelNet40's resampled layout, as tests/report/test_viz_io.py writes it
    seeds["modelnet-comma-6.txt"] = text.getvalue().encode()
    seeds["comment-and-blank.xyz"] = b"# x y z\n\n1 2 3\n4 5 6\n"
    return seeds


def _npy_seeds() -> dict[str, bytes]:
    seeds = {f"write_cloud-{n}.npy": _written(".npy", _cloud(n)) for n in (1, 7)}
    for name, array in {"float64-6": np.concatenate([_cloud(4), _cloud(4, 1)], axis=1).astype(np.float64),
                        "fortran": np.asfortranarray(_cloud(5)), "int16": np.arange(12, dtype=np.int16).reshape(4, 3),
                        "big-endian": _cloud(3).astype(">f4")}.items():
        handle = io.BytesIO()
        np.save(handle, array)
        seeds[f"{name}.npy"] = handle.getvalue()
    return seeds


# ----------------------------------------------------------------------------------------------------- dictionary

#: words of each format that a byte mutator rarely spells by chance (libFuzzer's -dict)
KEYWORDS = {
    "ply": ("ply", "format ", "ascii", "binary_little_endian", "binary_big_endian", "element ", "vertex", "face",
            "property ", "list ", "uchar", "char", "short", "ushort", "int", "uint", "float", "double", "int8",
            "uint8", "float32", "float64", "comment", "obj_info", "end_header", " nx", " red", " x", " y", " z"),
    "pcd": ("# .PCD v0.7", "VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS",
            "DATA", "ascii", "binary", "binary_compressed", "rgb", "rgba", "normal_x", " F", " U", " I", " 8", " 4"),
    "off": ("OFF", "#", " 3 ", " 4 ", "nan", "1e308"),
    "xyz": (",", "#", "nan", "inf", "1e308", "\t"),
    "npy": ("\x93NUMPY", "{'descr': ", "'fortran_order': ", "'shape': ", "True", "False", "'<f4'", "'<f8'", "'>f4'",
            "'<i8'", "'|u1'", "'<c8'", "'|O'", "'|b1'", "'<M8'", "'<m8'", "[('x', '<f4')]", "(3,)", "()", ", }"),
}


def libfuzzer_dictionary(reader: str) -> str:
    """The keywords of ``reader``'s format as a libFuzzer dictionary (one quoted string a line)."""
    lines = []
    for word in KEYWORDS[reader]:
        raw = word.encode("latin-1").decode("unicode_escape").encode("latin-1")
        lines.append('"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in raw)
                     + '"')
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------- mutation

#: numbers a mutation puts in place of a number of a header or a row
INTERESTING_NUMBERS = (b"-1", b"0", b"1", b"3", b"255", b"65536", b"2147483648", b"4294967295", b"1000000000000",
                       b"99999999999999999999", b"-99999999999999999999", b"nan", b"inf", b"-inf", b"1e309",
                       b"1e-320", b"0x10", b"1.5", b"")
#: whole header words a mutation swaps in
INTERESTING_WORDS = (b"ascii", b"binary", b"binary_compressed", b"binary_big_endian", b"binary_little_endian",
                     b"list", b"uchar", b"int", b"double", b"char", b"vertex", b"face", b"rgb", b"x", b"F", b"U",
                     b"I", b"end_header", b"\n", b"OFF", b"'<f4'", b"'|O'", b"True", b"(1000000000000, 3)", b"()")
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:e-?\d+)?")
_WORD = re.compile(rb"[A-Za-z_]+")
_PACK = ("<I", ">I", "<i", "<H", "<f", "<d")


def mutate(data: bytes, choices: Iterator[int], seeds: list[bytes]) -> bytes:
    """One mutation of ``data`` chosen by the integers of ``choices`` (any source of non-negative integers: a
    random generator or hypothesis' draws), so the same choices give the same mutation."""
    op = next(choices) % 9
    at = next(choices) % (len(data) + 1)
    if op == 0 and data:  # flip one bit
        at = min(at, len(data) - 1)
        return data[:at] + bytes([data[at] ^ (1 << next(choices) % 8)]) + data[at + 1:]
    if op == 1:  # insert a few bytes
        return data[:at] + bytes(next(choices) % 256 for _ in range(1 + next(choices) % 8)) + data[at:]
    if op == 2:  # delete a range
        return data[:at] + data[at + 1 + next(choices) % 64:]
    if op == 3:  # truncate
        return data[:at]
    if op == 4:  # a number token replaced by an interesting number
        return _replace_token(data, _NUMBER, INTERESTING_NUMBERS, choices)
    if op == 5:  # a word replaced by an interesting word
        return _replace_token(data, _WORD, INTERESTING_WORDS, choices)
    if op == 6:  # bytes overwritten by a packed interesting integer or float
        fmt = _PACK[next(choices) % len(_PACK)]
        packed = struct.pack(fmt, _packable([0, 1, 2 ** 31 - 1, 2 ** 32 - 1, 10 ** 9][next(choices) % 5], fmt))
        return data[:at] + packed + data[at + len(packed):]
    if op == 7:  # duplicate a range (rows longer than the header says)
        end = min(len(data), at + 1 + next(choices) % 256)
        return data[:end] + data[at:end] + data[end:]
    other = seeds[next(choices) % len(seeds)] if seeds else data  # splice: the start of one file, the end of another
    return data[:at] + other[next(choices) % (len(other) + 1):]


def _packable(value: int, fmt: str) -> int | float:
    """``value`` wrapped into the range of the struct format ``fmt`` (floats take it as it is)."""
    if fmt[-1] in "fd":
        return float(value)
    bits = 8 * struct.calcsize(fmt)
    value %= 2 ** bits
    if fmt[-1].islower() and value >= 2 ** (bits - 1):  # a signed format: two's complement
        value -= 2 ** bits
    return value


def _replace_token(data: bytes, pattern: re.Pattern, values: tuple[bytes, ...], choices: Iterator[int]) -> bytes:
    tokens = list(pattern.finditer(data[:4096]))
    if not tokens:
        return data
    token = tokens[next(choices) % len(tokens)]
    return data[:token.start()] + values[next(choices) % len(values)] + data[token.end():]


def random_choices(rng: random.Random) -> Iterator[int]:
    """An endless stream of choices for :func:`mutate` from ``rng``."""
    while True:
        yield rng.getrandbits(30)


def mutated_inputs(seeds: list[bytes], count: int, seed: int = 0, max_mutations: int = 4) -> Iterator[bytes]:
    """``count`` deterministic mutants of ``seeds`` (each 1 to ``max_mutations`` mutations of one seed)."""
    rng = random.Random(seed)
    choices = random_choices(rng)
    for _ in range(count):
        data = seeds[rng.randrange(len(seeds))]
        for _ in range(1 + rng.randrange(max_mutations)):
            data = mutate(data, choices, seeds)
        yield data


def default_shared() -> Path | None:
    """``../shared`` beside the checkout (as ``tests/conftest.py`` finds it), or None without it."""
    shared = TESTS.parents[1] / "shared"
    return shared if shared.is_dir() else None
