"""Build ModelNet's normal_resampled layout (and optionally h5) from the original Princeton .off meshes.

    python tools/prepare_modelnet.py --src datasets/ModelNet40_raw --out datasets/ModelNet/modelnet40_normal_resampled
    python tools/prepare_modelnet.py --src ModelNet10 --out mn10 --name modelnet10 --h5-points 2048

Re-running resumes: finished shapes are skipped, and the output is identical for the same --seed.
"""
from __future__ import annotations

import argparse

from pcpeft.cli import add_debug_flag, run_tool
from pcpeft.datasets.prepare_modelnet import prepare_modelnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="folder with <class>/{train,test}/<class>_<nnnn>.off")
    parser.add_argument("--out", required=True, help="output folder (normal_resampled layout)")
    parser.add_argument("--points", type=int, default=10000, help="surface samples per shape (10,000 like the release)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="modelnet40", help="prefix of the list files (modelnet40 / modelnet10)")
    parser.add_argument("--h5-points", type=int, default=0, help="also write ply_hdf5-style h5 with this many points")
    add_debug_flag(parser)
    args = parser.parse_args()
    counts = prepare_modelnet(args.src, args.out, args.points, args.seed, args.name, args.h5_points)
    print(f"prepared {counts['train']} train and {counts['test']} test shapes into {args.out} "
          f"({counts['skipped']} already there)")


if __name__ == "__main__":
    run_tool(main)
