"""PEFT machinery shared by every method: config base class, method registry, injection helpers, PeftModel.

A method is a config dataclass (subclass of :class:`PeftConfig`, registered with :func:`register_method`) whose
``inject(backbone, host)`` adds its layers to a built backbone through the backbone's documented extension
points only - wrapping named sub-layers (``norm1``, ``attn.qkv``, ...), appending to ``block.mlp_branches``,
or registering a sequence hook on ``backbone.block_stack`` - and returns the backbone parameter names it unfreezes.
Nothing here knows whether the backbone is a point model or a ViT: the backbone tells (``classifier_name``,
``token_output_module``, ``blocks``).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import torch
from torch import nn

from ..errors import UserError

_METHODS: dict[str, type["PeftConfig"]] = {}

CONFIG_FILE = "adapter_config.json"
#: attribute a method sets (True) on an added parameter that it registers but never trains (IDPT's prompt_pos)
NEVER_TRAINED = "pcpeft_never_trained"
WEIGHTS_FILE = "adapter_model.safetensors"


class PeftError(UserError, ValueError):
    """A PEFT configuration cannot be applied (unknown method, conflicting combination, unsupported merge)."""


@dataclasses.dataclass
class PeftConfig:
    """Base of every method config.

    Attributes:
        train_head: the classification head is trainable (every method but ``linear`` sets nothing else).
        train_cls_token: the cls token (and the point models' cls positional embedding) is trainable.
    """

    method: ClassVar[str] = ""
    #: the method's layers fold into the backbone weights (``merge_and_unload``)
    mergeable: ClassVar[bool] = False
    #: the method's ``merge`` folds part of its layers and keeps the input-dependent rest attached (PointLoRA);
    #: ``merge_and_unload`` then merges in place and returns the PeftModel itself
    partly_mergeable: ClassVar[bool] = False
    #: names of backbone resources the method rewrites; two methods claiming one are refused together
    claims: ClassVar[frozenset[str]] = frozenset()
    #: the method fixes the whole set of trainable parameters and combines with nothing (full, linear)
    standalone: ClassVar[bool] = False

    train_head: bool = True
    train_cls_token: bool = True

    def inject(self, backbone: nn.Module, host: "PeftModel") -> list[str]:
        """Add the method's layers to ``backbone``; return backbone parameter names (fnmatch patterns) to train."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


def register_method(cls: type[PeftConfig]) -> type[PeftConfig]:
    """Class decorator registering a config class under its ``method`` name."""
    if not cls.method or cls.method in _METHODS:
        raise ValueError(f"method name {cls.method!r} is empty or already registered")
    _METHODS[cls.method] = cls
    return cls


def list_methods() -> list[str]:
    from . import methods  # noqa: F401  (registers every built-in method)

    return sorted(_METHODS)


def method_config_class(name: str) -> type[PeftConfig]:
    """The config class of the registered method ``name``."""
    if name not in _METHODS:
        raise PeftError(f"unknown PEFT method {name!r}; available: {sorted(_METHODS)}")
    return _METHODS[name]


def config_from_dict(spec: dict[str, Any]) -> PeftConfig:
    """Build a config from ``{"method": name, **fields}``; unknown names and fields are clear errors."""
    list_methods()
    spec = dict(spec)
    name = spec.pop("method", None)
    if name not in _METHODS:
        raise PeftError(f"unknown PEFT method {name!r}; available: {sorted(_METHODS)}")
    cls = _METHODS[name]
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(spec) - valid)
    if unknown:
        raise PeftError(f"PEFT method {name!r} has no option(s) {unknown}; valid options: {sorted(valid)}")
    return cls(**spec)


# -- injection helpers -------------------------------------------------------------------------------------------
def replace_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    """Swap the sub-module at dotted path ``name`` for ``new``."""
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def backbone_blocks(backbone: nn.Module) -> Sequence[nn.Module]:
    """The backbone's transformer blocks: its ``block_stack`` (a BlockStack), which every backbone exposes."""
    stack = getattr(backbone, "block_stack", None)
    if stack is None:
        raise PeftError(f"{type(backbone).__name__} exposes no `block_stack`; cannot attach PEFT layers")
    return stack


def routes_global_tokens(backbone: nn.Module) -> bool:
    """The backbone's blocks send global tokens through a separate branch (ReCon's cross-attention), so those tokens
    bypass the self-attention and MLP a method may wrap."""
    return any(getattr(block, "num_global_tokens", 0) for block in backbone_blocks(backbone))


def tensor_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over sorted keys, dtypes, shapes and bytes: identifies the frozen backbone weights."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


