"""The recipe schema: every key a recipe may hold, its type and its range, checked before any work starts.

Why pydantic: it is the well-kept standard for typed, validated settings in Python (v2, Rust core), gives a
typed object the trainer reads (``settings.train.batch_size``), and reports every bad key at once with its
dotted location; ``extra="forbid"`` turns a typo into an error, and :func:`validate_recipe` adds the closest
valid key to the message.

The ``model`` section is checked against the chosen model's own options (``create_model``'s config dataclass),
so a new backbone needs no schema change. ``dataset`` is checked against the section of its ``name``.
"""
from __future__ import annotations

import difflib
import typing
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .yaml_io import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class TrainSettings(Section):
    batch_size: int = Field(32, ge=1, description="clouds per optimiser step (over all processes)")
    drop_last: bool = Field(True, description="drop the last incomplete batch; false allows batch_size > data set")
    amp: bool = Field(True, description="mixed precision (CUDA fp16)")
    amp_cpu: bool = Field(False, description="bf16 autocast on CPU where it is native (AVX-512 BF16 / AMX), else "
                                             "fp32 with a logged reason; opt-in (--amp), independent of amp")
    aux_loss_weight: float = Field(1.0, ge=0)
    eval_every: int = Field(1, ge=1)
    grad_clip: Optional[float] = Field(10.0, ge=0, description="0 or null: no clipping")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    num_workers: int = Field(0, ge=0)
    require_pretrained: bool = False


class TestSettings(Section):
    __test__ = False  # not a pytest class

    batch_size: Optional[int] = Field(None, ge=1, description="default: train.batch_size")
    vote_times: int = Field(10, ge=1)


class OptimizerSettings(Section):
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.05, ge=0)


class SchedulerSettings(Section):
    epochs: int = Field(300, ge=1)
    warmup_epochs: int = Field(10, ge=0)
    warmup_lr: float = Field(1e-6, ge=0)
    min_lr: float = Field(1e-6, ge=0)
    cosine_epochs: Optional[int] = Field(None, ge=1, description="length of the cosine (default: epochs); later "
                                                                 "epochs run at min_lr")


class AugmentationSettings(Section):
    scale_translate: bool = True
    rotate: bool = False
    up_axis: Literal["x", "y", "z"] = "y"
    rotate_per: Literal["cloud", "batch"] = Field("cloud", description="one random angle per cloud, or one for the "
                                                                      "whole batch (GAPrompt's runner)")
    hflip: bool = False


class PretrainSettings(Section):
    mask_ratio: float = Field(0.6, gt=0, lt=1)
    decoder_depth: int = Field(4, ge=1)
    decoder_num_heads: Optional[int] = Field(None, ge=1)


class PointDataset(Section):
    name: str
    root: Optional[str] = None
    npoints: int = Field(1024, ge=1)
    val_fraction: float = Field(0.0, ge=0, lt=1, description="share of each training class held out for validation")
    val_seed: int = Field(0, description="which samples the validation split holds")


class ScanObjectNNSettings(PointDataset):
    split: Literal["OBJ_BG", "OBJ_ONLY", "PB_T50_RS"] = "OBJ_BG"
    npoints: int = Field(2048, ge=1)


class ModelNet40Settings(PointDataset):
    cache_points: int = Field(8192, ge=1)
    format: Literal["resampled", "h5"] = "resampled"
    num_category: Literal[10, 40] = 40


class ModelNetFewShotSettings(PointDataset):
    way: int = Field(ge=1)
    shot: int = Field(ge=1)
    fold: int = Field(ge=0)


class SyntheticDemoSettings(PointDataset):
    split: Literal["OBJ_BG"] = Field("OBJ_BG", description="the demo set is written in the OBJ_BG layout only")
    train_per_class: Optional[int] = Field(None, ge=1, description="default: as generated (80 for a new set)")
    test_per_class: Optional[int] = Field(None, ge=1, description="default: as generated (25 for a new set)")
    generator_seed: Optional[int] = Field(None, description="default: as generated (0 for a new set)")


class PointCloudFolderSettings(PointDataset):
    """Your own files: ROOT/<class>/<file> or ROOT/{train,test,val}/<class>/<file> (pcpeft.datasets.point_folder).
    Without ``model.num_classes`` the recipe takes the number of class folders."""

    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of each class held out as the test split "
                                                               "when ROOT has no train/ and test/ folders")
    split_seed: int = Field(0, description="which files the seeded test split holds")
    mesh_points: int = Field(10000, ge=1, description="surface samples of a mesh (.off) before FPS to npoints")
    upsample: bool = Field(False, description="repeat points of a file with fewer than npoints (default: refuse)")
    nan_points: Literal["error", "drop"] = Field("error", description="a point with NaN coordinates: refuse the "
                                                                      "file, or drop the point")
    cache: bool = Field(True, description="keep the prepared clouds (keyed by files, sizes, mtimes, settings)")
    cache_dir: Optional[str] = Field(None, description="default: ROOT/.pcpeft-cache")


