"""Cloud files: PLY (ascii, binary little/big endian, elements before the vertices), PCD (ascii, binary,
binary_compressed LZF), NaN points, text/npy tables, bad files; and the files Open3D itself writes."""
import importlib.util
import struct

import numpy as np
import pytest

from pcpeft.datasets.errors import DatasetError
from pcpeft.viz import read_cloud
from pcpeft.viz.cloud_io import lzf_decompress

RNG = np.random.default_rng(0)
N = 37
XYZ = RNG.normal(size=(N, 3)).astype(np.float32)
NORMALS = RNG.normal(size=(N, 3)).astype(np.float32)
RGB = RNG.integers(0, 256, size=(N, 3)).astype(np.uint8)
INTENSITY = RNG.random(N).astype(np.float32)

has_open3d = importlib.util.find_spec("open3d") is not None


def ply_bytes(encoding: str, faces_first: bool = False) -> bytes:
    faces = [(3, 0, 1, 2), (4, 3, 4, 5, 6)]
    vertex_header = ("element vertex %d\nproperty float x\nproperty float y\nproperty float z\nproperty float nx\n"
                     "property float ny\nproperty float nz\nproperty uchar red\nproperty uchar green\n"
                     "property uchar blue\nproperty float intensity\n" % N)
    face_header = "element face %d\nproperty list uchar int vertex_indices\n" % len(faces)
    header = f"ply\nformat {encoding} 1.0\ncomment written by the test\n"
    header += (face_header + vertex_header) if faces_first else (vertex_header + face_header)
    header += "end_header\n"
    if encoding == "ascii":
        vertex_rows = "".join(" ".join([*map(repr, map(float, XYZ[i])), *map(repr, map(float, NORMALS[i])),
                                        *map(str, RGB[i]), repr(float(INTENSITY[i]))]) + "\n" for i in range(N))
        face_rows = "".join(" ".join(map(str, f)) + "\n" for f in faces)
        body = (face_rows + vertex_rows) if faces_first else (vertex_rows + face_rows)
        return (header + body).encode()
    order = "<" if encoding == "binary_little_endian" else ">"
    vertex_dtype = np.dtype([(n, order + "f4") for n in ("x", "y", "z", "nx", "ny", "nz")] +
                            [(n, "u1") for n in ("red", "green", "blue")] + [("intensity", order + "f4")])
    table = np.zeros(N, vertex_dtype)
    for i, n in enumerate("xyz"):
        table[n] = XYZ[:, i]
    for i, n in enumerate(("nx", "ny", "nz")):
        table[n] = NORMALS[:, i]
    for i, n in enumerate(("red", "green", "blue")):
        table[n] = RGB[:, i]
    table["intensity"] = INTENSITY
    face_body = b"".join(struct.pack(order + "B" + "i" * f[0], *f) for f in faces)
    return header.encode() + ((face_body + table.tobytes()) if faces_first else (table.tobytes() + face_body))


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian", "binary_big_endian"])
@pytest.mark.parametrize("faces_first", [False, True])
def test_ply_every_encoding(tmp_path, encoding, faces_first):
    path = tmp_path / "c.ply"
    path.write_bytes(ply_bytes(encoding, faces_first))
    cloud = read_cloud(path)
    np.testing.assert_allclose(cloud.points, XYZ, rtol=1e-6)
    np.testing.assert_allclose(cloud.normals, NORMALS, rtol=1e-6)
    np.testing.assert_allclose(cloud.colors, RGB / 255.0)
    np.testing.assert_allclose(cloud.fields["intensity"], INTENSITY, rtol=1e-6)
    assert cloud.as_array().shape == (N, 6)


def lzf_compress(data: bytes) -> bytes:
    """A small greedy LZF encoder (liblzf's stream format) so the tests exercise literals and back references."""
    out, literal, i, seen = bytearray(), bytearray(), 0, {}

    def flush():
        for start in range(0, len(literal), 32):
            chunk = literal[start: start + 32]
            out.append(len(chunk) - 1)
            out.extend(chunk)
        literal.clear()

    while i < len(data):
        key = data[i: i + 3]
        ref = seen.get(key) if len(key) == 3 else None
        seen[key] = i
        if ref is not None and i - ref - 1 < 8192:
            length = 3
            while i + length < len(data) and length < 264 and data[ref + length] == data[i + length]:
                length += 1
            flush()
            offset, short = i - ref - 1, length - 2
            if short < 7:
                out.append((short << 5) | (offset >> 8))
            else:
                out.extend([(7 << 5) | (offset >> 8), short - 7])
            out.append(offset & 0xFF)
            i += length
        else:
            literal.append(data[i])
            i += 1
    flush()
    return bytes(out)


def test_lzf_round_trip_with_overlapping_references():
    data = b"abcabcabcabcabc" + bytes(range(50)) * 3 + b"z" * 300
    packed = lzf_compress(data)
    assert len(packed) < len(data) / 2  # back references were used
    assert lzf_decompress(packed, len(data)) == data
    with pytest.raises(DatasetError, match="LZF"):
        lzf_decompress(packed[:-3], len(data))
    with pytest.raises(DatasetError, match="LZF"):
        lzf_decompress(bytes([0x20, 0x05]), 10)  # a reference before the start


