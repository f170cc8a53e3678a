"""Official checkpoint layouts of the newer backbones (ACT, ReCon, PointGPT) mapped onto our keys.

Each backbone's ``convert_checkpoint_state(state)`` calls :func:`convert` with its family; it returns
``(layout, mapped state, dropped file keys by reason)`` for :func:`pcpeft.models.checkpoints.load_state_into`.
Keys arrive with ``module.`` / ``base_model.`` already stripped.

============================  ==========================  ===================================================
layout                        recognised by               dropped on purpose / left as built
============================  ==========================  ===================================================
act_pretrain                  ``ACT_encoder.*``           file: dVAE teacher ``dvae_tokenizer.*``, decoder,
                                                          ``mask_token``, ``proj_head``, the encoder's
                                                          pre-training heads ``lm_head`` / ``cls_head``;
                                                          model: ``cls_head_finetune.*``
recon_pretrain                ``MAE_encoder.*`` (ReCon)   file: decoder, ``mask_token``, ``increase_dim``,
                                                          ``img_proj`` / ``text_proj`` (and the image/text
                                                          teachers if a file holds them); model: the head
pointgpt_pretrain             ``GPT_Transformer.*``       model: ``cls_token``, ``cls_pos``, ``cls_norm``, head
pointgpt_finetuned            ``blocks.layers.*`` or any  nothing (the official fine-tune ``PointTransformer``;
                              other official-only key     a file holding part of it maps that part)
pointgpt_post_pretrain        as above, with a head of    file: the post-pre-training head
                              another class count         (``blocks.cls_head_finetune.*``); model: the head
============================  ==========================  ===================================================

PointGPT key map (official -> ours): ``blocks.layers.i.{ln_1, ln_2, attn.in_proj_weight, attn.in_proj_bias,
attn.out_proj, mlp.0, mlp.2}`` -> ``blocks.blocks.i.{norm1, norm2, attn.qkv.weight, attn.qkv.bias, attn.proj,
mlp.fc1, mlp.fc2}``; ``blocks.sos`` -> ``sos``; ``blocks.ln_f`` -> ``norm``; ``blocks.cls_norm`` -> ``cls_norm``;
``blocks.cls_head_finetune`` -> ``cls_head_finetune``; ``blocks.increase_dim`` -> ``increase_dim``; the unused
top-level ``norm`` -> ``spare_norm``; ``generator_blocks.{sos, layers.i, ln_f, increase_dim}`` ->
``generator.{sos, blocks.i, norm, increase_dim}``.
"""
from __future__ import annotations

import re
from typing import Callable, Literal

import torch

from .checkpoints import map_reference_keys, register_absent_by_design

Converted = tuple[str, dict[str, torch.Tensor], dict[str, list[str]]]

_HEAD_REASON = "classification head, trained from scratch when fine-tuning"
register_absent_by_design("act_pretrain", {"cls_head_finetune.": _HEAD_REASON})
register_absent_by_design("recon_pretrain", {"cls_head_finetune.": _HEAD_REASON})
register_absent_by_design("pointgpt_pretrain", {
    "cls_token": "created at fine-tuning (PointGPT pre-training has no cls token)",
    "cls_pos": "created at fine-tuning (PointGPT pre-training has no cls token)",
    "cls_norm.": "fine-tuning head norm, absent from pre-training",
    "cls_head_finetune.": _HEAD_REASON,
})
register_absent_by_design("pointgpt_post_pretrain", {"cls_head_finetune.": "classification head, replaced when "
                                                                           "fine-tuning from post-pre-training"})


