"""mkdocs hook: the recipe reference of ``recipes.md``, generated from the code at build time.

The page holds placeholders that this hook replaces:

* ``<!-- recipe-reference -->``: one table per recipe section (``train``, ``test``, ``optimizer``, ``scheduler``,
  ``augmentation``, ``pretrain``), per registered data set (``pcpeft.engine.data.dataset_sections()``) and per
  model config of ``pcpeft.models.registry``, plus the options of every PEFT method and preset. Type, default and
  meaning come from the pydantic ``model_fields`` (the model and method configs are dataclasses: their defaults are
  read from a model built on the meta device, their meanings from the field's comment in the source).
* ``<!-- shipped-recipes -->``: the list of ``pcpeft.engine.recipe.shipped.shipped_recipes()``.

A key the code has and the page cannot describe still gets its row (type and default); ``NOTES`` adds meanings the
code does not carry. A ``NOTES`` entry for a key that no longer exists is reported as a warning, which fails
``mkdocs build --strict``.
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import logging
import re
import tokenize
import types
import typing

from hook_support import cell, import_checkout
from mkdocs.exceptions import PluginError

LOG = logging.getLogger("mkdocs.hooks.recipe_reference")

TABLES_PLACEHOLDER = "<!-- recipe-reference -->"
SHIPPED_PLACEHOLDER = "<!-- shipped-recipes -->"
PAGE = "recipes.md"

#: meanings of keys whose code carries no description ("Section.key"; the section is the class name)
NOTES: dict[str, str] = {
    "Recipe.model": "the backbone: `name` (a registered model) and its options; see the model tables below",
    "Recipe.dataset": "the data set: `name` (one of the data-set sections below) and its options",
    "Recipe.peft": "the method: a name (`adapter_x`), a mapping (`{method: dapt, rank: 72}`) or a list of "
                   "them (composed); `--peft` on the command line replaces it; none: full fine-tuning",
    "TrainSettings.aux_loss_weight": "factor of the model's auxiliary loss (SMoA load balancing, PointGPT's "
                                     "generator loss) added to the cross-entropy",
    "TrainSettings.eval_every": "evaluate (validation and test splits) every N epochs, and after the last",
    "TrainSettings.label_smoothing": "cross-entropy label smoothing (Point-BERT's recipes: 0.2)",
    "TrainSettings.num_workers": "data-loader processes",
    "TrainSettings.require_pretrained": "refuse to start without `--ckpts`",
    "TestSettings.vote_times": "a voting count kept with the recipe; `pcpeft test` and `pcpeft predict` take theirs "
                               "from `--vote N` (`--vote` alone: 10)",
    "OptimizerSettings.lr": "AdamW learning rate after warm-up",
    "OptimizerSettings.weight_decay": "AdamW weight decay (none on 1-D parameters, biases and `*token*`)",
    "SchedulerSettings.epochs": "training epochs",
    "SchedulerSettings.warmup_epochs": "linear warm-up epochs from `warmup_lr` to `optimizer.lr`",
    "SchedulerSettings.warmup_lr": "learning rate at the start of the warm-up",
    "SchedulerSettings.min_lr": "floor of the cosine schedule",
    "AugmentationSettings.scale_translate": "random per-axis scale U(2/3, 3/2) and translation U(-0.2, 0.2) of "
                                            "training clouds",
    "AugmentationSettings.rotate": "random rotation of training clouds about the up axis (several PEFT papers use "
                                   "it on ScanObjectNN; `results.json` records it)",
    "AugmentationSettings.up_axis": "the axis `rotate` turns about",
    "AugmentationSettings.hflip": "random horizontal flip of training images (2D branch)",
    "PretrainSettings.mask_ratio": "share of the point groups masked in masked-autoencoder pre-training",
    "PretrainSettings.decoder_depth": "blocks of the pre-training decoder",
    "PretrainSettings.decoder_num_heads": "attention heads of the decoder (default: `model.num_heads`)",
    "PointDataset.name": "which data set (the section's name)",
    "PointDataset.root": "the data folder (relative paths are relative to the working folder)",
    "PointDataset.npoints": "points per cloud fed to the model",
    "ScanObjectNNSettings.split": "the variant; PB_T50_RS is the one file names call `hardest`",
    "ModelNet40Settings.cache_points": "points per shape of the FPS cache (Point-MAE's "
                                       "`modelnet40_*_8192pts_fps.dat`)",
    "ModelNet40Settings.format": "`resampled`: the normal_resampled text files; `h5`: ply_hdf5_2048",
    "ModelNet40Settings.num_category": "ModelNet40 or ModelNet10 list files",
    "ModelNetFewShotSettings.way": "classes of the episode",
    "ModelNetFewShotSettings.shot": "training samples per class",
    "ModelNetFewShotSettings.fold": "which of the ten folds (report mean and spread over 0-9)",
    "SyntheticPartsSettings.train_per_category": "generated training shapes per category",
    "SyntheticPartsSettings.val_per_category": "generated validation shapes per category",
    "SyntheticPartsSettings.test_per_category": "generated test shapes per category",
    "SyntheticPartsSettings.generator_seed": "seed of the generator",
    "GeneratedImagesSettings.train_per_class": "generated training images per class",
    "GeneratedImagesSettings.test_per_class": "generated test images per class",
    "ImageDataset.name": "which data set (the section's name)",
    "ImageDataset.root": "the image folder",
    "ImageDataset.img_size": "side of the square input image",
    "ImageDataset.mean": "per-channel normalisation mean (default: the data set's)",
    "ImageDataset.std": "per-channel normalisation standard deviation (default: the data set's)",
    "VTABSettings.train_list": "VTAB-1k training list file",
    "VTABSettings.test_list": "VTAB-1k test list file",
    "PointBackboneConfig.num_classes": "classes of the head (the data-set recipes set it)",
    "PointBackboneConfig.num_group": "point tokens: FPS centres per cloud",
    "PointBackboneConfig.group_size": "points per group (kNN of each centre)",
    "PointBackboneConfig.trans_dim": "token width",
    "PointBackboneConfig.depth": "transformer blocks",
    "PointBackboneConfig.num_heads": "attention heads",
    "PointBackboneConfig.mlp_ratio": "MLP width / token width",
    "PointBackboneConfig.head_hidden": "hidden width of the classification head",
    "PointBackboneConfig.head_dropout": "dropout of the classification head",
    "PointBackboneConfig.fps_backend": "farthest point sampling implementation (all return the same indices)",
    "PointBackboneConfig.exclude_near_origin": "never pick a point with |p|² ≤ 1e-3 after the first, as the CUDA "
                                               "kernel (pointnet2_ops) that trained the official checkpoints",
    "PointTransformerConfig.encoder_dims": "tokenizer output width (Point-BERT: 256, then a linear map to "
                                           "`trans_dim`)",
    "PointTransformerConfig.drop_path_rate": "stochastic depth, linearly from 0 to this over the blocks",
    "PointTransformerConfig.tokenizer_projection": "a linear map from `encoder_dims` to `trans_dim` after the "
                                                   "tokenizer (Point-BERT)",
    "PointTransformerConfig.global_tokens": "learned tokens after the cls token that cross-attend the patches "
                                            "(ReCon: img, text)",
    "PointTransformerConfig.block_residual": "where each block's residuals start: the input, or the normalised "
                                             "input (ReCon)",
    "PointTransformerConfig.head": "classification head: `batchnorm` (Point-MAE's) or `light` (Point-BERT's)",
    "PointBackboneConfig.checkpoint_layout": "the official file layouts the backbone loads (set by the model name)",
    "PointPartSegConfig.tokenizer_projection": "a linear map from `encoder_dims` to `trans_dim` after the "
                                               "tokenizer (Point-BERT)",
    "PointPartSegConfig.checkpoint_layout": "the official pre-training layouts the network loads (set by the "
                                            "model name)",
    "PointGPTConfig.decoder_depth": "blocks of the generator (its loss is the auxiliary training loss)",
    "PointPartSegConfig.num_parts": "part labels over all categories",
    "PointPartSegConfig.num_categories": "object categories (one-hot input of the head)",
    "PointPartSegConfig.num_group": "point tokens: FPS centres per cloud",
    "PointPartSegConfig.group_size": "points per group",
    "PointPartSegConfig.trans_dim": "token width",
    "PointPartSegConfig.depth": "transformer blocks",
    "PointPartSegConfig.num_heads": "attention heads",
    "PointPartSegConfig.mlp_ratio": "MLP width / token width",
    "PointPartSegConfig.drop_path_rate": "stochastic depth, linearly from 0 to this over the blocks",
    "PointPartSegConfig.fetch_layers": "blocks whose outputs feed the segmentation head",
    "PointPartSegConfig.label_dim": "width of the category embedding",
    "PointPartSegConfig.propagation_dim": "width of the feature propagation to every point",
    "PointPartSegConfig.head_dropout": "dropout of the per-point head",
    "PointPartSegConfig.fps_backend": "farthest point sampling implementation (all return the same indices)",
    "PointPartSegConfig.exclude_near_origin": "never pick a point with |p|² ≤ 1e-3 after the first, as the CUDA "
                                              "kernel (pointnet2_ops) that trained the official checkpoints",
    "ViTConfig.img_size": "input image side (`pos_embed` of a loaded file is resized to it)",
    "ViTConfig.patch_size": "patch side",
    "ViTConfig.in_chans": "input channels",
    "ViTConfig.num_classes": "classes of the head",
    "ViTConfig.embed_dim": "token width",
    "ViTConfig.depth": "transformer blocks",
    "ViTConfig.num_heads": "attention heads",
    "ViTConfig.mlp_ratio": "MLP width / token width",
    "ViTConfig.qkv_bias": "bias on the qkv projection",
    "ViTConfig.drop_rate": "dropout",
    "ViTConfig.drop_path_rate": "stochastic depth, linearly from 0 to this over the blocks",
    "SyntheticPartsSettings.train_split": "`train`: the generated val split chooses the best epoch",
    "PointGPTConfig.tokenizer": "the tokenizer's widths: `small` (Point-MAE's, PointGPT-S) or `large` (B, L)",
    "AdapterConfig.bottleneck": "hidden width of each block's adapter",
    "AdapterConfig.scale": "factor of the adapter's output added to the MLP's",
    "AdapterConfig.activation": "activation inside the adapter",
    "DAPTConfig.rank": "hidden width of the dynamic adapter (official: 64; ModelNet40 72)",
    "DAPTConfig.adapter_dropout": "dropout inside the adapter (official: 0.2 PB_T50_RS, 0.5 OBJ_BG, 0 OBJ_ONLY and "
                                  "ModelNet40)",
    "DAPTConfig.ssf": "the scale-and-shift layers (`tfts`); false leaves them out (ablation)",
    "DAPTConfig.prompts": "the internal prompts; false leaves them out (ablation)",
    "DAPTConfig.pos_once": "add the positional embedding once, before the first block, as the official code "
                           "(false: before every block)",
    "DAPTConfig.update_frozen_bn_stats": "frozen BatchNorms keep updating their running statistics in training, as "
                                         "in the official runner",
    "IDPTConfig.k": "neighbours of the prompt generator's EdgeConvs",
    "IDPTConfig.head_input": "what the head reads: `all` (cls, prompt, max of patches), `promptonly`, `promptcls`, "
                             "`pointcls`",
    "IDPTConfig.update_frozen_bn_stats": "frozen BatchNorms keep updating their running statistics in training, as "
                                         "in the official runner",
    "LoRAConfig.rank": "rank of the update",
    "LoRAConfig.alpha": "scale numerator: the update is multiplied by `alpha / rank`",
    "LoRAConfig.dropout": "dropout on the LoRA branch's input",
    "LoRAConfig.targets": "block sub-layers that get a LoRA update",
    "PointGSTConfig.rank": "hidden width of the spectral adapter",
    "PointGSTConfig.local": "centres per local group of the local graph bases",
    "PointGSTConfig.basis": "`official`: the official graph basis (reproduces the official logits); `stable`: "
                            "float64, exact distances, fixed signs (another function)",
    "PointGSTConfig.update_frozen_bn_stats": "frozen BatchNorms keep updating their running statistics in training, "
                                             "as in the official runner",
    "PPTConfig.hidden": "hidden width of the three shared MLPs",
    "PPTConfig.gelu_head": "GELU instead of ReLU in the head, as the official model",
    "PPTConfig.update_frozen_bn_stats": "frozen BatchNorms keep updating their running statistics in training, as "
                                        "in the official runner",
    "PromptGeneratorConfig.head_reads_prompts": "the head reads cls, the mean of the prompts and the max of the "
                                                "patches (widens its first layer); false: the backbone's own head "
                                                "input",
    "SMoAConfig.num_experts": "adapters in the shared pool",
    "SMoAConfig.heads": "channel heads each token is split into, each routed on its own",
    "SMoAConfig.bottleneck": "hidden width of each expert",
    "SMoAConfig.router_dim": "width the router projects a token head to before the cosine scores",
    "SMoAConfig.temperature": "softmax temperature of the routing scores",
    "SMoAConfig.top_k": "experts per token head",
    "SMoAConfig.balance_weight": "weight of the load-balancing loss in `aux_loss()`",
    "SMoAConfig.scale": "factor of the pool's output added to the MLP's",
    "SSFConfig.sites": "block sub-layers followed by a scale and shift",
    "SSFConfig.tokenizer": "also after the point tokenizer (the patch embedding on the ViT)",
    "SSFConfig.final_norm": "also after the final norm",
    "SSFConfig.init_std": "initialisation: scale N(1, init_std), shift N(0, init_std)",
    "UnfreezeConfig.patterns": "fnmatch patterns of backbone parameter names that train",
    "VPTConfig.num_prompts": "learned prompt tokens per block",
    "PeftConfig.train_head": "the classification head trains",
    "PeftConfig.train_cls_token": "the cls token (and the point models' cls position) trains",
}

#: the recipe sections, in the order of the page
SETTINGS_SECTIONS = (
    ("train", "TrainSettings"), ("test", "TestSettings"), ("optimizer", "OptimizerSettings"),
    ("scheduler", "SchedulerSettings"), ("augmentation", "AugmentationSettings"), ("pretrain", "PretrainSettings"),
)


# -- text of one row ------------------------------------------------------------------------------------------------

def type_text(annotation) -> str:
    """A readable name of a type annotation (``int or null``, ``one of "x", "y"``, ``list of float``)."""
    if annotation is None or annotation is type(None):
        return "null"
    if annotation is typing.Any:
        return "any"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(_value_text(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(type_text(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        inner = [a for a in args if a is not Ellipsis]
        return "list of " + type_text(inner[0]) if inner else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type):
        return annotation.__name__
    if isinstance(annotation, str):
        return annotation
    return str(annotation).replace("typing.", "")


def _value_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    return repr(value)


def default_text(value) -> str:
    return f"`{_value_text(value)}`"


def range_text(metadata) -> str:
    """``≥ 1``, ``> 0, < 1`` from pydantic's constraint metadata."""
    parts = []
    for item in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def source_comments(cls) -> dict[str, str]:
    """``{field: comment}`` from ``name: type = value  # comment`` lines of ``cls`` and its bases."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass.__module__ == "builtins":
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        lines: dict[int, list[tokenize.TokenInfo]] = {}
        try:
            for token in tokenize.generate_tokens(io.StringIO(source).readline):
                lines.setdefault(token.start[0], []).append(token)
        except (tokenize.TokenError, IndentationError):
            continue
        for tokens in lines.values():
            code = [t for t in tokens if t.type not in (tokenize.INDENT, tokenize.DEDENT, tokenize.NL,
                                                         tokenize.NEWLINE, tokenize.COMMENT)]
            comment = [t for t in tokens if t.type == tokenize.COMMENT]
            if (comment and len(code) >= 2 and code[0].type == tokenize.NAME and code[1].string == ":"
                    and code[0].start[1] > 0):
                comments[code[0].string] = comment[0].string.lstrip("#").strip()
    return comments


def own_doc(cls) -> str:
    """The first paragraph of the class's own docstring (none inherited from pydantic or a base class, none that a
    dataclass makes up from its signature)."""
    doc = cls.__dict__.get("__doc__") or ""
    doc = inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ") if doc else ""
    doc = re.sub(r":(?:func|class|meth|mod|attr):`~?([^`]+)`", r"`\1`", re.sub(r"``([^`]+)``", r"`\1`", doc))
    if doc.startswith(cls.__name__ + "(") or any(doc and doc == (base.__dict__.get("__doc__") or "").strip()
                                                  for base in cls.__mro__[1:]):
        return ""
    return doc


def meaning(owner, name: str, description: str | None, comments: dict[str, str]) -> str:
    """The field's description, else its source comment, else a ``NOTES`` entry of its class or a base."""
    if description:
        return description
    if comments.get(name) and not comments[name].startswith("noqa"):
        return comments[name]
    for klass in owner.__mro__:
        note = NOTES.get(f"{klass.__name__}.{name}")
        if note:
            return note
    return "—"