def pcd_bytes(encoding: str, xyz=XYZ) -> bytes:
    n = len(xyz)
    packed_rgb = ((RGB[:n, 0].astype(np.uint32) << 16) | (RGB[:n, 1].astype(np.uint32) << 8) | RGB[:n, 2])
    histogram = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    header = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
              "FIELDS x y z normal_x normal_y normal_z rgb intensity hist\nSIZE 4 4 4 4 4 4 4 4 4\n"
              "TYPE F F F F F F F F F\nCOUNT 1 1 1 1 1 1 1 1 3\n"
              f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {encoding}\n")
    columns = [xyz, NORMALS[:n], packed_rgb.view(np.float32)[:, None], INTENSITY[:n, None], histogram]
    if encoding == "ascii":
        rows = np.concatenate([np.asarray(c, np.float64) for c in columns], axis=1)
        lines = []
        for i in range(n):
            values = [repr(float(v)) for v in rows[i]]
            values[6] = str(int(packed_rgb[i]))  # PCL writes a packed rgb as its integer in ascii files
            lines.append(" ".join(values))
        return (header + "\n".join(lines) + "\n").encode()
    table = np.concatenate([np.asarray(c, np.float32) for c in columns], axis=1)
    if encoding == "binary":
        return header.encode() + table.astype("<f4").tobytes()
    per_field = [*xyz.T, *NORMALS[:n].T, packed_rgb.view(np.float32), INTENSITY[:n], histogram]  # FIELDS order
    column_major = b"".join(np.ascontiguousarray(c, "<f4").tobytes() for c in per_field)
    packed = lzf_compress(column_major)
    return header.encode() + struct.pack("<II", len(packed), len(column_major)) + packed


@pytest.mark.parametrize("encoding", ["ascii", "binary", "binary_compressed"])
def test_pcd_every_encoding(tmp_path, encoding):
    path = tmp_path / "c.pcd"
    path.write_bytes(pcd_bytes(encoding))
    cloud = read_cloud(path)
    np.testing.assert_allclose(cloud.points, XYZ, rtol=1e-6)
    np.testing.assert_allclose(cloud.normals, NORMALS, rtol=1e-6)
    np.testing.assert_allclose(cloud.colors, RGB / 255.0)
    np.testing.assert_allclose(cloud.fields["intensity"], INTENSITY, rtol=1e-6)
    np.testing.assert_allclose(cloud.fields["hist_2"], np.arange(N) * 3 + 2)


def test_nan_points_of_an_organised_cloud_are_dropped(tmp_path):
    xyz = XYZ.copy()
    xyz[[3, 10]] = np.nan
    path = tmp_path / "o.pcd"
    path.write_bytes(pcd_bytes("binary", xyz))
    cloud = read_cloud(path)
    assert cloud.points.shape == (N - 2, 3) and cloud.normals.shape == (N - 2, 3)
    np.testing.assert_allclose(cloud.fields["intensity"], np.delete(INTENSITY, [3, 10]), rtol=1e-6)


def test_text_and_npy_tables(tmp_path):
    table = np.concatenate([XYZ, NORMALS], axis=1)
    np.savetxt(tmp_path / "a.txt", table, delimiter=",")  # ModelNet40's resampled layout
    np.save(tmp_path / "a.npy", table[:, :3])
    assert read_cloud(tmp_path / "a.txt").as_array().shape == (N, 6)
    np.testing.assert_allclose(read_cloud(tmp_path / "a.txt").fields["4"], NORMALS[:, 1], rtol=1e-6)
    assert read_cloud(tmp_path / "a.npy").normals is None


@pytest.mark.parametrize("content, message", [
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nproperty float y\n"
     b"property float z\nend_header\n" + b"\0" * 20, "truncated"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nend_header\n1\n", "no x/y/z field"),
    (b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int i\nend_header\n3 0 1 2\n", "no vertex element"),
    (b"ply\nformat weird 1.0\nend_header\n", "unknown PLY format"),
    (b"not a ply at all", "not a PLY file"),
])
def test_bad_ply_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as err:
        read_cloud(path)
    assert str(path) in str(err.value)


def test_bad_pcd_and_unknown_suffix(tmp_path):
    (tmp_path / "bad.pcd").write_bytes(pcd_bytes("binary")[:-40])
    with pytest.raises(DatasetError, match="bad.pcd: truncated"):
        read_cloud(tmp_path / "bad.pcd")
    (tmp_path / "c.stl").write_text("solid")
    with pytest.raises(DatasetError, match="unknown point cloud format"):
        read_cloud(tmp_path / "c.stl")
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        read_cloud(tmp_path / "missing.ply")


@pytest.mark.skipif(not has_open3d, reason="open3d is not installed")
@pytest.mark.parametrize("suffix, ascii_, compressed", [(".ply", False, False), (".ply", True, False),
                                                        (".pcd", False, True), (".pcd", False, False),
                                                        (".pcd", True, False)])
def test_files_written_by_open3d_read_back_exactly(tmp_path, suffix, ascii_, compressed):
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(XYZ.astype(np.float64)))
    cloud.normals = o3d.utility.Vector3dVector(NORMALS.astype(np.float64))
    cloud.colors = o3d.utility.Vector3dVector(RGB / 255.0)
    path = tmp_path / f"o3d{suffix}"
    assert o3d.io.write_point_cloud(str(path), cloud, write_ascii=ascii_, compressed=compressed)
    ours = read_cloud(path)
    np.testing.assert_allclose(ours.points, XYZ, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.normals, NORMALS, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.colors, RGB / 255.0, atol=1 / 255)
