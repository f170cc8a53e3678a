"""``pcpeft prepare``: data sets in the layout the loaders read, from their original files."""
from __future__ import annotations

import argparse

from .vocabulary import OUT_IS_A_FILE, add_out_dir, add_progress, add_seed

OPTION_ALIASES = {"--out": OUT_IS_A_FILE}
SUMMARY = "prepare a data set from its original files (ModelNet .off meshes -> the normal_resampled layout, h5)"
EXAMPLES = """  pcpeft prepare modelnet --src ModelNet40_raw --out_dir datasets/ModelNet/modelnet40_normal_resampled
  pcpeft prepare modelnet --src ModelNet10 --out_dir mn10 --name modelnet10 --h5_points 2048

Re-running resumes: finished shapes are skipped, and the output is identical for the same --seed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["modelnet"], help="which data set")
    parser.add_argument("--src", required=True, metavar="DIR",
                        help="folder with <class>/{train,test}/<class>_<nnnn>.off")
    add_out_dir(parser, "output folder (normal_resampled layout)", required=True)
    parser.add_argument("--points", type=int, default=10000, help="surface samples per shape (10,000 like the release)")
    add_seed(parser)
    parser.add_argument("--name", default="modelnet40", help="prefix of the list files (modelnet40 / modelnet10)")
    parser.add_argument("--h5_points", type=int, default=0, help="also write ply_hdf5-style h5 with this many points")
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    from ..datasets.prepare_modelnet import prepare_modelnet

    counts = prepare_modelnet(args.src, args.out_dir, args.points, args.seed, args.name, args.h5_points)
    print(f"prepared {counts['train']} train and {counts['test']} test shapes into {args.out_dir} "
          f"({counts['skipped']} already there)")
    return 0
