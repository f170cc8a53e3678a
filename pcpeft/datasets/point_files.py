"""Reading point cloud files (used by the data sets and by the pictures): .txt/.xyz, .npy, .off (surface-sampled),
.ply and .pcd in every encoding.

PLY: ``ascii``, ``binary_little_endian`` and ``binary_big_endian``; the vertex element may follow other elements
(faces before vertices are skipped, lists included). PCD (v0.5-0.7): ``ascii``, ``binary`` and
``binary_compressed`` (LZF, column-major), with ``COUNT`` > 1 fields and organised clouds whose missing points are
NaN (dropped). Recognised fields: ``x y z``; normals ``nx ny nz`` (PLY) / ``normal_x normal_y normal_z`` (PCD);
colours ``red green blue`` (PLY) / packed ``rgb``/``rgba`` (PCD). Every other scalar field is kept by name for
per-point colouring.

Any bytes give a well-formed :class:`CloudFile` or one :class:`DatasetError` naming the file: every count and size
of a header is checked against the bytes the file holds before anything is allocated, and ``.npy`` files are never
unpickled (``tests/fuzz`` fuzzes every reader; ``tools/fuzz.py`` runs the long coverage-guided searches).
"""
from __future__ import annotations

import io
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError, DatasetFileNotFoundError
from .mesh import read_off, sample_surface

LOG = logging.getLogger("pcpeft")

CLOUD_SUFFIXES = (".txt", ".xyz", ".pts", ".npy", ".off", ".ply", ".pcd")
#: the most bytes an LZF stream can expand to per byte: a 3-byte back reference copies 264 bytes
LZF_MAX_RATIO = 88


@dataclass
class CloudFile:
    """A cloud read from a file.

    points: (N, 3) float32; normals: (N, 3) or None; colors: (N, 3) in [0, 1] or None;
    fields: every scalar per-point field by name (N,), including the ones above (``x``, ``nx``, ...).
    """

    points: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def select(self, index: np.ndarray) -> "CloudFile":
        """The points at ``index`` (indices or a boolean mask), every per-point array alike."""
        return CloudFile(self.points[index], None if self.normals is None else self.normals[index],
                         None if self.colors is None else self.colors[index],
                         {name: values[index] for name, values in self.fields.items()})

    def as_array(self) -> np.ndarray:
        """(N, 3) xyz, or (N, 6) xyz + normals when the file has normals (the datasets' layout)."""
        if self.normals is None:
            return self.points
        return np.concatenate([self.points, self.normals], axis=1).astype(np.float32)


