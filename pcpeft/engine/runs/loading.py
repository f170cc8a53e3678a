"""A finished run folder as a model: ``pcpeft.load_run(RUN_DIR)``.

A run folder (``tools/train.py``) holds ``config.yaml`` (the resolved recipe plus a ``run`` section: seed, method,
``--ckpts`` with its absolute path and sha256, the class names) and tensors-only checkpoints: ``ckpt-best.pth``
(the whole backbone for full fine-tuning, the adapter tensors otherwise), ``adapter-best/`` (safetensors) and
``ckpt-last.pth``. :func:`load_run` reads nothing else. A PEFT run's adapter needs the backbone it was trained on:
the file recorded in the run (or ``backbone=``), whose sha256 must equal the recorded one; a run that started
from a random initialisation re-creates it from its seed. The adapter's backbone fingerprint is checked as well.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import yaml

from ...errors import UserError
from ...models.checkpoints import CheckpointError, read_checkpoint_file
from ...peft import PeftModel, config_from_dict, get_peft_model
from ..recipe.schema import recipe_section

LOG = logging.getLogger("pcpeft")


class RunLoadError(UserError, ValueError):
    """A run folder cannot be turned into a model (no config, no checkpoint, no backbone file)."""


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes; computed once per path, size and modification time."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def backbone_file_record(ckpts: str | os.PathLike) -> dict:
    """What a run records about its ``--ckpts`` file: ``ckpts_path`` (absolute) and ``ckpts_sha256``."""
    path = Path(ckpts)
    if not path.is_file():
        return {}
    return {"ckpts_path": str(path.resolve()), "ckpts_sha256": file_sha256(path)}


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed python, numpy and torch as the trainer does, restoring the caller's random states afterwards."""
    from ..training.seeding import seed_everything

    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        seed_everything(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """The run's ``config.yaml`` (the recipe as trained, with its ``run`` section)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunLoadError(f"{run_dir}: not a run folder (no config.yaml); give the folder tools/train.py wrote, "
                           f"e.g. experiments/<recipe>/<exp_name>")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        from ..recipe.yaml_io import yaml_error

        raise RunLoadError(str(yaml_error(path, err))) from None
    if not isinstance(config, dict) or "model" not in config:
        raise RunLoadError(f"{path}: not a run's config.yaml (no model section)")
    return config


def _backbone_file(run_dir: Path, record: dict, backbone: str | os.PathLike | None) -> Path | None:
    """The pretrained file the run's adapter was trained on (None: the run started from a random init)."""
    if backbone is not None:
        path = Path(backbone)
        if not path.is_file():
            raise RunLoadError(f"backbone={str(backbone)!r}: no such file")
    elif record.get("ckpts"):
        candidates = [record.get("ckpts_path"), record["ckpts"], run_dir / str(record["ckpts"])]
        found = [Path(c) for c in candidates if c and Path(c).is_file()]
        if not found:
            raise RunLoadError(f"{run_dir} was trained on the backbone {record['ckpts']} "
                               f"(sha256 {str(record.get('ckpts_sha256', 'not recorded'))[:16]}...), which is not "
                               f"there any more: pass it with backbone=... (tools: --backbone)")
        path = found[0]
    else:
        return None
    expected = record.get("ckpts_sha256")
    if expected:
        actual = file_sha256(path)
        if actual != expected:
            raise CheckpointError(f"{path}: sha256 {actual[:16]}... is not that of the backbone the run {run_dir} "
                                  f"was trained on ({record.get('ckpts')}, sha256 {expected[:16]}...)")
    return path


def _run_configs(state: dict, record: dict, path: Path) -> list:
    specs = state.get("peft") or record.get("peft")
    if not isinstance(specs, list):
        raise RunLoadError(f"{path}: no method record ('peft') in the checkpoint")
    return [config_from_dict(spec) for spec in specs]


def load_run(run_dir: str | os.PathLike, backbone: str | os.PathLike | None = None,
             device: str | torch.device = "cpu", checkpoint: str = "best") -> PeftModel:
    """The fine-tuned model of a run folder, in eval mode, on ``device``.

    Args:
        run_dir: the folder ``tools/train.py`` wrote (``config.yaml``, ``ckpt-best.pth``, ...).
        backbone: the pretrained file of a PEFT run (default: the file recorded in the run); its sha256 is checked
            against the recorded one.
        checkpoint: 'best' (the epoch ``results.json`` calls best) or 'last'.
    Returns:
        a :class:`PeftModel` (points (B, N, 3) -> logits (B, classes)) with ``class_names`` (tuple of str),
        ``run_config`` (the run's config.yaml as a dict) and ``run_dir``.
    """
    from ..recipe.schema import validate_recipe
    from ..training.model_setup import create_backbone, load_pretrained
    from .training_state import restore_model_payload

    if checkpoint not in ("best", "last"):
        raise RunLoadError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    record = recipe_section(config, "run")
    settings = validate_recipe(config, str(run_dir / "config.yaml"))
    ckpt = run_dir / f"ckpt-{checkpoint}.pth"
    if not ckpt.is_file():
        raise RunLoadError(f"{run_dir}: no {ckpt.name} (the run has not finished an evaluated epoch)")
    state = read_checkpoint_file(ckpt)
    configs = _run_configs(state, record, ckpt)
    full = state.get("base_model") is not None
    with _seeded(int(record.get("seed", 0))):
        net = create_backbone(settings)
        if not full:
            pretrained = _backbone_file(run_dir, record, backbone)
            if pretrained is not None:
                load_pretrained(net, str(pretrained), bool(record.get("allow_partial_load", False)))
    adapter = run_dir / "adapter-best"
    if not full and checkpoint == "best" and adapter.is_dir():
        model = PeftModel.from_pretrained(net, adapter)  # checks the backbone fingerprint too
    else:
        model = get_peft_model(net, configs)
        restore_model_payload(model, state, ckpt)
    count = net.num_categories if settings.task == "partseg" else settings.num_classes  # partseg: its categories
    names = record.get("class_names") or [str(i) for i in range(count)]
    if len(names) != count:
        raise RunLoadError(f"{run_dir / 'config.yaml'}: {len(names)} class names for {count} classes")
    model.class_names = tuple(names)
    model.run_config = config
    model.run_dir = run_dir
    return model.to(device).eval()


__all__ = ["RunLoadError", "backbone_file_record", "file_sha256", "load_run", "read_run_config"]