# -- the wrapper model -------------------------------------------------------------------------------------------
class PeftModel(nn.Module):
    """A backbone with PEFT layers injected and everything else frozen.

    ``forward`` / ``forward_features`` / ``forward_head`` delegate to the backbone. Frozen BatchNorm layers (those
    whose affine weights are not trained) stay in eval mode under ``train()``, so their running statistics never
    change; trainable ones (e.g. the Point-MAE head's) update as usual.
    """

    def __init__(self, backbone: nn.Module, configs: Sequence[PeftConfig]) -> None:
        super().__init__()
        configs = list(configs)
        _check_compatible(configs)
        original = {id(t) for t in [*backbone.parameters(), *backbone.buffers()]}
        self.base_model = backbone
        self.peft_configs = configs
        self.peft_modules = nn.ModuleDict()  # layers owned by hooks outside the backbone tree (shared pools, ...)
        unfreeze: list[str] = []
        for config in configs:
            unfreeze += config.inject(backbone, self)
        self._added = {id(t) for t in [*self.parameters(), *self.buffers()]} - original
        self._freeze(configs, unfreeze)

    # -- trainability --------------------------------------------------------------------------------------------
    def _freeze(self, configs: Sequence[PeftConfig], patterns: list[str]) -> None:
        base = self.base_model
        classifier = getattr(base, "classifier_name", None)
        if any(c.train_head for c in configs) and classifier:
            patterns.append(f"{classifier}.*")
            patterns += getattr(base, "head_extra_patterns", ())  # e.g. PointGPT's cls_norm before the head
        if any(c.train_head for c in configs):
            patterns += getattr(base, "head_parameter_patterns", ())  # a head of several modules (segmentation)
        if any(c.train_cls_token for c in configs) and hasattr(base, "cls_token"):
            # cls_pos too: pre-training files (Point-MAE) do not hold it, so a frozen one would stay a random init
            # that no adapter file could be restored onto
            patterns += ["cls_token", "cls_pos"]
        for name, param in self.named_parameters():
            inner = name[len("base_model."):]
            added = id(param) in self._added and not getattr(param, NEVER_TRAINED, False)
            param.requires_grad_(added or any(fnmatch.fnmatchcase(inner, p) for p in patterns))

    @property
    def updates_frozen_bn_statistics(self) -> bool:
        """A method asks (``update_frozen_bn_stats``, as the official DAPT/IDPT/PPT/PointGST code does) that frozen
        BatchNorms keep updating their running statistics in train mode; they are then saved with the adapter."""
        return any(getattr(c, "update_frozen_bn_stats", False) for c in self.peft_configs)

    def train(self, mode: bool = True) -> "PeftModel":
        super().train(mode)
        if mode and not self.updates_frozen_bn_statistics:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None \
                        and not module.weight.requires_grad:
                    module.eval()
        return self

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts; shared layers counted once."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def print_trainable_parameters(self) -> str:
        """Print and return ``trainable: N | total: M | P%`` (total = backbone + added layers)."""
        trainable, total = self.trainable_parameters()
        line = f"trainable: {trainable:,} | total: {total:,} | {100 * trainable / total:.4f}%"
        print(line)
        return line

    # -- forward -------------------------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        return self.base_model(*args, **kwargs)

    def forward_features(self, *args, **kwargs):
        return self.base_model.forward_features(*args, **kwargs)

    def forward_head(self, *args, **kwargs):
        return self.base_model.forward_head(*args, **kwargs)

    def aux_loss(self) -> torch.Tensor:
        """Weighted auxiliary losses of the last forward: the methods' (SMoA load balancing) plus the backbone's
        own (PointGPT's generator loss x ``aux_loss_weight`` 3, in training forwards); 0 when there is none."""
        losses = [m.aux_loss() for m in self.peft_modules.values() if hasattr(m, "aux_loss")]
        backbone_loss = getattr(self.base_model, "auxiliary_loss", None)
        if backbone_loss is not None:
            losses.append(self.base_model.aux_loss_weight * backbone_loss())
        losses = [loss for loss in losses if loss is not None]
        if not losses:
            return torch.zeros((), device=next(self.parameters()).device)
        return torch.stack(losses).sum()

    def routing(self) -> dict[int, torch.Tensor]:
        """Expert chosen per token in each block during the last forward: {block: (B, T, heads) int64}."""
        out: dict[int, torch.Tensor] = {}
        for module in self.peft_modules.values():
            record = getattr(module, "last_routing", None)
            if isinstance(record, dict):
                out.update(record)
        return dict(sorted(out.items()))

    # -- merge ---------------------------------------------------------------------------------------------------
    def merge_and_unload(self) -> nn.Module:
        """Fold mergeable layers (SSF, LoRA) into the backbone weights and return the plain backbone.

        Methods that add no layers (``linear``, ``bitfit``, ``full``) merge trivially. Methods whose layers
        depend on the input (adapters, SMoA, prompts) cannot be folded and raise :class:`PeftError`. A partly
        mergeable method (``pointlora``: its LoRA term folds, its gated MLPs and token selection stay) is merged
        in place and the PeftModel itself is returned, its remaining layers attached.
        """
        blocking = [c.method for c in self.peft_configs if not (c.mergeable or c.partly_mergeable)]
        if blocking:
            raise PeftError(
                f"merge_and_unload() is not possible with {blocking}: their layers compute input-dependent outputs "
                f"(extra branches or prompt tokens), which no single set of backbone weights reproduces. "
                f"Only ssf and lora (and the layer-free linear/bitfit/full) merge; pointlora merges in part."
            )
        base = self.base_model
        for config in self.peft_configs:
            merge = getattr(config, "merge", None)
            if merge is not None:
                merge(base)
        if any(c.partly_mergeable for c in self.peft_configs):
            return self
        for param in base.parameters():
            param.requires_grad_(True)
        return base

    # -- save / load ---------------------------------------------------------------------------------------------
    def _frozen_state(self) -> dict[str, torch.Tensor]:
        """Backbone tensors the methods do not train: frozen parameters and buffers of modules with no trainable
        parameter (e.g. the frozen tokenizer's BatchNorm statistics)."""
        frozen: dict[str, torch.Tensor] = {}
        moving_bn = self.updates_frozen_bn_statistics
        for owner_name, module in self.named_modules():
            trains = any(p.requires_grad for p in module.parameters(recurse=False))
            trains = trains or (moving_bn and isinstance(module, nn.modules.batchnorm._BatchNorm))
            prefix = f"{owner_name}." if owner_name else ""
            for leaf, param in module.named_parameters(recurse=False):
                if not param.requires_grad and id(param) not in self._added:
                    frozen.setdefault(prefix + leaf, param.detach())
            for leaf, buf in module.named_buffers(recurse=False):
                if buf is not None and not trains and id(buf) not in self._added:
                    frozen.setdefault(prefix + leaf, buf)
        return frozen

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything ``save_pretrained`` writes: trained parameters, added layers and trained modules' buffers."""
        frozen = self._frozen_state()
        return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items() if k not in frozen}

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole model under the official code's key names (see :mod:`pcpeft.peft.official`)."""
        from .official import official_state_dict

        return official_state_dict(self)

    def map_official_state(self, state: dict[str, torch.Tensor]):
        """(layout, our-keyed state, dropped keys by reason) for a method's own official fine-tuned file, or None
        when ``state`` is not in the official layout of any of this model's methods."""
        from .official import map_official_state

        return map_official_state(self, state)

    def backbone_fingerprint(self) -> str:
        return tensor_fingerprint(self._frozen_state())

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the adapter weights (safetensors), the method configs and the frozen-backbone fingerprint."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self.adapter_state_dict()
        meta = {"configs": [c.to_dict() for c in self.peft_configs],
                "backbone": type(self.base_model).__name__,
                "model": getattr(self.base_model, "registered_name", None),
                "architecture": getattr(self.base_model, "architecture", lambda: {})(),
                "backbone_fingerprint": self.backbone_fingerprint(),
                "tensors": len(state)}
        _atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(state, str(p)))
        _atomic_write(directory / CONFIG_FILE, lambda p: p.write_text(json.dumps(meta, indent=2, default=str)))
        return directory

    @classmethod
    def from_pretrained(cls, backbone: nn.Module, directory: str | os.PathLike) -> "PeftModel":
        """Rebuild the methods saved in ``directory`` on ``backbone`` and load their weights.

        Every check (files, method configs, architecture, frozen-weights fingerprint, tensor names and shapes)
        runs before ``backbone`` is touched; each failure is a :class:`CheckpointError` naming what differs.
        """
        from .adapter_files import load_adapter

        return load_adapter(cls, backbone, directory)


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _check_compatible(configs: Iterable[PeftConfig]) -> None:
    configs = list(configs)
    if not configs:
        raise PeftError("get_peft_model needs at least one method")
    alone = [c.method for c in configs if c.standalone]
    if alone and len(configs) > 1:
        raise PeftError(f"{alone[0]!r} fixes the whole set of trainable parameters and cannot be combined with "
                        f"{[c.method for c in configs if c.method != alone[0]]}")
    seen: dict[str, str] = {}
    for config in configs:
        for claim in config.claims:
            if claim in seen:
                raise PeftError(
                    f"methods {seen[claim]!r} and {config.method!r} conflict: both rewrite {claim}; "
                    f"use one of them"
                )
            seen[claim] = config.method