def read_cloud(path: str | Path, mesh_points: int = 4096, mesh_rng: np.random.Generator | None = None,
               nan_points: str = "drop") -> CloudFile:
    """Read any supported cloud file; a mesh (.off) is sampled with ``mesh_points`` area-weighted points drawn
    from ``mesh_rng`` (default: ``default_rng(0)``). Points with a NaN/inf coordinate are dropped (logged) with
    ``nan_points='drop'``, or refused (:class:`DatasetError` naming the file) with ``'error'``. An empty file or
    one without a point is refused."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFileNotFoundError(f"{path}: no such point cloud file")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: empty file (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".ply":
        cloud = _from_fields(read_ply_fields(path), path, normal_names=("nx", "ny", "nz"))
    elif suffix == ".pcd":
        cloud = _from_fields(read_pcd_fields(path), path, normal_names=("normal_x", "normal_y", "normal_z"))
    elif suffix == ".off":
        vertices, faces = read_off(path)
        rng = np.random.default_rng(0) if mesh_rng is None else mesh_rng
        points, normals, _ = sample_surface(vertices, faces, mesh_points, rng, str(path))
        cloud = CloudFile(points.astype(np.float32), normals.astype(np.float32))
    elif suffix == ".npy":
        cloud = _from_columns(read_npy(path), path)
    elif suffix in (".txt", ".xyz", ".pts"):
        cloud = _from_columns(_read_text_columns(path), path)
    else:
        raise DatasetError(f"{path}: unknown point cloud format {suffix!r}; use one of {', '.join(CLOUD_SUFFIXES)}")
    if len(cloud.points) == 0:
        raise DatasetError(f"{path}: the file holds no points")
    if nan_points == "error" and not np.isfinite(cloud.points).all():
        bad = int((~np.isfinite(cloud.points).all(axis=1)).sum())
        raise DatasetError(f"{path}: {bad} of {len(cloud.points)} points have NaN/inf coordinates (set "
                           f"dataset.nan_points: drop to drop them)")
    return _drop_missing(cloud, path)


def load_cloud(path: str | Path) -> np.ndarray:
    """(N, 3) or (N, 6) float32 array of a cloud file (xyz, then normals when the file has them)."""
    return read_cloud(path).as_array()


def _one_line(err: BaseException, limit: int = 200) -> str:
    """An exception's text on one line, at most ``limit`` characters (for a message that quotes it)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_text_columns(path: Path) -> np.ndarray:
    first = next((ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()), "")
    if not first:
        raise DatasetError(f"{path}: the file holds no points (only blank lines)")
    try:
        with warnings.catch_warnings():  # a file of comments only is refused just below, without numpy's warning
            warnings.filterwarnings("ignore", "loadtxt: input contained no data", UserWarning)
            table = np.loadtxt(path, delimiter="," if "," in first else None, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise DatasetError(f"{path}: not a table of numbers ({_one_line(err)})") from None
    if table.size == 0:
        raise DatasetError(f"{path}: the file holds no points (only comments and blank lines)")
    return table


def read_npy(path: str | Path) -> np.ndarray:
    """The array of a ``.npy`` file, never unpickling and never allocating more than the file holds.

    The header is read with numpy's own header reader; its shape times the item size must fit in the bytes after
    the header before anything is allocated, and only plain integer or floating point arrays are accepted.
    """
    path = Path(path)
    raw = path.read_bytes()
    shape, fortran, dtype, offset = _npy_header(raw, path)
    # an empty array may claim any other dimension, but numpy's shapes stop at its index type
    if any(dim < 0 for dim in shape) or len(shape) > 32 or \
            math.prod(dim for dim in shape if dim) > np.iinfo(np.intp).max:
        raise DatasetError(f"{path}: the .npy header has an impossible shape {str(shape)[:80]}")
    if dtype.names is not None or dtype.kind not in "iuf":
        raise DatasetError(f"{path}: the .npy array holds {str(dtype)[:60]} values, not plain integers or floats")
    count = math.prod(shape)
    available = len(raw) - offset
    if count * dtype.itemsize > available:
        raise DatasetError(f"{path}: the .npy header claims shape {shape} of {dtype} ({count * dtype.itemsize} "
                           f"bytes) but the file holds {available} bytes after the header")
    flat = np.frombuffer(raw, dtype, count, offset)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def _npy_header(raw: bytes, path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, data offset) of a ``.npy`` file's bytes, or :class:`DatasetError`."""
    magic = np.lib.format.MAGIC_PREFIX
    if not raw.startswith(magic) or len(raw) < len(magic) + 2:
        raise DatasetError(f"{path}: not a .npy file (no {magic!r} magic at the start)")
    version = (raw[len(magic)], raw[len(magic) + 1])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise DatasetError(f"{path}: unknown .npy format version {version[0]}.{version[1]}")
    # 3.0 differs from 2.0 only in a UTF-8 header, which no plain numeric array needs
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    stream = io.BytesIO(raw)  # reading from bytes already in memory: a lying header length allocates nothing
    stream.seek(len(magic) + 2)
    try:
        with warnings.catch_warnings():  # numpy's parser warns on odd literals and on Python 2 headers
            warnings.simplefilter("ignore")
            shape, fortran, dtype = reader(stream)
    except Exception as err:  # numpy's header parser raises many kinds on a malformed header (tokenize, ast, dtype)
        raise DatasetError(f"{path}: malformed .npy header ({type(err).__name__}: {_one_line(err)})") from None
    return tuple(shape), bool(fortran), dtype, stream.tell()


def _names(names, limit: int = 120) -> str:
    """Names for a message: comma-separated, cut at ``limit`` characters; 'none' when there are none."""
    text = ", ".join(names) or "none"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _from_columns(data: np.ndarray, path: Path) -> CloudFile:
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] < 3 or not np.issubdtype(data.dtype, np.number):
        raise DatasetError(f"{path}: expected rows of at least 3 numbers (x y z ...), got shape {data.shape}")
    with np.errstate(over="ignore"):  # beyond float32: inf, dropped like any non-finite point
        data = data.astype(np.float32)
    fields = {str(i): data[:, i] for i in range(data.shape[1])}
    return CloudFile(data[:, :3], data[:, 3:6] if data.shape[1] >= 6 else None, None, fields)


