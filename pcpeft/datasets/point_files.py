"""Reading point cloud files (used by the data sets and by the pictures): .txt/.xyz, .npy, .off (surface-sampled), .ply and .pcd in every encoding.

PLY: ``ascii``, ``binary_little_endian`` and ``binary_big_endian``; the vertex element may follow other elements
(faces before vertices are skipped, lists included). PCD (v0.5-0.7): ``ascii``, ``binary`` and
``binary_compressed`` (LZF, column-major), with ``COUNT`` > 1 fields and organised clouds whose missing points are
NaN (dropped). Recognised fields: ``x y z``; normals ``nx ny nz`` (PLY) / ``normal_x normal_y normal_z`` (PCD);
colours ``red green blue`` (PLY) / packed ``rgb``/``rgba`` (PCD). Every other scalar field is kept by name for
per-point colouring.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError, DatasetFileNotFoundError
from .mesh import read_off, sample_surface

LOG = logging.getLogger("pcpeft")

CLOUD_SUFFIXES = (".txt", ".xyz", ".pts", ".npy", ".off", ".ply", ".pcd")


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
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DatasetError(f"{path}: not a readable .npy array ({err})") from None
        cloud = _from_columns(data, path)
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


def _read_text_columns(path: Path) -> np.ndarray:
    first = next((ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()), "")
    if not first:
        raise DatasetError(f"{path}: the file holds no points (only blank lines)")
    try:
        return np.loadtxt(path, delimiter="," if "," in first else None, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise DatasetError(f"{path}: not a table of numbers ({err})") from None


def _from_columns(data: np.ndarray, path: Path) -> CloudFile:
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] < 3 or not np.issubdtype(data.dtype, np.number):
        raise DatasetError(f"{path}: expected rows of at least 3 numbers (x y z ...), got shape {data.shape}")
    data = data.astype(np.float32)
    fields = {str(i): data[:, i] for i in range(data.shape[1])}
    return CloudFile(data[:, :3], data[:, 3:6] if data.shape[1] >= 6 else None, None, fields)


def _from_fields(fields: dict[str, np.ndarray], path: Path, normal_names: tuple[str, str, str]) -> CloudFile:
    missing = [name for name in "xyz" if name not in fields]
    if missing:
        raise DatasetError(f"{path}: no {'/'.join(missing)} field (fields: {', '.join(fields) or 'none'})")
    points = np.stack([fields[a] for a in "xyz"], axis=1).astype(np.float32)
    normals = None
    if all(name in fields for name in normal_names):
        normals = np.stack([fields[a] for a in normal_names], axis=1).astype(np.float32)
    colors = None
    if all(name in fields for name in ("red", "green", "blue")):
        rgb = np.stack([fields[a] for a in ("red", "green", "blue")], axis=1).astype(np.float64)
        colors = rgb / (255.0 if rgb.max(initial=0) > 1.0 else 1.0)
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
    body_start = raw.index(b"\n", end) + 1
    encoding, elements = None, []
    for line in raw[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            encoding = words[1]
        elif words[0] == "element":
            elements.append(_PlyElement(words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            if words[1] == "list":
                elements[-1].properties.append((words[4], _ply_type(words[3], path), _ply_type(words[2], path)))
            else:
                elements[-1].properties.append((words[2], _ply_type(words[1], path), None))
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DatasetError(f"{path}: unknown PLY format {encoding!r}")
    return encoding, elements, body_start


def _ply_type(name: str, path: Path) -> str:
    if name not in _PLY_TYPES:
        raise DatasetError(f"{path}: unknown PLY property type {name!r}")
    return _PLY_TYPES[name]


def read_ply_fields(path: str | Path) -> dict[str, np.ndarray]:
    """The scalar properties of a PLY file's ``vertex`` element, by name, each (N,)."""
    path = Path(path)
    raw = path.read_bytes()
    encoding, elements, offset = _ply_header(raw, path)
    names = [e.name for e in elements]
    if "vertex" not in names:
        raise DatasetError(f"{path}: no vertex element (elements: {', '.join(names) or 'none'})")
    if encoding == "ascii":
        lines = raw[offset:].decode("ascii", errors="replace").splitlines()
        lines = [ln for ln in lines if ln.strip()]
        start = sum(e.count for e in elements[: names.index("vertex")])
        vertex = elements[names.index("vertex")]
        rows = lines[start: start + vertex.count]
        if len(rows) != vertex.count:
            raise DatasetError(f"{path}: header says {vertex.count} vertices, file has {len(rows)} rows")
        table = np.array([row.split()[: len(vertex.properties)] for row in rows], dtype=np.float64)
        return {name: table[:, i] for i, (name, _, count) in enumerate(vertex.properties) if count is None}
    order = "<" if encoding == "binary_little_endian" else ">"
    for element in elements:
        if element.name == "vertex":
            if any(count is not None for _, _, count in element.properties):
                raise DatasetError(f"{path}: list properties in the vertex element are not supported")
            dtype = np.dtype([(name, order + kind) for name, kind, _ in element.properties])
            if offset + dtype.itemsize * element.count > len(raw):
                raise DatasetError(f"{path}: truncated: {element.count} vertices of {dtype.itemsize} bytes do not fit")
            table = np.frombuffer(raw, dtype=dtype, count=element.count, offset=offset)
            return {name: table[name].astype(np.float64) for name in dtype.names}
        offset = _skip_binary_element(raw, offset, element, order, path)
    raise AssertionError("unreachable")


