"""``pcpeft viz``: pictures of point clouds, FPS groups, class galleries, SMoA expert routing, t-SNE of features,
training curves and part segmentations (PNG).

3-D pictures are drawn by Open3D's offscreen renderer where it works, by matplotlib otherwise (--renderer picks;
the choice is logged); t-SNE and curves are matplotlib plots. --interactive also opens the picture in an Open3D
window when a display exists (--window_seconds closes it by itself).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from .. import viz
from ..engine.data import build_dataset, test_transform
from ..engine.recipe.schema import validate_dataset_recipe
from ..errors import UsageError
from ..viz import window
from .vocabulary import add_ckpts, add_config, add_opts, add_out, add_seed

LOG = logging.getLogger("pcpeft")

OPTION_ALIASES = {"--dataset": "--config", "--experiment": "--run", "--file": None}
SUMMARY = "pictures: clouds, FPS groups, galleries, SMoA routing, t-SNE, training curves, part segmentations (PNG)"
EXAMPLES = """  pcpeft viz cloud chair.ply --out chair.png [--color height|normal|rgb|value --values F]
  pcpeft viz cloud --config datasets/synthetic_demo --index 3 --out c.png         # a sample of a data set
  pcpeft viz groups chair_0001.off --num_group 32 --group_size 32 --out groups.png
  pcpeft viz gallery --config datasets/synthetic_demo --per_class 1 --out gallery.png
  pcpeft viz routing --run experiments/finetune_synthetic/ax --index 0 --out routing.png
  pcpeft viz tsne --run experiments/finetune_synthetic/ax --out tsne.png
  pcpeft viz curves --run experiments/finetune_synthetic/ax --out curves.png
  pcpeft viz parts --run experiments/partseg/synthetic/ax --index 0 --out parts.png"""

WHAT = ("cloud", "groups", "gallery", "routing", "tsne", "curves", "parts")
MODEL_PICTURES = ("routing", "tsne", "parts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=WHAT, help="the picture to draw")
    parser.add_argument("file", nargs="?", metavar="FILE",
                        help="cloud file for cloud / groups / routing (.txt .xyz .npy .ply .pcd .off)")
    source = parser.add_argument_group("what to draw")
    source.add_argument("--run", metavar="RUN", default=None,
                        help="a run folder: its model (routing, tsne, parts), its data set, its curves")
    add_config(source, required=False, help_extra="; a data-set recipe (datasets/synthetic_demo) is enough for "
                                                   "cloud and gallery")
    source.add_argument("--subset", default="test", help="split of the data set")
    source.add_argument("--index", type=int, default=0, help="sample of the data set split")
    source.add_argument("--color", default=None, choices=viz.colors.COLOR_MODES,
                        help="cloud colouring (default: value when --values is given, else height)")
    source.add_argument("--values", help="per-point values for --color value: a field of the file (PLY property, "
                                         "PCD field, column number of .txt/.npy) or a .npy/.txt file of N values")
    source.add_argument("--npoints", type=int, default=0,
                        help="FPS-subsample the cloud to this many points first (0: all), as the data pipeline does")
    source.add_argument("--num_group", type=int, default=32, help="groups: FPS centres")
    source.add_argument("--group_size", type=int, default=32, help="groups: neighbours per centre")
    source.add_argument("--per_class", type=int, default=1, help="gallery: samples per class")
    source.add_argument("--tags", nargs="*", help="curves: only these scalars")
    model = parser.add_argument_group("model without a run (routing, tsne, parts with --config)")
    add_ckpts(model, "pre-trained backbone file")
    model.add_argument("--adapter", default=None, metavar="DIR", help="adapter folder from save_pretrained")
    model.add_argument("--peft", default="adapter_x", metavar="METHOD",
                       help="method when neither --run nor --adapter is given (random init)")
    model.add_argument("--limit", type=int, default=600, help="tsne: samples of the split")
    add_seed(model)
    add_opts(model)
    picture = parser.add_argument_group("picture")
    picture.add_argument("--width", type=int, default=800, help="pixels")
    picture.add_argument("--height", type=int, default=600, help="pixels")
    picture.add_argument("--columns", type=int, default=4, help="panels per row (gallery, routing)")
    picture.add_argument("--elev", type=float, default=20.0, help="camera elevation (degrees)")
    picture.add_argument("--azim", type=float, default=-60.0, help="camera azimuth (degrees)")
    picture.add_argument("--up", default="auto", choices=["auto", "y", "z"],
                         help="the cloud's up axis (auto: z for .off meshes, y for the data sets' clouds)")
    picture.add_argument("--point_size", type=float, default=None, help="pixels")
    picture.add_argument("--renderer", default="auto", choices=list(viz.renderers.RENDERERS),
                         help="who draws 3-D pictures")
    picture.add_argument("--interactive", action="store_true", help="also open an Open3D window (needs a display)")
    picture.add_argument("--window_seconds", type=float, default=None, help="close the window after this long")
    picture.add_argument("--html", action="store_true", help="cloud, groups, routing: also write the same view in "
                         "interactive 3-D beside the PNG (OUT with .html; one self-contained file, WebGL)")
    add_out(parser, "PNG to write", required=True)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse combinations that cannot make the picture asked for, naming what is missing."""
    if args.run and args.config:
        raise UsageError("give --run or --config, not both: a run brings its own recipe")
    if args.what in ("gallery", *MODEL_PICTURES) and not (args.run or args.config):
        raise UsageError(f"viz {args.what} needs --run RUN or --config RECIPE")
    if args.what == "curves" and not args.run:
        raise UsageError("viz curves needs --run RUN (a run folder: TensorBoard events or results.json)")
    if args.what == "curves":
        check_curves_source(args.run, args.tags)
    if args.html and args.what not in ("cloud", "groups", "routing"):
        raise UsageError(f"--html: viz {args.what} has no 3-D view; --html goes with cloud, groups and routing")
    if args.what in ("cloud", "groups", "routing") and not (args.file or args.run or args.config):
        raise UsageError(f"viz {args.what} needs a cloud FILE, or --config/--run with --index")