def _from_fields(fields: dict[str, np.ndarray], path: Path, normal_names: tuple[str, str, str]) -> CloudFile:
    missing = [name for name in "xyz" if name not in fields]
    if missing:
        raise DatasetError(f"{path}: no {'/'.join(missing)} field (fields: {_names(fields)})")
    with np.errstate(over="ignore"):  # beyond float32: inf, dropped like any non-finite point
        points = np.stack([fields[a] for a in "xyz"], axis=1).astype(np.float32)
        normals = None
        if all(name in fields for name in normal_names):
            normals = np.stack([fields[a] for a in normal_names], axis=1).astype(np.float32)
    colors = None
    if all(name in fields for name in ("red", "green", "blue")):
        rgb = np.stack([fields[a] for a in ("red", "green", "blue")], axis=1).astype(np.float64)
        rgb = np.nan_to_num(rgb, nan=0.0, posinf=255.0, neginf=0.0)
        colors = np.clip(rgb / (255.0 if rgb.max(initial=0) > 1.0 else 1.0), 0.0, 1.0)
    return CloudFile(points, normals, colors, fields)


def _drop_missing(cloud: CloudFile, path: Path) -> CloudFile:
    keep = np.isfinite(cloud.points).all(axis=1)
    if not keep.any():
        raise DatasetError(f"{path}: no point with finite coordinates")
    if keep.all():
        return cloud
    LOG.info(f"{path}: dropped {int((~keep).sum())} points with NaN/inf coordinates")
    return cloud.select(keep)


# ----------------------------------------------------------------------------------------------------------- PLY

_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


@dataclass
class _PlyElement:
    name: str
    count: int
    properties: list[tuple[str, str, str | None]]  # (name, value type, list-count type or None)


