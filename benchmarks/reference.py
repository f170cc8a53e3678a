"""The reference Point-MAE and DAPT forwards, restated as the official code writes them, for ``tools/bench.py
--side_by_side``.

It reuses a pcpeft ``point_mae`` model's modules and weights but computes the way the official
``PointTransformer`` does: the plain-torch stand-ins for the CUDA grouping ops (the batched FPS loop and the
chunked kNN), the ``Encoder`` as ``Conv1d`` layers on transposed (BG, C, M) tensors, attention as an explicit
``softmax(q k^T * scale) v``, blocks ``x = x + drop_path(attn(norm1(x + pos)))``, and so on. Same function as
``model(points)`` (checked by the bench before timing).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pcpeft.ops.fps import fps_torch
from pcpeft.ops.grouping import gather_points
from pcpeft.ops.knn import knn_torch


def reference_encoder(encoder: nn.Module, neighbourhoods: torch.Tensor) -> torch.Tensor:
    """Point-MAE ``Encoder.forward``: (B, G, M, 3) -> (B, G, C) through Conv1d on (BG, C, M)."""
    batch, groups, size, _ = neighbourhoods.shape
    feature = encoder.first_conv(neighbourhoods.reshape(batch * groups, size, 3).transpose(2, 1))  # (BG, 256, M)
    glob = torch.max(feature, dim=2, keepdim=True)[0]
    feature = torch.cat([glob.expand(-1, -1, size), feature], dim=1)  # (BG, 512, M)
    feature = encoder.second_conv(feature)
    return torch.max(feature, dim=2, keepdim=False)[0].reshape(batch, groups, -1)


def reference_attention(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm ``Attention.forward`` with an explicit softmax. (B, T, D) -> (B, T, D)."""
    batch, tokens, dim = x.shape
    qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, dim // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = (q @ k.transpose(-2, -1)) * (dim // attn.num_heads) ** -0.5
    weights = weights.softmax(dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(batch, tokens, dim)
    return attn.proj_drop(attn.proj(out))


def reference_point_mae(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """The official Point-MAE fine-tuning forward on a plain pcpeft ``point_mae`` model. (B, N, 3) -> (B, classes)."""
    grouper = model.group_divider
    centre_idx = fps_torch(points, grouper.num_group, grouper.exclude_near_origin)
    centres = gather_points(points, centre_idx)
    neighbourhood = gather_points(points, knn_torch(points, centres, grouper.group_size)) - centres.unsqueeze(2)
    tokens = reference_encoder(model.encoder, neighbourhood)
    batch = tokens.shape[0]
    cls_tokens = model.cls_token.expand(batch, -1, -1)
    cls_pos = model.cls_pos.expand(batch, -1, -1)
    pos = model.pos_embed(centres)
    x = torch.cat((cls_tokens, tokens), dim=1)
    pos = torch.cat((cls_pos, pos), dim=1)
    for block in model.blocks.blocks:
        x = x + pos
        x = x + block.drop_path(reference_attention(block.attn, block.norm1(x)))
        x = x + block.drop_path(block.mlp(block.norm2(x)))
    x = model.norm(x)
    feature = torch.cat([x[:, 0], x[:, 1:].max(1)[0]], dim=-1)
    return model.cls_head_finetune(feature)


# -- DAPT ---------------------------------------------------------------------------------------------------------
def _tfts(p: dict, prefix: str, suffix: str, x: torch.Tensor) -> torch.Tensor:
    """DAPT's scale-and-shift ``x * tfts_gamma_<suffix> + tfts_beta_<suffix>`` under ``prefix``."""
    return x * p[f"{prefix}tfts_gamma_{suffix}"] + p[f"{prefix}tfts_beta_{suffix}"]


def _linear(p: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, p[f"{name}.weight"], p.get(f"{name}.bias"))


def _layer_norm(p: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], p[f"{name}.weight"], p[f"{name}.bias"])


def _conv_bn_stack(p: dict, name: str, layers: nn.Sequential, x: torch.Tensor, training: bool) -> torch.Tensor:
    """An official Conv1d / BatchNorm1d / ReLU ``Sequential`` on (BG, C, M), from the official-named tensors."""
    for index, layer in enumerate(layers):
        key = f"{name}.{index}"
        if isinstance(layer, nn.Conv1d):
            x = F.conv1d(x, p[f"{key}.weight"], p[f"{key}.bias"])
        elif isinstance(layer, nn.BatchNorm1d):
            x = F.batch_norm(x, p[f"{key}.running_mean"], p[f"{key}.running_var"], p[f"{key}.weight"],
                             p[f"{key}.bias"], training, layer.momentum, layer.eps)
        else:
            x = F.relu(x)
    return x


def official_tensors(peft_model) -> dict[str, torch.Tensor]:
    """The PeftModel's parameters (autograd-live) and buffers under the official code's key names."""
    from pcpeft.peft.official import official_key_map

    mapping = official_key_map(peft_model)
    named = dict(peft_model.named_buffers())
    named.update(dict(peft_model.named_parameters()))
    return {mapping[k]: v for k, v in named.items() if k in mapping}


def reference_dapt(peft_model, points: torch.Tensor) -> torch.Tensor:
    """The official ``PointTransformer_DAPT`` forward (LMD0311/DAPT; class ``use``, prompts ``mean``, patches
    ``max``) on the weights of a pcpeft ``get_peft_model(point_mae, "dapt")``, written as the official code computes
    it: tfts scale-and-shifts as separate multiply-adds, the adapter beside the MLP, one internal prompt inserted
    after the cls token per block, the positional embedding added once. (B, N, 3) -> (B, classes)."""
    base = peft_model.base_model
    p = official_tensors(peft_model)
    training = peft_model.training
    grouper = base.group_divider
    centres = gather_points(points, fps_torch(points, grouper.num_group, grouper.exclude_near_origin))
    neighbourhood = gather_points(points, knn_torch(points, centres, grouper.group_size)) - centres.unsqueeze(2)
    batch, groups, size, _ = neighbourhood.shape
    encoder = getattr(base.encoder, "base", base.encoder)  # beneath DAPT's tokenizer scale-and-shift wrapper
    feature = _conv_bn_stack(p, "encoder.first_conv", encoder.first_conv,
                             neighbourhood.reshape(batch * groups, size, 3).transpose(2, 1), training)
    glob = feature.max(dim=2, keepdim=True)[0]
    feature = _conv_bn_stack(p, "encoder.second_conv", encoder.second_conv,
                             torch.cat([glob.expand(-1, -1, size), feature], dim=1), training)
    tokens = _tfts(p, "", "1", feature.max(dim=2)[0].reshape(batch, groups, -1))
    x = torch.cat([p["cls_token"].expand(batch, -1, -1), tokens], dim=1)
    pos = F.linear(F.gelu(_linear(p, "pos_embed.0", centres)), p["pos_embed.2.weight"], p["pos_embed.2.bias"])
    x = x + torch.cat([p["cls_pos"].expand(batch, -1, -1), pos], dim=1)
    heads = base.blocks.blocks[0].attn.num_heads
    for index, block in enumerate(base.blocks.blocks):
        b = f"blocks.blocks.{index}."
        h = _tfts(p, b, "1", _layer_norm(p, f"{b}norm1", x))
        tokens_now, dim = h.shape[1], h.shape[2]
        qkv = _tfts(p, f"{b}attn.", "1", _linear(p, f"{b}attn.qkv", h))
        qkv = qkv.reshape(batch, tokens_now, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        weights = ((qkv[0] @ qkv[1].transpose(-2, -1)) * (dim // heads) ** -0.5).softmax(dim=-1)
        attn = (weights @ qkv[2]).transpose(1, 2).reshape(batch, tokens_now, dim)
        x = x + block.drop_path(_tfts(p, f"{b}attn.", "2", _linear(p, f"{b}attn.proj", attn)))
        h = _tfts(p, b, "2", _layer_norm(p, f"{b}norm2", x))
        z = _layer_norm(p, f"{b}Adapter_MLP.adapter_layer_norm_before", h)
        adapter = _linear(p, f"{b}Adapter_MLP.up_proj", F.gelu(_linear(p, f"{b}Adapter_MLP.down_proj", z))) \
            * F.relu(_linear(p, f"{b}Adapter_MLP.scale", z))
        mlp = _tfts(p, f"{b}mlp.", "2", _linear(p, f"{b}mlp.fc2", F.gelu(
            _tfts(p, f"{b}mlp.", "1", _linear(p, f"{b}mlp.fc1", h)))))
        x = x + block.drop_path(mlp + adapter)
        prompt = _tfts(p, b, "3", F.gelu(adapter).mean(dim=1, keepdim=True))
        x = torch.cat([x[:, :1], prompt, x[:, 1:]], dim=1)
    x = _tfts(p, "", "2", _layer_norm(p, "norm", x))
    feature = torch.cat([x[:, 0], x[:, 1:-groups].mean(dim=1), x[:, -groups:].max(dim=1)[0]], dim=-1)
    return base.cls_head_finetune(feature)