# -- tables -----------------------------------------------------------------------------------------------------------

def pydantic_table(section, skip: tuple[str, ...] = ()) -> str:
    """``| key | type | default | meaning |`` of a pydantic section."""
    comments = source_comments(section)
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in section.model_fields.items():
        if name in skip:
            continue
        kind = type_text(field.annotation)
        limits = range_text(field.metadata)
        if limits:
            kind = f"{kind}, {limits}"
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = default_text(field.default_factory())
        else:
            default = default_text(field.default)
        rows.append(f"| `{name}` | {cell(kind)} | {cell(default)} | "
                    f"{cell(meaning(section, name, field.description, comments))} |")
    return "\n".join(rows)


def model_defaults(names: list[str]) -> dict[str, dict]:
    """Each registered model's option defaults, read from a model built on the meta device (builders set their
    own, e.g. PointGPT-L's width); the config class's defaults when a model keeps no ``config``."""
    import torch

    from pcpeft.models.registry import _MODELS, create_model

    out = {}
    for name in names:
        config_cls = getattr(_MODELS[name], "config_class")
        try:
            with torch.device("meta"):
                config = getattr(create_model(name), "config", None)
        except Exception as err:  # a builder that cannot run without data: fall back to the class defaults
            LOG.info(f"{PAGE}: {name} not built on the meta device ({err}); class defaults shown")
            config = None
        if not dataclasses.is_dataclass(config):
            config = config_cls()
        out[name] = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return out