def _ply_header(raw: bytes, path: Path) -> tuple[str, list[_PlyElement], int]:
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DatasetError(f"{path}: not a PLY file (no 'ply' magic or no end_header)")
    newline = raw.find(b"\n", end)
    if newline < 0:
        raise DatasetError(f"{path}: the PLY header's end_header is not followed by a line end")
    encoding, elements = None, []
    for line in raw[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            encoding = words[1] if len(words) > 1 else None
        elif words[0] == "element":
            elements.append(_ply_element(words, path))
        elif words[0] == "property" and elements:
            elements[-1].properties.append(_ply_property(words, path))
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DatasetError(f"{path}: unknown PLY format {encoding if encoding is None else encoding[:40]!r}")
    return encoding, elements, newline + 1


def _ply_element(words: list[str], path: Path) -> _PlyElement:
    """An ``element NAME COUNT`` header line; the count must be a non-negative integer."""
    if len(words) < 3:
        raise DatasetError(f"{path}: PLY header line {' '.join(words)[:80]!r} is not 'element NAME COUNT'")
    try:
        count = int(words[2])
    except ValueError:
        raise DatasetError(f"{path}: PLY element {words[1][:40]!r} has count {words[2][:40]!r}, not an integer") \
            from None
    if count < 0:
        raise DatasetError(f"{path}: PLY element {words[1][:40]!r} has a negative count {count}")
    return _PlyElement(words[1], count, [])


def _ply_property(words: list[str], path: Path) -> tuple[str, str, str | None]:
    """A ``property TYPE NAME`` or ``property list COUNT_TYPE TYPE NAME`` header line."""
    if words[1:2] == ["list"]:
        if len(words) < 5:
            raise DatasetError(f"{path}: PLY header line {' '.join(words)[:80]!r} is not 'property list COUNT_TYPE "
                               f"TYPE NAME'")
        count_kind = _ply_type(words[2], path)
        if count_kind[0] not in "iu":
            raise DatasetError(f"{path}: PLY list property {words[4][:40]!r} has a non-integer count type {words[2]!r}")
        return words[4], _ply_type(words[3], path), count_kind
    if len(words) < 3:
        raise DatasetError(f"{path}: PLY header line {' '.join(words)[:80]!r} is not 'property TYPE NAME'")
    return words[2], _ply_type(words[1], path), None


def _ply_type(name: str, path: Path) -> str:
    if name not in _PLY_TYPES:
        raise DatasetError(f"{path}: unknown PLY property type {name[:40]!r}")
    return _PLY_TYPES[name]


def read_ply_fields(path: str | Path) -> dict[str, np.ndarray]:
    """The scalar properties of a PLY file's ``vertex`` element, by name, each (N,)."""
    path = Path(path)
    raw = path.read_bytes()
    encoding, elements, offset = _ply_header(raw, path)
    names = [e.name for e in elements]
    if "vertex" not in names:
        raise DatasetError(f"{path}: no vertex element (elements: {_names(names)})")
    if encoding == "ascii":
        return _ply_ascii_vertices(raw[offset:], elements, path)
    order = "<" if encoding == "binary_little_endian" else ">"
    for element in elements:
        if element.name == "vertex":
            return _ply_binary_vertices(raw, offset, element, order, path, first=element is elements[0])
        offset = _skip_binary_element(raw, offset, element, order, path)
    raise AssertionError("unreachable")


def _ply_ascii_vertices(body: bytes, elements: list[_PlyElement], path: Path) -> dict[str, np.ndarray]:
    """The vertex element of an ascii PLY body: one line per element row, elements in header order. Properties
    after a list property are not read (a row's list length varies)."""
    lines = [ln for ln in body.decode("ascii", errors="replace").splitlines() if ln.strip()]
    index = [e.name for e in elements].index("vertex")
    start = sum(e.count for e in elements[:index])
    vertex = elements[index]
    rows = lines[start: start + vertex.count]
    if len(rows) != vertex.count:
        raise DatasetError(f"{path}: header says {vertex.count} vertices, file has {len(rows)} rows")
    scalars = []
    for name, _, count_kind in vertex.properties:
        if count_kind is not None:
            break
        scalars.append(name)
    table = _ascii_table([row.split() for row in rows], len(scalars), path, "vertex")
    return {name: table[:, i] for i, name in enumerate(scalars)}


def _ascii_table(rows: list[list[str]], width: int, path: Path, what: str) -> np.ndarray:
    """(len(rows), width) float64 of rows of tokens (the first ``width`` of each), or :class:`DatasetError`."""
    if not rows:
        return np.empty((0, width))
    try:
        table = np.array([row[:width] for row in rows], dtype=np.float64)
    except ValueError:
        table = None
    if table is None or table.shape != (len(rows), width):
        bad = next((i for i, row in enumerate(rows) if not _numbers(row[:width], width)), 0)
        raise DatasetError(f"{path}: {what} row {bad + 1} ({' '.join(rows[bad])[:60]!r}) does not hold {width} "
                           f"number{'' if width == 1 else 's'}")
    return table


def _numbers(tokens: list[str], width: int) -> bool:
    """Whether ``tokens`` are exactly ``width`` numbers."""
    try:
        return len(tokens) == width and all(isinstance(float(t), float) for t in tokens)
    except ValueError:
        return False


def _ply_binary_vertices(raw: bytes, offset: int, vertex: _PlyElement, order: str, path: Path,
                         first: bool) -> dict[str, np.ndarray]:
    """The scalar properties of a binary vertex element at ``offset``, checked to fit before anything is read."""
    if any(count is not None for _, _, count in vertex.properties):
        raise DatasetError(f"{path}: list properties in the vertex element are not supported")
    if not vertex.properties:
        return {}
    # positional field names: a property name repeated in the header is read like the ascii reader (the last wins)
    dtype = np.dtype([(f"f{i}", order + kind) for i, (_, kind, _) in enumerate(vertex.properties)])
    available = len(raw) - offset
    if dtype.itemsize * vertex.count > available:
        where = "after the header" if first else "after the header and the elements before the vertices"
        raise DatasetError(f"{path}: truncated: the header claims {vertex.count} vertices of {dtype.itemsize} bytes "
                           f"but the file holds {max(available, 0)} bytes {where}")
    table = np.frombuffer(raw, dtype=dtype, count=vertex.count, offset=offset)
    with np.errstate(invalid="ignore"):  # a signalling NaN in the file stays a NaN
        return {name: table[f"f{i}"].astype(np.float64) for i, (name, _, _) in enumerate(vertex.properties)}


def _skip_binary_element(raw: bytes, offset: int, element: _PlyElement, order: str, path: Path) -> int:
    """The offset after a binary element's rows; rows with list properties are walked one by one, never past the
    end of the file."""
    if all(count is None for _, _, count in element.properties):
        offset += element.count * sum(np.dtype(kind).itemsize for _, kind, _ in element.properties)
        if offset > len(raw):
            raise DatasetError(f"{path}: truncated in element {element.name[:40]!r}: the header claims "
                               f"{element.count} rows, more than the file holds")
        return offset
    byteorder = "little" if order == "<" else "big"
    for _ in range(element.count):  # each row moves on by at least one byte (a list's count), so this ends
        for _, kind, count_kind in element.properties:
            if count_kind is None:
                offset += np.dtype(kind).itemsize
                continue
            size = np.dtype(count_kind).itemsize
            if offset + size > len(raw):
                raise DatasetError(f"{path}: truncated in element {element.name[:40]!r}")
            length = int.from_bytes(raw[offset: offset + size], byteorder, signed=count_kind[0] == "i")
            if length < 0:
                raise DatasetError(f"{path}: element {element.name[:40]!r} has a list of negative length {length}")
            offset += size + length * np.dtype(kind).itemsize
        if offset > len(raw):
            raise DatasetError(f"{path}: truncated in element {element.name[:40]!r}")
    return offset


# ----------------------------------------------------------------------------------------------------------- PCD

_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
              ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}