def _split_prefix(state: dict[str, torch.Tensor], prefix: str, drop_inner: tuple[str, ...] = ()
                  ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Keys under ``prefix`` (stripped) -> mapped, except inner names starting with ``drop_inner``.
    Returns (mapped, dropped inner keys, keys outside the prefix)."""
    mapped, dropped, outside = {}, [], []
    for key, value in state.items():
        if not key.startswith(prefix):
            outside.append(key)
        elif key[len(prefix):].startswith(drop_inner):
            dropped.append(key)
        else:
            mapped[key[len(prefix):]] = value
    return mapped, dropped, outside


def _act(state: dict[str, torch.Tensor]) -> Converted:
    if not any(k.startswith("ACT_encoder.") for k in state):
        return map_reference_keys(state)
    mapped, heads, outside = _split_prefix(state, "ACT_encoder.", ("lm_head.", "cls_head."))
    teacher = [k for k in outside if k.startswith("dvae_tokenizer.")]
    decoder = [k for k in outside if not k.startswith("dvae_tokenizer.")]
    return "act_pretrain", mapped, {
        "frozen dVAE teacher of ACT pre-training": teacher,
        "pre-training decoder, mask token and projection, unused when fine-tuning": decoder,
        "pre-training heads of the encoder (lm_head, cls_head)": heads,
    }


def _recon(state: dict[str, torch.Tensor]) -> Converted:
    if not any(k.startswith("MAE_encoder.") for k in state):
        return map_reference_keys(state)
    mapped, _, outside = _split_prefix(state, "MAE_encoder.")
    teachers = [k for k in outside if k.startswith(("img_encoder.", "text_encoder."))]
    decoder = [k for k in outside if k not in teachers]
    return "recon_pretrain", mapped, {
        "image / text teachers of ReCon pre-training": teachers,
        "pre-training decoder, mask token and cross-modal projections, unused when fine-tuning": decoder,
    }


_GPT_BLOCK = [("ln_1.", "norm1."), ("ln_2.", "norm2."), ("attn.in_proj_weight", "attn.qkv.weight"),
              ("attn.in_proj_bias", "attn.qkv.bias"), ("attn.out_proj.", "attn.proj."), ("mlp.0.", "mlp.fc1."),
              ("mlp.2.", "mlp.fc2.")]
_GPT_TOP = [("blocks.sos", "sos"), ("blocks.ln_f.", "norm."), ("blocks.cls_norm.", "cls_norm."),
            ("blocks.cls_head_finetune.", "cls_head_finetune."), ("blocks.increase_dim.", "increase_dim."),
            ("norm.", "spare_norm."), ("generator_blocks.sos", "generator.sos"),
            ("generator_blocks.ln_f.", "generator.norm."),
            ("generator_blocks.increase_dim.", "generator.increase_dim.")]
_GPT_LAYER = re.compile(r"^(blocks|generator_blocks)\.layers\.(\d+)\.(.+)$")
#: key prefixes only the official fine-tune layout has (ours has ``blocks.blocks.*`` where it has ``blocks.*``)
_GPT_OFFICIAL_ONLY = ("blocks.layers.", "blocks.sos", "blocks.ln_f.", "blocks.cls_norm.", "blocks.cls_head_finetune.",
                      "blocks.increase_dim.", "generator_blocks.")


def is_official_pointgpt(state: dict[str, torch.Tensor]) -> bool:
    """Whether any key of ``state`` is in the official PointGPT fine-tune layout, whatever subset of that layout
    the file holds (the whole model, the head alone, the blocks alone)."""
    return any(key.startswith(_GPT_OFFICIAL_ONLY) for key in state)


_OUR_GPT_LAYER = re.compile(r"^(blocks|generator)\.blocks\.(\d+)\.(.+)$")


def _renamed(key: str, pairs: list[tuple[str, str]], to_ours: bool) -> str:
    """``key`` with the first matching prefix of ``pairs`` (official, ours) swapped in the direction asked."""
    for official, ours in pairs:
        old, new = (official, ours) if to_ours else (ours, official)
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _map_pointgpt_key(key: str, to_ours: bool) -> str:
    layer = (_GPT_LAYER if to_ours else _OUR_GPT_LAYER).match(key)
    if layer:
        stack, index, inner = layer.groups()
        inner = _renamed(inner, _GPT_BLOCK, to_ours)
        if to_ours:
            return f"{'blocks' if stack == 'blocks' else 'generator'}.blocks.{index}.{inner}"
        return f"{'blocks' if stack == 'blocks' else 'generator_blocks'}.layers.{index}.{inner}"
    for official, ours in _GPT_TOP:
        old, new = (official, ours) if to_ours else (ours, official)
        if key == old or (old.endswith(".") and key.startswith(old)):
            return new + key[len(old):]
    return key


def pointgpt_key(key: str) -> str:
    """One official PointGPT key -> ours (unknown keys pass through unchanged)."""
    return _map_pointgpt_key(key, to_ours=True)


def official_pointgpt_key(key: str) -> str:
    """One of our PointGPT keys -> the official fine-tune key (the inverse of :func:`pointgpt_key`)."""
    return _map_pointgpt_key(key, to_ours=False)


def _pointgpt(state: dict[str, torch.Tensor], num_classes: int) -> Converted:
    if any(k.startswith("GPT_Transformer.") for k in state):
        mapped, _, outside = _split_prefix(state, "GPT_Transformer.")
        mapped.update({k: state[k] for k in outside})  # the official loader keeps unprefixed keys as they are
        return "pointgpt_pretrain", {pointgpt_key(k): v for k, v in mapped.items()}, {}
    if not is_official_pointgpt(state):
        return "finetuned", dict(state), {}
    head = sorted(k for k in state if k.startswith("blocks.cls_head_finetune."))
    last_bias = max((k for k in head if k.endswith(".bias")), key=lambda k: int(k.split(".")[2]), default=None)
    if last_bias is not None and state[last_bias].shape[0] != num_classes:
        kept = {pointgpt_key(k): v for k, v in state.items() if k not in head}
        return "pointgpt_post_pretrain", kept, {
            f"post-pre-training head ({state[last_bias].shape[0]} classes), dropped as the official loader does":
                head}
    return "pointgpt_finetuned", {pointgpt_key(k): v for k, v in state.items()}, {}


#: the official layout families a backbone's config can name (``checkpoint_layout``)
CheckpointLayout = Literal["point_mae", "point_bert", "act", "recon", "pointgpt"]

_CONVERTERS: dict[str, Callable[[dict[str, torch.Tensor], int], Converted]] = {
    "point_mae": lambda state, classes: map_reference_keys(state),
    "point_bert": lambda state, classes: map_reference_keys(state),
    "act": lambda state, classes: _act(state),
    "recon": lambda state, classes: _recon(state),
    "pointgpt": _pointgpt,
}


def convert(layout: CheckpointLayout, state: dict[str, torch.Tensor], num_classes: int) -> Converted:
    """Map ``state`` for a backbone whose config names the official ``layout`` family."""
    if layout not in _CONVERTERS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; expected one of {sorted(_CONVERTERS)}")
    return _CONVERTERS[layout](state, num_classes)
