"""The image data sets of the 2D branch: the embedded digits, a folder of images, VTAB lists and the procedural
glyphs, each built from its typed recipe section."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..recipe.schema import GeneratedImagesSettings, HeldOutImageDataset, ImageDataset, VTABSettings
from .registry import register_dataset, require_root


def _normalisation(settings: ImageDataset) -> dict:
    """``mean`` / ``std`` of the section, ImageNet's where unset."""
    from ...datasets.images import IMAGENET_MEAN, IMAGENET_STD

    mean = IMAGENET_MEAN if settings.mean is None else settings.mean
    std = IMAGENET_STD if settings.std is None else settings.std
    return {"mean": tuple(mean), "std": tuple(std)}


@register_dataset("Digits", HeldOutImageDataset, modality="images")
def digits(settings: HeldOutImageDataset, subset: str, seed: int | None = None) -> Dataset:
    """scikit-learn's 8x8 digits, resized to ``img_size``."""
    from ...datasets.images import Digits

    return Digits(subset, settings.img_size)


@register_dataset("ImageFolder", ImageDataset, modality="images")
def image_folder(settings: ImageDataset, subset: str, seed: int | None = None) -> Dataset:
    """ROOT/<subset>/<class>/<image>."""
    from ...datasets.images import image_folder as folder

    return folder(Path(require_root(settings)) / subset, settings.img_size, **_normalisation(settings))


@register_dataset("VTAB", VTABSettings, modality="images")
def vtab(settings: VTABSettings, subset: str, seed: int | None = None) -> Dataset:
    """A VTAB-1k task: images listed with their labels in ``train_list`` / ``test_list`` under ROOT."""
    from ...datasets.images import vtab_list

    lists = {"train": settings.train_list, "test": settings.test_list}
    return vtab_list(require_root(settings), lists[subset], settings.img_size, **_normalisation(settings))


@register_dataset("GeneratedImages", GeneratedImagesSettings, modality="images", synthetic=True)
def generated_images(settings: GeneratedImagesSettings, subset: str, seed: int | None = None) -> Dataset:
    """The procedural glyphs, generated in memory; ``mean`` / ``std`` default to 0.5 as for Digits."""
    from ...datasets.generated_images import GeneratedImages

    norm = {key: tuple(getattr(settings, key)) for key in ("mean", "std") if getattr(settings, key) is not None}
    return GeneratedImages(subset, settings.img_size, num_classes=settings.num_classes,
                           train_per_class=settings.train_per_class, test_per_class=settings.test_per_class,
                           generator_seed=settings.generator_seed, raw_size=settings.raw_size, **norm)