class ShapeNetPartSettings(PointDataset):
    """The official ShapeNetPart folder (``shapenetcore_partanno_segmentation_benchmark_v0_normal``)."""

    npoints: int = Field(2048, ge=1)
    normal_channel: bool = Field(False, description="feed the normals too (the official default: xyz only)")
    train_split: Literal["trainval", "train"] = Field(
        "trainval", description="trainval: the official training data, best epoch chosen on test (flagged); "
                                "train: keep the val split to choose the best epoch on")


class SyntheticPartsSettings(ShapeNetPartSettings):
    """The embedded synthetic part-segmentation set (ShapeNetPart layout; generated on first use)."""

    npoints: int = Field(1024, ge=1)
    train_split: Literal["trainval", "train"] = "train"
    train_per_category: int = Field(40, ge=1)
    val_per_category: int = Field(10, ge=1)
    test_per_category: int = Field(15, ge=1)
    generator_seed: int = 0


class ImageDataset(Section):
    name: str
    root: Optional[str] = None
    img_size: int = Field(224, ge=1)
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None


class VTABSettings(ImageDataset):
    train_list: str = "train800val200.txt"
    test_list: str = "test.txt"


class HeldOutImageDataset(ImageDataset):
    """An image set held in memory with its labels, from whose training split a validation split can be carved."""

    val_fraction: float = Field(0.0, ge=0, lt=1, description="share of each training class held out for validation")
    val_seed: int = Field(0, description="which samples the validation split holds")


class GeneratedImagesSettings(HeldOutImageDataset):
    """The procedural glyph set (pcpeft.datasets.generated_images), generated in memory from ``generator_seed``;
    normalised with 0.5 / 0.5 unless ``mean`` / ``std`` are set."""

    num_classes: int = Field(100, ge=2, description="glyph classes (the model's num_classes must match)")
    train_per_class: int = Field(250, ge=1)
    test_per_class: int = Field(20, ge=1)
    generator_seed: int = Field(0, description="which glyphs and which samples of them")
    raw_size: int = Field(8, ge=2, description="side of the ink-coverage map, resized to img_size")



PeftSpecSetting = Union[None, str, dict[str, Any], list[Union[str, dict[str, Any]]]]


class Recipe(Section):
    """A whole recipe after ``_base_`` merging and ``--opts``; ``model`` and ``dataset`` are checked separately."""

    task: Literal["classification", "partseg"] = Field("classification", description="what the model predicts")
    model: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any]
    peft: PeftSpecSetting = None
    train: TrainSettings = Field(default_factory=TrainSettings)
    test: TestSettings = Field(default_factory=TestSettings)
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    augmentation: AugmentationSettings = Field(default_factory=AugmentationSettings)
    pretrain: PretrainSettings = Field(default_factory=PretrainSettings)
    run: Optional[dict[str, Any]] = Field(None, description="provenance a run writes into its config.yaml")


class Settings:
    """A validated recipe: typed sections (``settings.train.batch_size``), the model spec and the dataset spec."""

    def __init__(self, recipe: Recipe, model: dict[str, Any], dataset: Section, raw: dict) -> None:
        self.recipe, self.model, self.dataset, self.raw = recipe, model, dataset, raw
        self.train, self.test = recipe.train, recipe.test
        self.optimizer, self.scheduler = recipe.optimizer, recipe.scheduler
        self.augmentation, self.pretrain, self.peft = recipe.augmentation, recipe.pretrain, recipe.peft
        self.task = recipe.task

    @property
    def model_name(self) -> str:
        return self.model.get("name", "point_mae")

    @property
    def model_options(self) -> dict[str, Any]:
        """The ``create_model`` keyword arguments (the model section without ``name``)."""
        return {k: v for k, v in self.model.items() if k != "name"}

    @property
    def dataset_kind(self):
        """The registered data set the dataset section names (:class:`pcpeft.engine.data.DatasetKind`)."""
        from ..data.registry import dataset_kind

        return dataset_kind(self.dataset.name)

    @property
    def modality(self) -> str:
        """``"points"`` or ``"images"``: what the data set's samples are."""
        return self.dataset_kind.modality

    @property
    def synthetic(self) -> bool:
        """The data set is generated by pcpeft (results say so)."""
        return self.dataset_kind.synthetic

    @property
    def num_classes(self) -> int:
        if "num_classes" not in self.model:
            raise ConfigError("model.num_classes is not set")
        return self.model["num_classes"]

    @property
    def val_fraction(self) -> float:
        """Share of each training class held out for validation (0: none; ImageFolder and VTAB have none)."""
        return getattr(self.dataset, "val_fraction", 0.0)

    @property
    def eval_batch_size(self) -> int:
        return self.test.batch_size or self.train.batch_size