def _skip_binary_element(raw: bytes, offset: int, element: _PlyElement, order: str, path: Path) -> int:
    if all(count is None for _, _, count in element.properties):
        return offset + element.count * sum(np.dtype(kind).itemsize for _, kind, _ in element.properties)
    for _ in range(element.count):  # list properties: walk row by row (only before the vertex element)
        for _, kind, count_kind in element.properties:
            if count_kind is None:
                offset += np.dtype(kind).itemsize
            else:
                if offset >= len(raw):
                    raise DatasetError(f"{path}: truncated in element {element.name!r}")
                length = int(np.frombuffer(raw, order + count_kind, 1, offset)[0])
                offset += np.dtype(count_kind).itemsize + length * np.dtype(kind).itemsize
    return offset


# ----------------------------------------------------------------------------------------------------------- PCD

_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
              ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}


def read_pcd_fields(path: str | Path) -> dict[str, np.ndarray]:
    """The per-point fields of a PCD file by name, each (N,); ``rgb``/``rgba`` unpacked to red/green/blue."""
    path = Path(path)
    raw = path.read_bytes()
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
    try:
        names = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        kinds = header["TYPE"]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(names))]
        points = int(header["POINTS"][0]) if "POINTS" in header else \
            int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        encoding = header["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as err:
        raise DatasetError(f"{path}: malformed PCD header ({err!r})") from None
    if not len(names) == len(sizes) == len(kinds) == len(counts):
        raise DatasetError(f"{path}: FIELDS/SIZE/TYPE/COUNT lengths differ")
    columns = []
    for name, size, kind, count in zip(names, sizes, kinds, counts):
        if (kind, size) not in _PCD_TYPES:
            raise DatasetError(f"{path}: field {name!r} has unsupported TYPE {kind} SIZE {size}")
        columns.append((name, _PCD_TYPES[kind, size], count))
    if encoding == "ascii":
        rows = [ln.split() for ln in raw[offset:].decode("ascii", errors="replace").splitlines() if ln.strip()]
        width = sum(count for *_, count in columns)
        if len(rows) < points or any(len(r) < width for r in rows[:points]):
            raise DatasetError(f"{path}: header says {points} points of {width} values; the data is shorter")
        table = np.array([r[:width] for r in rows[:points]], dtype=np.float64)
        blocks, start = {}, 0
        for name, kind, count in columns:
            if name in ("rgb", "rgba") and count == 1:
                blocks[name] = _ascii_packed_colour([r[start] for r in rows[:points]], kind)[:, None]
            else:
                blocks[name] = table[:, start: start + count]
            start += count
    elif encoding == "binary":
        dtype = np.dtype([(name, "<" + kind, (count,)) for name, kind, count in columns])
        if offset + dtype.itemsize * points > len(raw):
            raise DatasetError(f"{path}: truncated: {points} points of {dtype.itemsize} bytes do not fit")
        table = np.frombuffer(raw, dtype, points, offset)
        blocks = {name: table[name].reshape(points, -1) for name, *_ in columns}
    elif encoding == "binary_compressed":
        if offset + 8 > len(raw):
            raise DatasetError(f"{path}: truncated before the compressed sizes")
        compressed, uncompressed = (int(v) for v in np.frombuffer(raw, "<u4", 2, offset))
        data = lzf_decompress(raw[offset + 8: offset + 8 + compressed], uncompressed, path)
        blocks, start = {}, 0
        for name, kind, count in columns:  # column-major: every point's value of one field, then the next field
            nbytes = np.dtype(kind).itemsize * count * points
            if start + nbytes > len(data):
                raise DatasetError(f"{path}: compressed data holds fewer than {points} points")
            blocks[name] = np.frombuffer(data, "<" + kind, count * points, start).reshape(points, count)
            start += nbytes
    else:
        raise DatasetError(f"{path}: unknown PCD DATA encoding {encoding!r}")
    values = {}
    for name, kind, count in columns:
        block = blocks[name]
        if name in ("rgb", "rgba") and count == 1:  # a packed colour: the bits of a float or an unsigned integer
            values.update(_unpack_rgb(block[:, 0].view(np.uint32) if block.dtype.itemsize == 4 else block[:, 0]))
        else:
            values.update(_name_columns(name, block.astype(np.float64)))
    return values


def _ascii_packed_colour(tokens: list[str], kind: str) -> np.ndarray:
    """A packed rgb column of an ascii PCD: PCL writes the packed integer even when TYPE is F; other writers print
    the float whose bits are the packed colour. A token without '.', 'e' or 'n' (nan/inf) is the integer."""
    if kind.startswith("f") and any(set(t.lower()) & set(".en") for t in tokens):
        return np.array(tokens, dtype=np.float32).view(np.uint32)
    return np.array([int(float(t)) for t in tokens], dtype=np.uint64).astype(np.uint32)


def _name_columns(name: str, block: np.ndarray) -> dict[str, np.ndarray]:
    if block.shape[1] == 1:
        return {name: block[:, 0]}
    return {f"{name}_{i}": block[:, i] for i in range(block.shape[1])}


def _unpack_rgb(packed: np.ndarray) -> dict[str, np.ndarray]:
    packed = packed.astype(np.uint32)
    return {"red": ((packed >> 16) & 255).astype(np.float64), "green": ((packed >> 8) & 255).astype(np.float64),
            "blue": (packed & 255).astype(np.float64)}


def lzf_decompress(data: bytes, size: int, path: Path | str = "<bytes>") -> bytes:
    """Decompress an LZF stream (liblzf's format, as PCL writes ``binary_compressed``) to exactly ``size`` bytes."""
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