@dataclass
class _PcdLayout:
    columns: list[tuple[str, str, int]]  # (field name, numpy type, COUNT)
    points: int
    encoding: str
    offset: int  # where the data starts

    @property
    def row_bytes(self) -> int:
        """Bytes of one point in the binary encodings."""
        return sum(np.dtype(kind).itemsize * count for _, kind, count in self.columns)

    @property
    def width(self) -> int:
        """Values of one point (a field of COUNT n is n values)."""
        return sum(count for *_, count in self.columns)


def read_pcd_fields(path: str | Path) -> dict[str, np.ndarray]:
    """The per-point fields of a PCD file by name, each (N,); ``rgb``/``rgba`` unpacked to red/green/blue."""
    path = Path(path)
    raw = path.read_bytes()
    layout = _pcd_layout(raw, path)
    if layout.encoding == "ascii":
        blocks = _pcd_ascii_blocks(raw, layout, path)
    elif layout.encoding == "binary":
        blocks = _pcd_binary_blocks(raw, layout, path)
    elif layout.encoding == "binary_compressed":
        blocks = _pcd_compressed_blocks(raw, layout, path)
    else:
        raise DatasetError(f"{path}: unknown PCD DATA encoding {layout.encoding[:40]!r}")
    values = {}
    for name, kind, count in layout.columns:
        block = blocks[name]
        if name in ("rgb", "rgba") and count == 1:  # a packed colour: the bits of a float or an unsigned integer
            values.update(_unpack_rgb(block[:, 0].view(np.uint32) if block.dtype.itemsize == 4 else block[:, 0]))
        else:
            with np.errstate(invalid="ignore"):  # a signalling NaN in the file stays a NaN
                values.update(_name_columns(name, block.astype(np.float64)))
    return values


