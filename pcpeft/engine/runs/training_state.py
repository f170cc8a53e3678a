"""Atomic checkpoint files: written to a temporary file in the same folder, then renamed over the target.

Training checkpoints hold only tensors, numbers, strings and containers, so they are read back with the
weights-only unpickler like every other file (:mod:`pcpeft.io.safe_torch`).
"""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch

from ...errors import UserError
from ...io.safe_pickle import RefusedPickleError
from ...io.safe_torch import safe_torch_load
from ...models.checkpoints import CheckpointError

LOG = logging.getLogger("pcpeft")
TEMP_PATTERN = ".*.tmp-*"


class DiskFullError(UserError, OSError):
    """The disk filled up while a checkpoint was written; the previous checkpoint is untouched."""


#: what torch's zip writer says when a write of a checkpoint fails part-way (on a full disk, in practice)
TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed", "inline_container.cc", "iostream error")


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (raised while a file was written) is a full disk or an exhausted quota: ``OSError``
    ENOSPC / EDQUOT, or the ``RuntimeError`` torch's zip writer raises when a write comes up short."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(err)
    text = str(err)
    return "No space left" in text or any(marker in text for marker in TORCH_WRITE_FAILURES)


def save_atomic(payload: Any, path: str | Path) -> Path:
    """torch.save ``payload`` to ``path`` so a crash (or a full disk) never leaves a truncated file behind. A full
    disk is a :class:`DiskFullError` naming ``path`` (the previous file at ``path`` is left as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            raise DiskFullError(f"disk full while writing {path}: free some space and rerun with --resume "
                                f"(the previous checkpoint, if any, is intact)") from None
        raise
    return path


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete half-written ``.<name>.tmp-<pid>`` files a killed run left in ``folder``; returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(TEMP_PATTERN):
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
    if removed:
        LOG.info(f"removed {len(removed)} half-written temporary file(s) of an interrupted run: "
                 f"{', '.join(p.name for p in removed)}")
    return removed


def load_training_state(path: str | Path) -> dict:
    """A pcpeft training checkpoint (model payload, optimiser, scheduler, history), tensors and plain data only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {path}")
    try:
        state = safe_torch_load(path)
    except RefusedPickleError as err:
        raise CheckpointError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - truncated or foreign bytes
        raise CheckpointError(f"{path} is not a readable training checkpoint (truncated or corrupt: "
                              f"{type(err).__name__}: {str(err).splitlines()[0][:200]}); the run cannot resume "
                              f"from it") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise CheckpointError(f"{path} is not a pcpeft training checkpoint (no 'epoch' entry)")
    return state


def model_payload(model) -> dict:
    """Weights a checkpoint of a PeftModel carries: the full backbone for full fine-tuning (a reference-layout
    ``base_model`` that ``load_checkpoint`` reads), otherwise only the adapter tensors."""
    if [c.method for c in model.peft_configs] == ["full"]:
        return {"base_model": model.base_model.state_dict(), "model": None}
    return {"base_model": None, "model": model.adapter_state_dict()}


def restore_model_payload(model, payload: dict, path: str | Path = "<checkpoint>") -> None:
    """Put a :func:`model_payload` back into ``model``; a payload that does not fit is a clear error."""
    if payload.get("base_model") is not None:
        try:
            model.base_model.load_state_dict(payload["base_model"])
        except RuntimeError as err:
            raise CheckpointError(f"{path} does not fit the model: {str(err).splitlines()[0]}") from None
    elif payload.get("model") is not None:
        missing = set(model.adapter_state_dict()) - set(payload["model"])
        if missing:
            raise CheckpointError(f"{path} lacks adapter tensors {sorted(missing)[:5]}")
        try:
            model.load_state_dict(payload["model"], strict=False)
        except RuntimeError as err:
            raise CheckpointError(f"{path} does not fit the model: {str(err).splitlines()[0]}") from None


def save_best(model, exp_dir: Path) -> None:
    """The best epoch's ``ckpt-best.pth`` and, for a PEFT method, its adapter folder ``adapter-best/``."""
    save_atomic({"peft": [c.to_dict() for c in model.peft_configs], **model_payload(model)}, exp_dir / "ckpt-best.pth")
    if [c.method for c in model.peft_configs] != ["full"]:
        model.save_pretrained(exp_dir / "adapter-best")