def _closest(key: str, valid: typing.Iterable[str], prefix: str = "") -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {prefix + match[0]!r}?)" if match else ""


def _section_fields(section: type[BaseModel] | None) -> list[str]:
    return list(section.model_fields) if section is not None else []


def _short(value: Any) -> str:
    """``repr(value)`` cut to a line: a recipe value may be a list of thousands of entries."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    try:
        return short.repr(value)
    except ValueError:  # an integer too long to print
        return "<a number too long to print>"


def _format_errors(err: ValidationError, source: str, root: type[BaseModel], prefix: str = "") -> ConfigError:
    lines = []
    for item in err.errors():
        loc = [str(p) for p in item["loc"]]
        dotted = prefix + ".".join(loc)
        if item["type"] == "extra_forbidden":
            owner: Any = root
            for part in loc[:-1]:
                annotation = owner.model_fields[part].annotation if owner and part in owner.model_fields else None
                owner = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
            hint = _closest(loc[-1], _section_fields(owner), prefix + "".join(f"{p}." for p in loc[:-1]))
            valid = ", ".join(_section_fields(owner))
            lines.append(f"unknown key {dotted!r}{hint}; valid keys here: {valid}")
        else:
            lines.append(f"{dotted} = {_short(item.get('input'))}: {item['msg']}")
    return ConfigError(f"{source}: invalid recipe:\n  " + "\n  ".join(lines) if len(lines) > 1
                       else f"{source}: invalid recipe: {lines[0]}")


_MODEL_SCHEMAS: dict[str, type[BaseModel]] = {}


def _model_schema(name: str) -> type[BaseModel] | None:
    """A pydantic model of a registered model's options, from its config dataclass's typed fields."""
    import dataclasses

    from ...models.registry import _MODELS, list_models

    if name in _MODEL_SCHEMAS:
        return _MODEL_SCHEMAS[name]
    list_models()
    config_cls = getattr(_MODELS[name], "config_class", None)
    if config_cls is None or not dataclasses.is_dataclass(config_cls):
        return None
    hints = typing.get_type_hints(config_cls)
    fields = {}
    for item in dataclasses.fields(config_cls):
        default = item.default if item.default is not dataclasses.MISSING else (
            item.default_factory() if item.default_factory is not dataclasses.MISSING else ...)
        fields[item.name] = (hints.get(item.name, Any), default)
    schema = create_model(f"{name}_options", __config__=ConfigDict(extra="forbid"), name=(str, name), **fields)
    _MODEL_SCHEMAS[name] = schema
    return schema


def _validate_model(spec: Any, source: str, needs_classes: bool = True) -> dict[str, Any]:
    from ...models.registry import list_models

    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: invalid recipe: 'model' must be a section (a mapping), found {spec!r}")
    spec = dict(spec)
    name = spec.setdefault("name", "point_mae")
    models = list_models()
    if name not in models:
        raise ConfigError(f"{source}: invalid recipe: model.name {name!r} is not a model{_closest(str(name), models)}; "
                          f"available: {', '.join(models)}")
    if needs_classes and "num_classes" not in spec:
        raise ConfigError(f"{source}: invalid recipe: model.num_classes is not set")
    schema = _model_schema(name)
    if schema is None:
        return spec
    try:
        schema.model_validate(spec)
    except ValidationError as err:
        raise _format_errors(err, source, schema, prefix="model.") from None
    return spec


def validate_dataset_section(spec: Any, source: str) -> Section:
    """A ``dataset`` mapping validated against the typed section of the registered data set it names."""
    from ..data.registry import dataset_sections

    sections = dataset_sections()
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: invalid recipe: 'dataset' must be a section (a mapping), found {spec!r}")
    name = spec.get("name")
    if not isinstance(name, str) or name not in sections:
        raise ConfigError(f"{source}: invalid recipe: dataset.name {name!r} is not a data set"
                          f"{_closest(str(name), sections)}; available: {', '.join(sections)}")
    section = sections[name]
    try:
        return section.model_validate(spec)
    except ValidationError as err:
        raise _format_errors(err, source, section, prefix="dataset.") from None


def _with_folder_classes(config: dict) -> tuple[dict, bool]:
    """(config, classes_unknown). A PointCloudFolder recipe without ``model.num_classes`` gets a copy with the number
    of class folders filled in; when its root does not exist (yet) the count stays unknown (True), and building
    the data set reports the missing folder. Every other recipe: (``config`` itself, False)."""
    dataset, model = config.get("dataset"), config.get("model", {})
    if not (isinstance(dataset, dict) and dataset.get("name") == "PointCloudFolder" and dataset.get("root")
            and isinstance(model, dict) and "num_classes" not in model):
        return config, False
    from pathlib import Path

    from ...datasets.point_folder import class_names

    root = dataset["root"]
    if not isinstance(root, str) or "\0" in root or not Path(root).is_dir():  # the dataset check names a bad root
        return config, True
    return {**config, "model": {**model, "num_classes": len(class_names(dataset["root"]))}}, False


def validate_recipe(config: dict, source: str = "recipe", task: Literal["finetune", "pretrain"] = "finetune"
                    ) -> Settings:
    """Check a merged recipe dict; returns typed :class:`Settings` or raises one :class:`ConfigError` that lists
    every unknown key (with the closest valid one), wrong type and out-of-range value, naming ``source``.
    A pre-training recipe (``task='pretrain'``) needs no ``model.num_classes``."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping")
    try:
        recipe = Recipe.model_validate(config)
    except ValidationError as err:
        raise _format_errors(err, source, Recipe) from None
    classes_unknown = False
    if task == "finetune":
        config, classes_unknown = _with_folder_classes(config)
    needs_classes = task == "finetune" and not classes_unknown and recipe.task == "classification"
    if task == "finetune" and isinstance(config.get("model"), dict):
        _check_task(recipe.task, config["model"].get("name", "point_mae"), config["dataset"].get("name"), source)
    model = _validate_model(config.get("model", {}), source, needs_classes=needs_classes)
    dataset = validate_dataset_section(config["dataset"], source)
    return Settings(recipe, model, dataset, config)


