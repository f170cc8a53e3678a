"""Pictures of point clouds, FPS groups, class galleries, SMoA expert routing, t-SNE of features, training curves.

    python tools/visualize.py cloud  --file chair.off --out chair.png --color height
    python tools/visualize.py cloud  --config cfgs/datasets/synthetic_demo.yaml --index 3 --out c.png
    python tools/visualize.py groups --file chair.off --num_group 32 --out groups.png
    python tools/visualize.py gallery --config cfgs/datasets/synthetic_demo.yaml --out gallery.png
    python tools/visualize.py routing --config cfgs/demo.yaml --peft adapter_x [--ckpts pre.pth --adapter dir] --out r.png
    python tools/visualize.py tsne   --config cfgs/... --ckpts ... --out tsne.png
    python tools/visualize.py curves --experiment experiments/<recipe>/<name> --out curves.png
"""
from __future__ import annotations

import argparse
import logging
import os

import numpy as np
import torch

from pcpeft import viz
from pcpeft.engine.config import apply_overrides, load_config
from pcpeft.engine.data import batch_transforms, build_dataset


def _model(args, config):
    from pcpeft.engine.trainer import build_model, load_for_test

    if args.adapter:
        return load_for_test(config, args.ckpts, args.adapter, torch.device("cpu"))
    torch.manual_seed(args.seed)
    return build_model(config, args.ckpts, args.peft)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["cloud", "groups", "gallery", "routing", "tsne", "curves"])
    parser.add_argument("--file", help="cloud file: .txt/.npy/.ply/.pcd/.off")
    parser.add_argument("--config", help="recipe whose dataset (and model) to use")
    parser.add_argument("--subset", default="test")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--color", default="height", choices=["height", "normal"])
    parser.add_argument("--num_group", type=int, default=32)
    parser.add_argument("--group_size", type=int, default=32)
    parser.add_argument("--per_class", type=int, default=1, help="gallery: samples per class")
    parser.add_argument("--ckpts", default=None)
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--peft", default="adapter_x")
    parser.add_argument("--experiment", help="curves: experiment folder or results.json")
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--renderer", default="auto", choices=["auto", "matplotlib", "open3d"])
    parser.add_argument("--interactive", action="store_true", help="open a window when a display exists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--opts", nargs="*", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    renderer = viz.choose_renderer(args.renderer)
    if renderer == "open3d":
        logging.info("open3d imports, but its offscreen path is not wired yet: drawing with matplotlib")
    if args.interactive and not os.environ.get("DISPLAY"):
        logging.info("--interactive: no display (DISPLAY is unset); writing the PNG instead")
    size = (args.width, args.height)
    config = apply_overrides(load_config(args.config), args.opts) if args.config else None
    dataset = build_dataset(config["dataset"], args.subset) if config and args.command != "curves" else None

    def cloud():
        if args.file:
            return viz.load_cloud(args.file)
        return dataset[args.index][0].numpy()

    if args.command == "cloud":
        viz.render_cloud(cloud(), args.out, size, args.color)
    elif args.command == "groups":
        viz.render_groups(cloud(), args.out, args.num_group, args.group_size, size)
    elif args.command == "gallery":
        labels = np.array([dataset[i][1] for i in range(len(dataset))])
        names = getattr(dataset, "classes", [str(i) for i in range(labels.max() + 1)])
        chosen = [i for c in range(len(names)) for i in np.flatnonzero(labels == c)[: args.per_class]]
        viz.render_gallery([dataset[i][0].numpy() for i in chosen], [names[labels[i]] for i in chosen], args.out,
                           size=size)
    elif args.command == "routing":
        model = _model(args, config)
        pts, experts, n = viz.routing_panels(model, batch_transforms(config, torch.Generator())[1](
            torch.from_numpy(cloud()[None, :, :3].copy()))[0])
        viz.render_routing(pts, experts, n, args.out, size)
    elif args.command == "tsne":
        model = _model(args, config)
        feats, labels = viz.pooled_features(model, dataset, batch_transforms(config, torch.Generator())[1])
        viz.render_tsne(feats, labels, getattr(dataset, "classes", None) or sorted(set(labels)), args.out, size)
    else:
        viz.render_curves(args.experiment, args.out, size)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