def model_tables() -> str:
    """One table per model config class, with one default column per registered model that uses it."""
    from pcpeft.models.registry import _MODELS, list_models

    groups: dict[type, list[str]] = {}
    for name in list_models():
        config_cls = getattr(_MODELS[name], "config_class", None)
        if config_cls is not None and dataclasses.is_dataclass(config_cls):
            groups.setdefault(config_cls, []).append(name)
    out = []
    for config_cls, names in groups.items():
        hints = typing.get_type_hints(config_cls)
        comments = source_comments(config_cls)
        defaults = model_defaults(names)
        doc = own_doc(config_cls)
        header = "| key | type | " + " | ".join(f"`{n}`" for n in names) + " | meaning |"
        rows = [header, "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
        rows.append("| `name` | string | " + " | ".join(f"`\"{n}\"`" for n in names) + " | the registered model |")
        for item in dataclasses.fields(config_cls):
            values = " | ".join(cell(default_text(defaults[n][item.name])) for n in names)
            rows.append(f"| `{item.name}` | {cell(type_text(hints.get(item.name, item.type)))} | {values} | "
                        f"{cell(meaning(config_cls, item.name, None, comments))} |")
        title = ", ".join(f"`{n}`" for n in names)
        out.append(f"### Models {title}\n\n{cell(doc)}\n\n" + "\n".join(rows))
    return "\n\n".join(out)


def method_tables() -> str:
    """The options of every PEFT method (the keys of a ``peft: {method: ...}`` mapping) and the presets."""
    from pcpeft.peft import PRESETS, list_methods, resolve_configs
    from pcpeft.peft.base import config_from_dict

    out = []
    for name in list_methods():
        config = config_from_dict({"method": name})
        cls = type(config)
        hints = typing.get_type_hints(cls)
        comments = source_comments(cls)
        doc = own_doc(cls)
        rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for item in dataclasses.fields(cls):
            rows.append(f"| `{item.name}` | {cell(type_text(hints.get(item.name, item.type)))} | "
                        f"{cell(default_text(getattr(config, item.name)))} | "
                        f"{cell(meaning(cls, item.name, None, comments))} |")
        out.append(f"#### `{name}`\n\n{cell(doc)}\n\n" + "\n".join(rows))
    presets = ["| preset | methods it stands for |", "| --- | --- |"]
    for name in sorted(PRESETS):
        methods = ", ".join(f"`{c.method}`" for c in resolve_configs(name))
        presets.append(f"| `{name}` | {methods} |")
    return "\n\n".join(out) + "\n\n#### Presets\n\n" + "\n".join(presets)


def section_parts(heading: str, section) -> list[str]:
    """A settings section's heading, its own docstring (when it has one) and its table of keys."""
    doc = own_doc(section)
    return [heading + "\n", *([cell(doc) + "\n"] if doc else []), pydantic_table(section)]


def reference() -> str:
    from pcpeft.engine.data import dataset_sections
    from pcpeft.engine.recipe import schema

    parts = ["## Top level\n", "Besides these keys, `_base_` names recipe files (one or a list, relative to this "
             "one) merged underneath, in order.\n", pydantic_table(schema.Recipe, skip=SETTINGS_NAMES)]
    for key, class_name in SETTINGS_SECTIONS:
        parts += section_parts(f"## `{key}` ({class_name})", getattr(schema, class_name))
    parts.append("## `dataset`: one section per data set\n\n`dataset.name` chooses the section; its keys are "
                 "checked against that section only.")
    for name, section in dataset_sections().items():
        parts += section_parts(f"### `dataset.name: {name}` ({section.__name__})", section)
    parts.append("## `model`: one section per model config\n\n`model.name` chooses the model; its keys are the "
                 "keyword options of `pcpeft.create_model`. The columns give each model's defaults.")
    parts.append(model_tables())
    parts.append("## `peft`: the options of each method\n\nA `peft` mapping names the `method` and any of its "
                 "options, e.g. `peft: {method: dapt, rank: 72, adapter_dropout: 0.0}`; a list composes methods. "
                 "Every method also takes the two keys of `PeftConfig` (`train_head`, `train_cls_token`) unless it "
                 "fixes them.")
    parts.append(method_tables())
    return "\n\n".join(parts) + "\n"


SETTINGS_NAMES = tuple(key for key, _ in SETTINGS_SECTIONS)


#: a parenthesis that only cites the development notes some recipe comments name; they are not part of the
#: repository, so the page leaves the citation out
NOTES_CITATION = re.compile(r"\s*\((?:see )?(?:\.\./)?(?:shared[/])?reference[\w.-]*\.md\)", re.IGNORECASE)


def shipped_list() -> str:
    from pcpeft.engine.recipe.shipped import RECIPES_DIR, shipped_recipes

    rows = ["| recipe | what it is |", "| --- | --- |"]
    for name in shipped_recipes():
        summary = ""
        for line in (RECIPES_DIR / f"{name}.yaml").read_text().splitlines():
            if line.startswith("#"):
                summary = line.lstrip("# ").strip()
                break
            if line.strip():
                break
        rows.append(f"| `{name}` | {cell(NOTES_CITATION.sub('', summary))} |")
    return "\n".join(rows)


def _check_notes() -> None:
    """Warn (fails --strict) about NOTES entries whose key the code no longer has."""
    from pcpeft.engine.recipe import schema
    from pcpeft.models import backbone_base, point_partseg, point_transformer, pointgpt, vit
    from pcpeft.peft import base, list_methods

    classes = {name: obj for module in (schema, backbone_base, point_partseg, point_transformer, pointgpt, vit, base)
               for name, obj in vars(module).items() if isinstance(obj, type)}
    classes.update({type(base.config_from_dict({"method": m})).__name__: type(base.config_from_dict({"method": m}))
                    for m in list_methods()})
    for key in NOTES:
        class_name, _, field = key.partition(".")
        cls = classes.get(class_name)
        if cls is None:
            LOG.warning(f"{PAGE}: NOTES names the class {class_name!r}, which pcpeft no longer has")
            continue
        fields = set(getattr(cls, "model_fields", {})) or (
            {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set())
        if field not in fields:
            LOG.warning(f"{PAGE}: NOTES describes {key}, which is not a key any more")


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    import_checkout(config)
    for placeholder in (TABLES_PLACEHOLDER, SHIPPED_PLACEHOLDER):
        if placeholder not in markdown:
            raise PluginError(f"{PAGE} lost its placeholder {placeholder}")
    _check_notes()
    markdown = markdown.replace(TABLES_PLACEHOLDER, reference())
    return markdown.replace(SHIPPED_PLACEHOLDER, shipped_list())