def check_curves_source(run: str, tags: list[str] | None) -> None:
    """Refuse, naming it, a ``--run`` that is no folder or holds no curves (TensorBoard events or results.json),
    and ``--tags`` it has no curve of."""
    path = Path(run)
    if not path.exists():
        raise UsageError(f"--run {run}: no such run folder; give the folder `pcpeft train` wrote, e.g. "
                         f"experiments/<recipe>/<exp_name> (or its results.json)")
    try:
        curves = viz.read_scalars(path)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(f"--run {run}: {err}") from None
    unknown = [tag for tag in tags or () if tag not in curves]
    if unknown:
        raise UsageError(f"--tags {' '.join(unknown)}: {run} has no such curve; it has {', '.join(curves)}")
    if not curves:
        raise UsageError(f"--run {run}: no scalar curves to draw (no epoch has finished yet?)")


def cloud_values(args, cloud: viz.CloudFile) -> tuple[str, np.ndarray | None]:
    """The colour mode and the values it needs, from --color/--values."""
    mode = args.color or ("value" if args.values else "height")
    if mode == "rgb":
        if cloud.colors is None:
            raise UsageError(f"--color rgb: {args.file or 'the sample'} has no colours "
                             f"(fields: {', '.join(cloud.fields)})")
        return mode, cloud.colors
    if mode != "value":
        return mode, None
    if not args.values:
        raise UsageError("--color value needs --values (a field name, a column number or a file of values)")
    if args.values in cloud.fields:
        return mode, cloud.fields[args.values]
    if Path(args.values).is_file():
        values = np.load(args.values) if args.values.endswith(".npy") else np.loadtxt(args.values, ndmin=1)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(cloud.points):
            raise UsageError(f"--values {args.values}: {len(values)} values for a cloud of {len(cloud.points)} points")
        return mode, values
    raise UsageError(f"--values {args.values!r} is neither a field of the cloud ({', '.join(cloud.fields)}) nor a file")


def dataset_labels(dataset) -> np.ndarray:
    """(N,) labels of a split, from its label array when it has one (no sample is loaded)."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        return np.array([dataset[i][1] for i in range(len(dataset))])
    return np.asarray(labels).reshape(-1)


def class_names(dataset, labels: np.ndarray) -> list[str]:
    """The split's class names, or the label numbers when it has none."""
    return list(getattr(dataset, "classes", None) or [str(c) for c in range(int(labels.max()) + 1)])


def load_model(args, config):
    from ..engine.runs.loading import load_run
    from ..engine.training.finetune import build_model, load_for_test

    if args.run:
        return load_run(args.run, backbone=args.ckpts)
    if args.adapter:
        return load_for_test(config, args.ckpts, args.adapter, torch.device("cpu"))
    torch.manual_seed(args.seed)
    return build_model(config, args.ckpts, args.peft)[0]


def part_panels(args, config, dataset) -> list:
    """Predicted and true parts of sample --index of a part-segmentation recipe's split, side by side."""
    from ..engine.training.partseg_metrics import PartSegMeter, restricted_prediction

    if not hasattr(dataset, "category_parts"):
        raise UsageError(f"parts needs a part-segmentation recipe (task: partseg); {args.run or args.config} reads "
                         f"{type(dataset).__name__}")
    if not 0 <= args.index < len(dataset):
        raise UsageError(f"--index {args.index}: the {args.subset} split has {len(dataset)} shapes")
    points, category, truth = dataset[args.index]
    model = load_model(args, config)
    model.eval()
    with torch.no_grad():
        log_probs = model(points[None, :, :3].contiguous(), category.reshape(1))
    predicted = restricted_prediction(log_probs, category.reshape(1), dataset.category_parts)
    meter = PartSegMeter(dataset.categories, dataset.category_parts)
    meter.update(predicted, truth[None], category.reshape(1))
    miou = meter.compute()["instance_miou"]
    LOG.info(f"shape {args.index} ({dataset.categories[int(category)]}): mIoU {miou:.1f}")
    return viz.parts_panels(points.numpy(), predicted[0].numpy(), truth.numpy(),
                            list(dataset.category_parts[int(category)]), args.point_size or 3.0, miou)