def _check_task(task: str, model: str, dataset: str | None, source: str) -> None:
    """A part-segmentation recipe needs a part-segmentation model and a part data set, and only it may use them."""
    from ...models.registry import list_models, model_task
    from ..data.registry import dataset_kind, list_datasets

    seg_models = [name for name in list_models() if model_task(name) == "partseg"]
    seg_sets = [name for name in list_datasets() if dataset_kind(name).task == "partseg"]
    seg_model, seg_data = model in seg_models, dataset in seg_sets
    if task == "partseg" and not (seg_model and seg_data):
        raise ConfigError(f"{source}: invalid recipe: task partseg needs a part-segmentation model (model.name "
                          f"{', '.join(seg_models)}; got {model!r}) and a part data set "
                          f"({', '.join(seg_sets)}; got {dataset!r})")
    if task == "classification" and (seg_model or seg_data):
        raise ConfigError(f"{source}: invalid recipe: model {model!r} / dataset {dataset!r} are for part "
                          f"segmentation: set `task: partseg`")


def recipe_section(config: Any, key: str) -> dict[str, Any]:
    """Section ``key`` of a recipe mapping as a new dict ({} when the recipe, or the section, is not a mapping):
    how code outside the schema reads the parts a run records untyped (``run``, a stored ``model`` section)."""
    if not isinstance(config, dict) or not isinstance(config.get(key), dict):
        return {}
    return dict(config[key])


def section_difference(before: dict[str, Any], after: dict[str, Any], prefix: str) -> str:
    """``prefix.key: old -> new`` for every key whose value differs between two sections ('' when none does)."""
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return ", ".join(f"{prefix}.{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys)


def validate_dataset_recipe(config: dict, source: str = "recipe") -> Section:
    """Check only the ``dataset`` section of a recipe (the data-set recipes ``cfgs/datasets/*.yaml``)."""
    if not isinstance(config, dict) or "dataset" not in config:
        raise ConfigError(f"{source}: a data-set recipe needs a 'dataset' section")
    return validate_dataset_section(config["dataset"], source)


def as_settings(config: "dict | Settings", source: str = "recipe") -> Settings:
    """``config`` itself when it is already validated, else :func:`validate_recipe` of it."""
    return config if isinstance(config, Settings) else validate_recipe(config, source)


__all__ = ["Settings", "as_settings", "validate_recipe", "validate_dataset_section", "Recipe"]
