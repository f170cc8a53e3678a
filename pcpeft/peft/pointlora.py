"""PointLoRA - low-rank adaptation with token selection (Wang et al., CVPR 2025), equal to the official code
(songw-zju/PointLoRA, ``models/PointLoRA.py`` ``PointTransformer_PointLoRA``, ``utils/lora.py``,
``tools/runner_finetune_pointlora.py``).

What the official model computes on Point-MAE (B clouds, G patches, D channels), reproduced by default:

* **Two more groupings** of the cloud through the backbone's own tokenizer and positional MLP: scale 1 repeats
  the backbone's grouping (the official ``center_divider1`` is hard-coded to 128 groups of 32, the same as the
  ScanObjectNN grouping, so its tokens and positions equal the patch tokens and theirs); scale 2 is 64 groups of
  64 around the first 64 farthest-point centres (the FPS prefix of the backbone's centres).
* **Scores.** ``lora_mask_predictor`` (Linear(D, D/2), ReLU, Linear(D/2, 1), sigmoid) scores every scale-1 and
  scale-2 token. Its loss is the negative entropy ``mean[p log(p + 1e-6) + (1 - p) log(1 - p + 1e-6)]`` of the
  scale-1 scores plus 0.25 x that of the scale-2 scores; the official runner minimises ``CE + 0.004 x`` it, here
  the method's auxiliary loss (:meth:`MultiScaleSelection.aux_loss`, weight ``mask_loss_weight``). Top-k gives no
  gradient and the scores do not weight the tokens, so the predictor learns from this loss alone.
* **Selection.** The ``top_k`` (32) best-scored scale-1 tokens and the ``scale2_top_k`` (8) best scale-2 tokens,
  with their positions, are appended after the patch tokens before block 0: ``[cls, t_1..t_G, s_1..s_40]``.
* **Every block**, after the positions are added: the patch rows get ``+ prompt_mlp(rows)``, the selected rows
  ``+ prompt_pos_mlp(rows)``; each MLP is Linear(D, 32), GELU, Linear(32, D), **one instance for all blocks**.
* **LoRA** on ``attn.qkv`` and ``attn.proj`` of every block: ``W z + b + z Aᵀ Bᵀ + g M(z)`` with A (r, in)
  kaiming-uniform, B (out, r) zero, r = 8, ``g`` a frozen gate (1.0) and ``M`` a shared MLP on the linear's input:
  ``prompt_qkv_mlp`` (D -> 32 -> 3D) on ``norm1(x)``, ``prompt_proj_mlp`` (D -> 32 -> D) on the merged heads. The
  official layer stores ``alpha / r`` (8 / 8) but never applies it; ``scale_by_alpha=True`` (a deviation) applies
  it, which changes the function only when ``alpha`` differs from ``rank``.
* **Head**: concat(cls, max over every token after it, patches and selected tokens) (2D): the backbone's own.

Counts beyond what a small model or cloud has are clamped at run time (the official sizes never are): ``top_k`` to
the patch count, the scale-2 grouping to the cloud's points, ``scale2_top_k`` to the scale-2 groups.

Trained, as the official ``part: pointlora`` optimiser: names with ``cls``, ``prompt``, ``first_conv``,
``pos_embed`` or ``lora_`` (the predictor included); the 24 gates match none and stay frozen at their value:
772,752 of 22,513,960 parameters on Point-MAE with 15 classes. Frozen BatchNorms keep updating their statistics in
train mode, as in the official runner. In training mode the official model runs the tokenizer three times, each
call with its own batch statistics, so every BatchNorm's running statistics move three times per step; pcpeft does
the same (``encode_scale1_again``; False skips the repeated scale-1 call, whose output is identical: faster, but
the running statistics then move twice, a deviation). In eval mode the repeat is never needed.

Merging (``merge_and_unload``) folds ``B A`` (times ``alpha / r`` under ``scale_by_alpha``) into the frozen
qkv / proj weights and sets B to zero (every tensor name stays, so adapter and official files can still be
written); the gated MLP terms, the prompt MLPs, the scores and the selection depend on the input and stay, so the
merged model is the PeftModel itself.

Official file layout (:meth:`PointLoRAConfig.official_keys`): the pre-trained matrices sit at
``attn.{qkv,proj}.linear.*`` and the gates at ``attn.{qkv,proj}.weight`` (a [1] tensor under a matrix's name);
the shared MLPs at ``blocks.prompt_*``, the predictor at ``lora_mask_predictor.*``.

Backbones: Point-BERT (scores on the tokens after ``reduce_dim``), ACT, PointGPT-S/B/L (its grouper returns
centres in chain order, so the scale-2 centres come from their own FPS; the causal mask lets the appended tokens
see every patch but no patch see them) and the part-segmentation models (which drop the appended tokens before
propagation). ReCon is refused: its blocks locate their global tokens by counting the tokens inserted after the
cls token, and the selected tokens are appended at the end; the ViT (no point grouping) is refused.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..models.token_order import ChainOrderedGrouper
from ..ops.fps import farthest_point_sample
from ..ops.grouping import gather_points
from ..ops.knn import knn_indices
from .base import (
    NEVER_TRAINED,
    PeftConfig,
    PeftError,
    backbone_blocks,
    register_method,
    replace_submodule,
    routes_global_tokens,
)
from .official import OFFICIAL_CLS, prefix_tokens
from .ppt import PPT_CLAIM
from .prompt_generator import PROMPT_CLAIM

#: weight of the scale-2 scores' negative entropy inside the mask loss
SCALE2_ENTROPY_WEIGHT = 0.25
#: the official log's guard
ENTROPY_EPS = 1e-6
#: the wrapped linears of every block, with the shared MLP each reads
LORA_SITES = {"attn.qkv": "prompt_qkv_mlp", "attn.proj": "prompt_proj_mlp"}


def prompt_mlp(dim: int, hidden: int, out: int | None = None) -> nn.Sequential:
    """Linear(dim, hidden) GELU Linear(hidden, out or dim); trunc-normal(0.02) weights, zero biases."""
    mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out or dim))
    for layer in (mlp[0], mlp[2]):
        nn.init.trunc_normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)
    return mlp


class MaskPredictor(nn.Module):
    """The official ``lora_mask_predictor``: tokens (B, T, D) -> scores in (0, 1), (B, T)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim // 2)
        self.fc2 = nn.Linear(dim // 2, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.relu(self.fc1(tokens))).squeeze(-1))


def negative_entropy(p: torch.Tensor) -> torch.Tensor:
    """Scores (B, T) -> mean of ``p log(p + eps) + (1 - p) log(1 - p + eps)`` (a scalar, at most 0)."""
    return torch.mean(p * torch.log(p + ENTROPY_EPS) + (1 - p) * torch.log(1 - p + ENTROPY_EPS))


class PointLoRALinear(nn.Module):
    """``base(z) + scaling * z Aᵀ Bᵀ + gate * branch(z)`` around a frozen nn.Linear. (..., in) -> (..., out).

    ``branch`` is a shared MLP owned (and registered) by the method's hook; ``gate`` is never trained.
    """

    is_peft_layer = True

    def __init__(self, base: nn.Linear, rank: int, scaling: float, branch: nn.Module) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise PeftError(f"pointlora wraps nn.Linear layers, got {type(base).__name__}")
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.gate = nn.Parameter(torch.ones(1))
        setattr(self.gate, NEVER_TRAINED, True)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = scaling
        object.__setattr__(self, "branch", branch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        low_rank = (z @ self.lora_A.t()) @ self.lora_B.t()
        if self.scaling != 1.0:
            low_rank = self.scaling * low_rank
        return self.base(z) + (low_rank + self.gate * self.branch(z))

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the low-rank term into the frozen weight and zero B: the function is unchanged."""
        self.base.weight += self.scaling * (self.lora_B @ self.lora_A).to(self.base.weight.dtype)
        self.lora_B.zero_()

    def extra_repr(self) -> str:
        return f"rank={self.lora_A.shape[0]}, scaling={self.scaling}"


class MultiScaleSelection(nn.Module):
    """The shared layers and the sequence hook: scores the scale-1 and scale-2 tokens, appends the selected ones
    (with their positions) after the patches before block 0, and applies the prompt MLPs before every block.

    Sequence (B, P + G + K, D): P prefix tokens, G patch tokens, K = ``top_k + scale2_top_k`` selected tokens.
    """

    appends_tokens = True  # the selected tokens follow the patches (a segmentation model strips them)

    def __init__(self, backbone: nn.Module, config: "PointLoRAConfig") -> None:
        super().__init__()
        dim = backbone.embed_dim
        self.prompt_mlp = prompt_mlp(dim, config.hidden)
        self.prompt_pos_mlp = prompt_mlp(dim, config.hidden)
        self.prompt_proj_mlp = prompt_mlp(dim, config.hidden)
        self.prompt_qkv_mlp = prompt_mlp(dim, config.hidden, 3 * dim)
        self.lora_mask_predictor = MaskPredictor(dim)
        self.prefix = prefix_tokens(backbone)
        self.top_k, self.scale2_top_k = config.top_k, config.scale2_top_k
        self.scale2 = (config.scale2_groups, config.scale2_group_size)
        self.mask_loss_weight = config.mask_loss_weight
        self.encode_scale1_again = config.encode_scale1_again
        object.__setattr__(self, "backbone", backbone)  # not registered: its weights belong to the backbone
        self.last_mask_loss: torch.Tensor | None = None
        self._grouping: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._patches = self._selected = 0
        self._pos: torch.Tensor | None = None

    # -- inputs ------------------------------------------------------------------------------------------------
    def record_grouping(self, module: nn.Module, inputs, output) -> None:
        """Forward hook on the grouper: keeps the points (B, N, 3), neighbourhoods (B, G, M, 3), centres (B, G, 3)."""
        self._grouping = (inputs[0], output[0], output[1])

    def _tokens(self, neighbourhoods: torch.Tensor) -> torch.Tensor:
        """(B, G, M, 3) -> tokens (B, G, D) through the backbone's tokenizer (and Point-BERT's ``reduce_dim``)."""
        tokens = self.backbone.encoder(neighbourhoods)
        reduce = getattr(self.backbone, "reduce_dim", None)
        return reduce(tokens) if reduce is not None else tokens

    def _scale2_grouping(self, points: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (B, N, 3), the backbone's centres (B, G, 3) -> scale-2 neighbourhoods (B, G2, M2, 3), centres."""
        count, size = (min(n, points.shape[1]) for n in self.scale2)
        grouper = self.backbone.group_divider
        exporting = torch.onnx.is_in_onnx_export()
        if count <= centres.shape[1] and not isinstance(grouper, ChainOrderedGrouper):
            centres2 = centres[:, :count]  # FPS is greedy: a shorter run picks the same first centres
        elif exporting:
            from ..export.graph_ops import fps_graph

            centres2 = gather_points(points, fps_graph(points, count, grouper.exclude_near_origin))
        else:
            index = farthest_point_sample(points, count, getattr(grouper, "fps_backend", "auto"),
                                          getattr(grouper, "exclude_near_origin", False))
            centres2 = gather_points(points, index)
        if exporting:
            from ..export.graph_ops import knn_graph

            neighbours = knn_graph(points, centres2, size)
        else:
            neighbours = knn_indices(points, centres2, size)
        return gather_points(points, neighbours) - centres2.unsqueeze(2), centres2

    # -- the sequence hook -------------------------------------------------------------------------------------
    def _append_selected(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 0's input x, pos (B, P + G, D) -> (B, P + G + K, D) each, and the mask loss recorded."""
        if self._grouping is None:
            raise PeftError("pointlora: the backbone's grouper did not run in this forward")
        points, neighbourhoods, centres = self._grouping
        self._grouping = None
        p = self.prefix
        tokens1, pos1 = x[:, p:], pos[:, p:]
        if self.training and self.encode_scale1_again:  # the official second (identical) grouping, encoded again
            tokens1 = self._tokens(neighbourhoods)
        neighbourhoods2, centres2 = self._scale2_grouping(points, centres)
        tokens2 = self._tokens(neighbourhoods2)
        pos2 = self.backbone.pos_embed(centres2)
        scores1, scores2 = self.lora_mask_predictor(tokens1), self.lora_mask_predictor(tokens2)
        self.last_mask_loss = negative_entropy(scores1) + SCALE2_ENTROPY_WEIGHT * negative_entropy(scores2)
        k1, k2 = min(self.top_k, tokens1.shape[1]), min(self.scale2_top_k, tokens2.shape[1])
        self._selected = k1 + k2
        picked = [_top_rows(scores1, k1, tokens1, pos1), _top_rows(scores2, k2, tokens2, pos2)]
        x = torch.cat([x, *(t for t, _ in picked)], dim=1)
        pos = torch.cat([pos, *(q for _, q in picked)], dim=1)
        return x, pos

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if pos is None:
            raise PeftError("pointlora needs the per-block positional embedding of a point backbone")
        if index == 0:
            self._patches = x.shape[1] - self.prefix
            x, pos = self._append_selected(x, pos)
        self._pos = pos
        p, g, k = self.prefix, self._patches, self._selected
        y = x + pos
        patches, selected = y[:, p:p + g], y[:, y.shape[1] - k:]
        y = torch.cat([y[:, :p], patches + self.prompt_mlp(patches), y[:, p + g:y.shape[1] - k],
                       selected + self.prompt_pos_mlp(selected)], dim=1)
        return y, None  # the positions are in y already; after_block hands them back

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        pos, self._pos = self._pos, None
        return x, pos

    def num_added_tokens(self, depth: int) -> int:
        return 0  # the selected tokens follow the patch tokens; nothing is inserted after the cls token

    def aux_loss(self) -> torch.Tensor | None:
        """``mask_loss_weight`` x the last forward's mask loss (None before any forward)."""
        if self.last_mask_loss is None:
            return None
        return self.mask_loss_weight * self.last_mask_loss


def _top_rows(scores: torch.Tensor, k: int, tokens: torch.Tensor, pos: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of tokens and pos (B, T, D) at the ``k`` highest scores (B, T), best first: (B, k, D) each."""
    index = scores.topk(k, dim=1).indices.unsqueeze(-1)
    return (torch.gather(tokens, 1, index.expand(-1, -1, tokens.shape[-1])),
            torch.gather(pos, 1, index.expand(-1, -1, pos.shape[-1])))


@register_method
@dataclasses.dataclass
class PointLoRAConfig(PeftConfig):
    """PointLoRA with the official defaults; see the module docstring for each option."""

    method: ClassVar[str] = "pointlora"
    partly_mergeable: ClassVar[bool] = True
    claims: ClassVar[frozenset[str]] = frozenset({PPT_CLAIM, PROMPT_CLAIM, "linear layers of every block (wrapped)"})
    official_markers: ClassVar[tuple[str, ...]] = ("lora_mask_predictor.",)

    rank: int = 8  # r of the LoRA factors A (r, in) and B (out, r) on attn.qkv and attn.proj
    alpha: float = 8.0  # LoRA alpha; only read with scale_by_alpha
    scale_by_alpha: bool = False  # apply alpha / rank to B A (the official layer stores it but never applies it)
    hidden: int = 32  # width of the four shared MLPs (prompt, prompt_pos, qkv, proj)
    top_k: int = 32  # scale-1 tokens appended (the best-scored ones)
    scale2_top_k: int = 8  # scale-2 tokens appended
    scale2_groups: int = 64  # scale-2 grouping: centres (the first FPS centres of the cloud)
    scale2_group_size: int = 64  # scale-2 grouping: points per group
    mask_loss_weight: float = 0.004  # weight of the mask loss (negative entropy of the scores) in aux_loss()
    encode_scale1_again: bool = True  # train mode: run the tokenizer on the scale-1 grouping again, as official
    update_frozen_bn_stats: bool = True  # frozen BatchNorms update their running statistics in train mode

    def _check(self, backbone: nn.Module) -> None:
        for name in ("group_divider", "encoder", "pos_embed"):
            if not isinstance(getattr(backbone, name, None), nn.Module):
                raise PeftError(f"pointlora groups the point cloud at two more scales through the backbone's "
                                f"tokenizer, but {type(backbone).__name__} has no `{name}` (a point backbone has)")
        if routes_global_tokens(backbone):
            raise PeftError("pointlora appends its selected tokens after the patch tokens, but this backbone's "
                            "blocks (ReCon) locate their global tokens by counting the tokens inserted after the "
                            "cls token; the official PointLoRA is the Point-MAE architecture: use point_mae")
        counts = (self.rank, self.hidden, self.top_k, self.scale2_top_k, self.scale2_groups, self.scale2_group_size)
        if min(counts) < 1:
            raise PeftError("pointlora rank, hidden, top_k, scale2_top_k, scale2_groups and scale2_group_size must "
                            f"be >= 1, got {counts}")
        if self.mask_loss_weight < 0:
            raise PeftError(f"pointlora mask_loss_weight must be >= 0, got {self.mask_loss_weight}")

    def inject(self, backbone: nn.Module, host) -> list[str]:
        self._check(backbone)
        hook = MultiScaleSelection(backbone, self)
        host.peft_modules["pointlora"] = hook
        backbone.group_divider.register_forward_hook(hook.record_grouping)
        backbone.block_stack.add_sequence_hook(hook)
        scaling = self.alpha / self.rank if self.scale_by_alpha else 1.0
        for block in backbone_blocks(backbone):
            for site, branch in LORA_SITES.items():
                replace_submodule(block, site, PointLoRALinear(block.get_submodule(site), self.rank, scaling,
                                                               getattr(hook, branch)))
        return [OFFICIAL_CLS, "encoder.first_conv.*", "pos_embed", "pos_embed.*"]

    def merge(self, backbone: nn.Module) -> None:
        """Fold every LoRA term into its frozen linear (B set to zero); the input-dependent layers stay."""
        for module in backbone.modules():
            if isinstance(module, PointLoRALinear):
                module.merge()

    def official_keys(self, host) -> dict[str, str]:
        """Our keys -> ``PointTransformer_PointLoRA``'s (the pre-trained linear at ``.linear``, the gate at
        ``.weight``; the shared MLPs under ``blocks.``, the predictor at the top level)."""
        out: dict[str, str] = {}
        for key in host.peft_modules["pointlora"].state_dict():
            official = key if key.startswith("lora_mask_predictor.") else f"blocks.{key}"
            out[f"peft_modules.pointlora.{key}"] = official
        for name, module in host.base_model.named_modules():
            if isinstance(module, PointLoRALinear):
                for leaf, _ in module.base.named_parameters():
                    out[f"base_model.{name}.base.{leaf}"] = f"{name}.linear.{leaf}"
                out[f"base_model.{name}.gate"] = f"{name}.weight"
        return out