def _read_config(args: argparse.Namespace) -> dict | None:
    """The recipe of --run (its config.yaml) or --config, where the picture needs one."""
    if args.run and args.what != "curves":
        from ..engine.runs.loading import read_run_config

        return read_run_config(args.run)
    if args.config:
        from .recipe_input import load_recipe

        return load_recipe(args.config, args.opts).config
    return None


class Source:
    """Where a picture's cloud comes from: FILE, or sample --index of the recipe's data set split."""

    def __init__(self, args: argparse.Namespace, config: dict | None) -> None:
        self.args = args
        self.section = None
        self.dataset = None
        if config and args.what != "curves":
            self.section = validate_dataset_recipe(config, str(args.run or args.config))
            self.dataset = build_dataset(self.section, args.subset)

    def whole(self) -> viz.CloudFile:
        args = self.args
        if args.file:
            return viz.read_cloud(args.file)
        if not 0 <= args.index < len(self.dataset):
            raise UsageError(f"--index {args.index}: the {args.subset} split has {len(self.dataset)} samples")
        sample = self.dataset[args.index][0].numpy()
        return viz.CloudFile(sample[:, :3], sample[:, 3:6] if sample.shape[1] >= 6 else None, None,
                             {str(i): sample[:, i] for i in range(sample.shape[1])})

    def cloud(self) -> viz.CloudFile:
        """The cloud, FPS-subsampled to --npoints when that is set."""
        cloud = self.whole()
        return cloud.select(viz.fps_index(cloud.points, self.args.npoints)) if self.args.npoints > 0 else cloud

    def eval_transform(self):
        """The recipe's test-time sampling (FPS to dataset.npoints)."""
        return test_transform(self.section.npoints)


def _plot(args: argparse.Namespace, config: dict | None, source: Source, size: tuple[int, int]) -> None:
    """The 2-D plots (t-SNE of pooled features, training curves), drawn with matplotlib."""
    LOG.info(f"{args.what} is a 2-D plot: drawn with matplotlib")
    if args.what == "tsne":
        model = load_model(args, config)
        features, labels = viz.pooled_features(model, source.dataset, source.eval_transform(), args.limit)
        viz.render_tsne(features, labels, class_names(source.dataset, labels), args.out, size, args.seed)
    else:
        viz.render_curves(args.run, args.out, size, args.tags)


def _panels(args: argparse.Namespace, config: dict | None, source: Source) -> tuple[list, int]:
    """The 3-D panels of the picture and the number of columns they are laid out in."""
    if args.what == "cloud":
        cloud = source.cloud()
        mode, values = cloud_values(args, cloud)
        points = cloud.as_array() if mode == "normal" else cloud.points
        return [viz.cloud_panel(points, mode, values, "", args.point_size or 3.0)], 1
    if args.what == "groups":
        return [viz.groups_panel(source.cloud().points, args.num_group, args.group_size, args.point_size or 3.0)], 1
    if args.what == "parts":
        return part_panels(args, config, source.dataset), 2
    dataset = source.dataset
    if args.what == "gallery":
        labels = dataset_labels(dataset)
        names = class_names(dataset, labels)
        chosen = [i for c in range(len(names)) for i in np.flatnonzero(labels == c)[: args.per_class]]
        return viz.gallery_panels([dataset[i][0].numpy() for i in chosen], [names[labels[i]] for i in chosen],
                                  args.point_size or 2.0), args.columns
    model = load_model(args, config)
    cloud = torch.from_numpy(np.ascontiguousarray(source.cloud().points[None], np.float32))
    points = source.eval_transform()(cloud)[0]
    return viz.routing_panels(*viz.expert_choices(model, points), args.point_size or 3.0), args.columns


def _up_axis(args: argparse.Namespace) -> str:
    """--up, or with ``auto`` z for an OFF mesh (ModelNet's meshes are z-up) and y otherwise."""
    if args.up != "auto":
        return args.up
    return "z" if args.file and args.file.lower().endswith(".off") else "y"


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    size = (args.width, args.height)
    config = _read_config(args)
    source = Source(args, config)
    view = viz.View(args.elev, args.azim, _up_axis(args))
    panels = None
    if args.what in ("tsne", "curves"):
        _plot(args, config, source, size)
    else:
        renderer = viz.choose_renderer(args.renderer)
        panels, columns = _panels(args, config, source)
        viz.render_panels(panels, args.out, size, columns, renderer, view)
    print(f"wrote {args.out}")
    if args.html:
        from ..report import write_panels_page

        print(f"wrote {write_panels_page(panels or [], args.out, args.what, view)}")
    if args.interactive:
        reason = window.interactive_unavailable_reason()
        if reason:
            LOG.info(f"--interactive: {reason}; the PNG {args.out} is written instead")
        elif panels is not None:
            window.show_panels(panels, f"pcpeft {args.what}", size, view, columns, args.window_seconds)
        else:
            from PIL import Image

            window.show_image(np.asarray(Image.open(args.out).convert("RGB")), f"pcpeft {args.what}",
                              args.window_seconds)
    return 0