def _pcd_header(raw: bytes, path: Path) -> tuple[dict[str, list[str]], int]:
    """The header lines up to DATA by upper-case key, and the offset after the DATA line."""
    header, offset = {}, 0
    while "DATA" not in header:
        end = raw.find(b"\n", offset)
        if end < 0:
            raise DatasetError(f"{path}: not a PCD file (no DATA line in the header)")
        line = raw[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            header[key.upper()] = value.split()
    return header, offset


def _pcd_layout(raw: bytes, path: Path) -> _PcdLayout:
    """The fields, point count and encoding of a PCD header, every number checked (counts of at least one, a
    non-negative point count, the same number of FIELDS, SIZE, TYPE and COUNT entries, known types)."""
    header, offset = _pcd_header(raw, path)
    try:
        names = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        kinds = header["TYPE"]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(names))]
        if "POINTS" in header:
            points = int(header["POINTS"][0])
        else:
            points = int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        encoding = header["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as err:
        raise DatasetError(f"{path}: malformed PCD header ({_one_line(repr(err))})") from None
    if not len(names) == len(sizes) == len(kinds) == len(counts):
        raise DatasetError(f"{path}: FIELDS/SIZE/TYPE/COUNT lengths differ")
    if not names:
        raise DatasetError(f"{path}: the PCD header names no FIELDS")
    if points < 0:
        raise DatasetError(f"{path}: the PCD header claims a negative number of points ({points})")
    if points == 0:
        raise DatasetError(f"{path}: the file holds no points (the PCD header claims 0)")
    columns = []
    for name, size, kind, count in zip(names, sizes, kinds, counts):
        if (kind, size) not in _PCD_TYPES:
            raise DatasetError(f"{path}: field {name[:40]!r} has unsupported TYPE {kind[:10]} SIZE {size}")
        if count < 1:
            raise DatasetError(f"{path}: field {name[:40]!r} has COUNT {count}; it must be at least 1")
        columns.append((name, _PCD_TYPES[kind, size], count))
    return _PcdLayout(columns, points, encoding, offset)


def _pcd_ascii_blocks(raw: bytes, layout: _PcdLayout, path: Path) -> dict[str, np.ndarray]:
    """Each field's (points, COUNT) values of an ascii PCD body (one point a line)."""
    points, width = layout.points, layout.width
    lines = [ln for ln in raw[layout.offset:].decode("ascii", errors="replace").splitlines() if ln.strip()]
    if len(lines) < points:
        raise DatasetError(f"{path}: header says {points} points of {width} values; the data is shorter "
                           f"({len(lines)} lines)")
    rows = [ln.split() for ln in lines[:points]]
    if any(len(r) < width for r in rows):
        raise DatasetError(f"{path}: header says {points} points of {width} values; the data is shorter")
    table = _ascii_table(rows, width, path, "point")
    blocks, start = {}, 0
    for name, kind, count in layout.columns:
        if name in ("rgb", "rgba") and count == 1:
            blocks[name] = _ascii_packed_colour([r[start] for r in rows], table[:, start], kind, path)[:, None]
        else:
            blocks[name] = table[:, start: start + count]
        start += count
    return blocks


def _pcd_binary_blocks(raw: bytes, layout: _PcdLayout, path: Path) -> dict[str, np.ndarray]:
    """Each field's (points, COUNT) values of a binary PCD body (row-major), checked to fit before reading."""
    available = len(raw) - layout.offset
    if layout.row_bytes * layout.points > available:
        raise DatasetError(f"{path}: truncated: the header claims {layout.points} points of {layout.row_bytes} "
                           f"bytes but the file holds {available} bytes after the header")
    # positional field names: a name repeated in FIELDS (padding '_' fields) does not collide
    dtype = np.dtype([(f"f{i}", "<" + kind, (count,)) for i, (_, kind, count) in enumerate(layout.columns)])
    table = np.frombuffer(raw, dtype, layout.points, layout.offset)
    return {name: table[f"f{i}"].reshape(layout.points, count) for i, (name, _, count) in enumerate(layout.columns)}


def _pcd_compressed_blocks(raw: bytes, layout: _PcdLayout, path: Path) -> dict[str, np.ndarray]:
    """Each field's (points, COUNT) values of a binary_compressed PCD body: two little-endian uint32 sizes, then
    LZF data that decompresses to the fields one after another (column-major). Both sizes are checked against the
    file and the point count before anything is decompressed."""
    offset, points = layout.offset, layout.points
    if offset + 8 > len(raw):
        raise DatasetError(f"{path}: truncated before the compressed sizes")
    compressed, uncompressed = (int(v) for v in np.frombuffer(raw, "<u4", 2, offset))
    available = len(raw) - offset - 8
    if compressed > available:
        raise DatasetError(f"{path}: the header claims {compressed} compressed bytes but the file holds {available} "
                           f"bytes after the sizes")
    need = layout.row_bytes * points
    if uncompressed < need:
        raise DatasetError(f"{path}: compressed data holds fewer than {points} points ({uncompressed} bytes "
                           f"uncompressed; {points} points of {layout.row_bytes} bytes need {need})")
    data = lzf_decompress(raw[offset + 8: offset + 8 + compressed], uncompressed, path)
    blocks, start = {}, 0
    for name, kind, count in layout.columns:  # column-major: every point's value of one field, then the next field
        blocks[name] = np.frombuffer(data, "<" + kind, count * points, start).reshape(points, count)
        start += np.dtype(kind).itemsize * count * points
    return blocks


def _ascii_packed_colour(tokens: list[str], values: np.ndarray, kind: str, path: Path) -> np.ndarray:
    """A packed rgb column of an ascii PCD: PCL writes the packed integer even when TYPE is F; other writers print
    the float whose bits are the packed colour. A token without '.', 'e' or 'n' (nan/inf) is the integer.
    ``values``: the tokens already parsed as float64."""
    if kind.startswith("f") and any(set(t.lower()) & set(".en") for t in tokens):
        with np.errstate(over="ignore"):
            return np.array(tokens, dtype=np.float32).view(np.uint32)
    if not np.isfinite(values).all() or (values < 0).any() or (values >= 2.0 ** 64).any():
        raise DatasetError(f"{path}: a packed rgb value is not a colour (negative, NaN/inf or beyond 64 bits)")
    return np.trunc(values).astype(np.uint64).astype(np.uint32)


def _name_columns(name: str, block: np.ndarray) -> dict[str, np.ndarray]:
    if block.shape[1] == 1:
        return {name: block[:, 0]}
    return {f"{name}_{i}": block[:, i] for i in range(block.shape[1])}


def _unpack_rgb(packed: np.ndarray) -> dict[str, np.ndarray]:
    if packed.dtype.kind == "f":  # an 8-byte float rgb: its value, not its bits
        packed = np.clip(np.nan_to_num(packed, nan=0.0, posinf=0.0, neginf=0.0), 0, 2 ** 32 - 1)
    packed = packed.astype(np.uint32)
    return {"red": ((packed >> 16) & 255).astype(np.float64), "green": ((packed >> 8) & 255).astype(np.float64),
            "blue": (packed & 255).astype(np.float64)}


def lzf_decompress(data: bytes, size: int, path: Path | str = "<bytes>") -> bytes:
    """Decompress an LZF stream (liblzf's format, as PCL writes ``binary_compressed``) to exactly ``size`` bytes.

    A ``size`` beyond what ``data`` can expand to (:data:`LZF_MAX_RATIO` bytes per byte) is refused before
    anything is allocated."""
    if size < 0 or size > LZF_MAX_RATIO * len(data):
        raise DatasetError(f"{path}: corrupt LZF data: {len(data)} compressed bytes cannot expand to {size} bytes")
    out = bytearray(size)
    i = o = 0
    n = len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            length = ctrl + 1
            if i + length > n or o + length > size:
                raise DatasetError(f"{path}: corrupt LZF data (literal run past the end)")
            out[o: o + length] = data[i: i + length]
            i += length
            o += length
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= n:
                raise DatasetError(f"{path}: corrupt LZF data (back reference cut off)")
            length += data[i]
            i += 1
        if i >= n:
            raise DatasetError(f"{path}: corrupt LZF data (back reference cut off)")
        ref = o - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        length += 2
        if ref < 0 or o + length > size:
            raise DatasetError(f"{path}: corrupt LZF data (back reference out of range)")
        if ref + length <= o:
            out[o: o + length] = out[ref: ref + length]
        else:  # overlapping copy repeats the pattern byte by byte
            for k in range(length):
                out[o + k] = out[ref + k]
        o += length
    if o != size:
        raise DatasetError(f"{path}: LZF data decompressed to {o} bytes, header says {size}")
    return bytes(out)


# --------------------------------------------------------------------------------------------------------- writing

def write_cloud(path: str | Path, points: np.ndarray, ascii: bool = False) -> Path:
    """Write (N, 3) points to ``path`` in the format of its suffix: ``.ply`` (binary little endian, or ascii),
    ``.pcd`` (binary, or ascii), ``.xyz``/``.txt``/``.pts`` (space-separated rows) or ``.npy``. Returns ``path``."""
    path = Path(path)
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"write_cloud expects points of shape (N, 3), got {points.shape}")
    suffix = path.suffix.lower()
    count = len(points)
    if suffix == ".ply":
        header = (f"ply\nformat {'ascii' if ascii else 'binary_little_endian'} 1.0\nelement vertex {count}\n"
                  "property float x\nproperty float y\nproperty float z\nend_header\n").encode()
        body = "".join(f"{x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in points).encode() if ascii \
            else points.astype("<f4").tobytes()
        path.write_bytes(header + body)
    elif suffix == ".pcd":
        header = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {count}\n"
                  f"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {count}\nDATA {'ascii' if ascii else 'binary'}\n")
        body = "".join(f"{x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in points).encode() if ascii \
            else points.astype("<f4").tobytes()
        path.write_bytes(header.encode() + body)
    elif suffix in (".xyz", ".txt", ".pts"):
        np.savetxt(path, points, fmt="%.9g")
    elif suffix == ".npy":
        with open(path, "wb") as handle:  # np.save(path) would append .npy to another suffix
            np.save(handle, points)
    else:
        raise ValueError(f"{path}: write_cloud writes .ply, .pcd, .xyz/.txt/.pts or .npy, not {suffix!r}")
    return path
