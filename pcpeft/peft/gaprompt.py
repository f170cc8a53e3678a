"""GAPrompt - geometry-aware point prompts (Ai et al., ICML 2025), equal to the official code
(zhoujiahuan1991/ICML2025-GAPrompt, ``models/prompt_MAE.py`` class ``PointTransformer_pointtokenprompt`` with
``models/GAPrompt.py``).

Per forward, on a cloud P (B, N, 3):

* **ShiftNet** (:mod:`.shift_net`) moves every point, P + perturbation * m * P, and gives a shape vector;
  ``shape_feature_mlp`` (Linear -> 16, GELU, Dropout 0.25, Linear 16 -> D) turns it into the shape feature s
  (B, 1, D), never normalised.
* **Point prompts**: ``point_prompt.points`` (1, K, 3) x ``prompt_factor`` (5) are appended *after* the moved
  cloud, which the backbone's grouper then groups (prompt points can be centres or neighbours).
* **Second-level grouping** of the G patch centres: FPS G/2 level-2 centres, kNN ``group_size // 2`` centres
  around each, as flat indices with the offset b * G (the official ``Group``), plus inverse squared-distance
  weights (1 / (d + 1e-8), normalised, over the 64 nearest level-2 centres) from every centre to the level-2
  centres.
* **Blocks** ``i < prompt_depth`` (6): ten token prompts T_i = Dropout0.1(``prompt_embeddings``_i) + 0.5 s +
  pos_embed(``prompt_cor``) (the backbone's own positional MLP) are inserted after position 0 of the block input
  (positions already added) and dropped after the block, so every block gets fresh ones.
* **Propagation** on the rows after the cls token (prompts and patches): the rows are flattened to (B * R, D);
  neighbourhood rows n (B * G/2, group_size/2, D) become DropPath(n) + n (2n in eval), v = GELU(BN1d(max over the
  neighbours)) + 0.3 x (level-2 centre rows); the last G rows get + 0.3 * sum_k w_k v_k. After the block
  (``propagation="after"``, the official PB_T50_RS / OBJ_ONLY / ModelNet40 configs) or on the block input before
  attention (``"before"``, the official OBJ_BG config).
* **Adapter** on the rows after the cls token: y + A(y + 0.5 s) in blocks ``i < min(prompt_depth, 6)``, else
  y + A(y); A(z) = 0.7 * ln2(Dropout0.1(QuickGELU(ln1(LayerNorm(z))))), width 16. ``adapter.scale`` exists and
  trains but the constant 0.7 is used (so it never gets a gradient), as official.
* **Head** input: concat(the backbone's global tokens, max of the patch tokens, raw s): 3D on Point-MAE, with the
  official head dropout 0.6.

**The propagation index quirk (default ``propagation_index="official"``).** The flat indices assume G rows per
sample (offset b * G) while blocks with prompts hold G + 10, so index b * G + j reads sample floor((b*G + j) / (G+10)),
row (b*G + j) mod (G+10): sample 0 reads its prompts for j < 10, later samples read rows shifted back by 10 b and
spill into earlier samples. A cloud's logits therefore depend on the other clouds of its batch and on its place in
it (training too). ``propagation_index="per_sample"`` is the corrected gather (only the patch rows, as in the blocks
without prompts): a deviation, each cloud independent of its batch; weights trained one way do not transfer
exactly to the other.

**Trained**, as the official ``runner_module`` rule (names with point_prompt, shift_net, shape_feature_mlp,
adapter, cls_pos, cls_token, cls_head_, prompt_embeddings, prompt_cor, out_transform): everything GAPrompt adds
but ``scaler1`` / ``scaler2`` (registered for the official layout, never trained, unused as with the official
``scaler: False``), plus cls token, cls pos and head: 628,147 on Point-MAE with 15 classes and 128 groups. Frozen
BatchNorms keep updating their statistics in train mode, as in the official runner. The farthest point samplings
(ShiftNet's two, the backbone's grouper, the second level) follow the CUDA kernel's near-origin rule by default
(``exclude_near_origin``): a point within 0.032 of the origin - e.g. a prompt point - is never a centre.

Other backbones: the wrapper around ``group_divider`` and the sequence hook attach to every point classifier; the
backbone's global tokens play the official cls token's part (no propagation, no adapter) and the rows GAPrompt
works on are [prompts, patches] (so the index quirk is the official one). Point-BERT: as Point-MAE (s has the
blocks' width). ACT: Point-MAE's classifier. ReCon: the prompts go after the cls token, before img and text; the
head reads concat(cls, img, text, max, s) (5D). PointGPT: the prompts go after the sos token, before cls; the head
reads concat(cls, max, s) (3D) after ``cls_norm``. The ViT (no point grouper) and segmentation models (no
classification head) are refused.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from ..ops.fps import farthest_point_sample
from ..ops.grouping import gather_points
from ..ops.knn import knn_indices
from .base import NEVER_TRAINED, PeftConfig, PeftError, backbone_blocks, register_method
from .official import TokenPooling, set_pooling
from .prompt_generator import PROMPT_CLAIM
from .shift_net import ShiftNet, nearest_weights

NUM_TOKENS = 10  # the official prompt_cor has 10 rows, so num_tokens is 10
ADAPTER_WIDTH = 16
ADAPTER_SCALE = 0.7
SHAPE_TERM_BLOCKS = 6  # the official adapter adds 0.5 s in blocks < 6 (and only where prompts are inserted)
PROPAGATION_NEIGHBOURS = 64
SIDES = ("after", "before")
INDEX_MODES = ("official", "per_sample")


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ShapeAdapter(nn.Module):
    """The official ``Adapter``: 0.7 * ln2(Dropout(QuickGELU(ln1(LayerNorm(x))))). (..., D) -> (..., D).
    ``scale`` (Linear(D, 1)) is part of the official layout and unused."""

    def __init__(self, dim: int, width: int = ADAPTER_WIDTH, dropout: float = 0.1) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(dim)
        self.scale = nn.Linear(dim, 1)
        self.ln1 = nn.Linear(dim, width)
        self.activate = QuickGELU()
        self.dropout = nn.Dropout(dropout)
        self.ln2 = nn.Linear(width, dim)
        for layer in (self.scale, self.ln1, self.ln2):
            nn.init.kaiming_uniform_(layer.weight, a=5 ** 0.5)
            nn.init.normal_(layer.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln2(self.dropout(self.activate(self.ln1(self.layer_norm(x))))) * ADAPTER_SCALE


class GAPromptLayer(nn.Module):
    """What GAPrompt adds to one block (official names, official keys ``blocks.blocks.{i}.*``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.prompt_dropout = nn.Dropout(0.1)
        self.prompt_embeddings = nn.Parameter(torch.zeros(NUM_TOKENS, dim))
        self.scaler1 = nn.Parameter(torch.full((1,), 0.5))
        self.scaler2 = nn.Parameter(torch.full((1,), 0.5))
        for unused in (self.scaler1, self.scaler2):
            setattr(unused, NEVER_TRAINED, True)
        self.adapter = ShapeAdapter(dim)
        self.out_transform = nn.Sequential(nn.BatchNorm1d(dim), nn.GELU())


class PointPrompt(nn.Module):
    """Learned points appended after the cloud: (B, N, 3) -> (B, N + K, 3), the points scaled by ``factor``."""

    def __init__(self, count: int, scale: float, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.points = nn.Parameter(torch.zeros(1, count, 3))
        nn.init.uniform_(self.points, -scale, scale)

    def forward(self, cloud: torch.Tensor) -> torch.Tensor:
        prompts = self.points.to(cloud.dtype).expand(cloud.shape[0], -1, -1) * self.factor
        return torch.cat([cloud, prompts], dim=1)


@dataclasses.dataclass
class Geometry:
    """The per-forward geometry: level-1 neighbour rows (B * G2 * K2,) and level-2 centre rows (B * G2,), both
    flat with the offset b * G; propagation weights (B, G, G2) (dense, zero outside the nearest)."""

    groups: int
    level1: torch.Tensor
    level2: torch.Tensor
    weights: torch.Tensor


class GAPromptGrouper(nn.Module):
    """Wraps the backbone's ``group_divider``: moves the cloud (ShiftNet), appends the prompt points, groups, and
    hands the centres to the method. (B, N, 3) -> neighbourhoods (B, G, M, 3), centres (B, G, 3)."""

    is_peft_layer = True

    def __init__(self, base: nn.Module, method: "GAPrompt") -> None:
        super().__init__()
        self.base = base
        object.__setattr__(self, "method", method)  # registered in the host's peft_modules

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        neighbourhoods, centres = self.base(self.method.prepare_cloud(points))
        self.method.record_centres(centres)
        return neighbourhoods, centres


class GAPrompt(nn.Module):
    """GAPrompt's layers and the sequence hook running them (see the module docstring). A block's tokens are
    [position 0, prompts (blocks < prompt_depth), the backbone's other global tokens, G patches]."""

    def __init__(self, config: "GAPromptConfig", backbone: nn.Module) -> None:
        super().__init__()
        grouper = backbone.group_divider
        dim, blocks = backbone.embed_dim, backbone_blocks(backbone)
        self.config = config
        self.fps_backend = getattr(grouper, "fps_backend", "auto")
        self.level2_size = (grouper.num_group // 2, grouper.group_size // 2)
        self.shift_net = ShiftNet(grouper.num_group, grouper.group_size, config.perturbation,
                                  config.interpolation_neighbours, self.fps_backend, config.exclude_near_origin)
        self.shape_feature_mlp = nn.Sequential(nn.Linear(self.shift_net.shape_width, ADAPTER_WIDTH), nn.GELU(),
                                               nn.Dropout(0.25), nn.Linear(ADAPTER_WIDTH, dim))
        for layer in (self.shape_feature_mlp[0], self.shape_feature_mlp[3]):
            nn.init.kaiming_uniform_(layer.weight, a=5.0 ** 0.5)
        self.point_prompt = PointPrompt(config.prompt_points, config.prompt_scale, config.prompt_factor)
        self.prompt_cor = nn.Parameter(nn.init.trunc_normal_(torch.zeros(NUM_TOKENS, 3), std=0.06))
        self.layers = nn.ModuleList(GAPromptLayer(dim) for _ in blocks)
        object.__setattr__(self, "pos_embed", backbone.pos_embed)  # the backbone's (frozen) positional MLP
        object.__setattr__(self, "drop_paths", [block.drop_path for block in blocks])
        self.extra_globals = int(backbone.num_global_tokens) - 1  # global tokens after the prompts
        self.shape: torch.Tensor | None = None
        self.geometry: Geometry | None = None
        self._token_pos: torch.Tensor | None = None
        self._pos: torch.Tensor | None = None

    # -- per forward -------------------------------------------------------------------------------------------
    def prepare_cloud(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) -> moved cloud with the prompt points appended (B, N + K, 3); records s (B, 1, D)."""
        moved, shape = self.shift_net(points)
        self.shape = self.shape_feature_mlp(shape).unsqueeze(1)
        return self.point_prompt(moved)

    def record_centres(self, centres: torch.Tensor) -> None:
        """centres (B, G, 3) in token order -> the second-level grouping and the propagation weights."""
        batch, groups, _ = centres.shape
        count, size = self.level2_size
        picked = farthest_point_sample(centres, count, self.fps_backend, self.config.exclude_near_origin)
        level2 = gather_points(centres, picked)  # (B, G2, 3), differentiable as the official gather
        members = knn_indices(centres, level2, size)  # (B, G2, K2)
        offset = torch.arange(batch, device=centres.device) * groups
        index, weight = nearest_weights(centres, level2, PROPAGATION_NEIGHBOURS, 1e-8)
        dense = weight.new_zeros(batch, groups, count).scatter(-1, index, weight)
        self.geometry = Geometry(groups, (members + offset.view(-1, 1, 1)).reshape(-1),
                                 (picked + offset.view(-1, 1)).reshape(-1), dense)
        self._token_pos = self.pos_embed(self.prompt_cor.to(centres.dtype))

    # -- the steps of a block ----------------------------------------------------------------------------------
    def _split(self, x: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1 + P + E + G, D) -> the rows GAPrompt works on, [prompts, patches] (B, P + G, D), and the E other
        global tokens (B, E, D) (none on Point-MAE; ReCon's img and text, PointGPT's cls), which it leaves alone
        as the official code leaves the cls token."""
        prompts = NUM_TOKENS if index < self.config.prompt_depth else 0
        start, end = 1 + prompts, 1 + prompts + self.extra_globals
        return torch.cat([x[:, 1:start], x[:, end:]], dim=1), x[:, start:end]

    def propagate(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> the same with the last G rows propagated (see the module docstring)."""
        geo = self.geometry
        rows, others = self._split(x, index)
        batch, count, dim = rows.shape
        if self.config.propagation_index == "official":
            flat = rows.reshape(batch * count, dim)
        else:
            flat = rows[:, -geo.groups:].reshape(batch * geo.groups, dim)
        level2 = geo.weights.shape[-1]
        neighbours = flat[geo.level1].reshape(batch * level2, -1, dim)
        neighbours = self.drop_paths[index](neighbours) + neighbours
        pooled = neighbours.reshape(batch, level2, -1, dim).max(dim=2).values
        values = self.layers[index].out_transform(pooled.transpose(1, 2)).transpose(1, 2)
        values = values + 0.3 * flat[geo.level2].reshape(batch, level2, dim)
        patches = rows[:, -geo.groups:] + 0.3 * (geo.weights @ values)
        return torch.cat([x[:, :1], rows[:, :-geo.groups], others, patches], dim=1)

    def adapt(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D): the adapter on [prompts, patches], then the prompts dropped."""
        rows, others = self._split(x, index)
        adapter = self.layers[index].adapter
        prompted = index < self.config.prompt_depth
        if prompted and index < SHAPE_TERM_BLOCKS:
            rows = rows + adapter(rows + self.shape * 0.5)
        else:
            rows = rows + adapter(rows)
        return torch.cat([x[:, :1], others, rows[:, NUM_TOKENS:] if prompted else rows], dim=1)

    def pool(self, tokens: torch.Tensor, prefix: int) -> torch.Tensor:
        """Head input: tokens (B, T, D) -> concat(the prefix tokens, max of the rest, s) (B, (prefix + 2) D)."""
        if self.shape is None:
            raise PeftError("gaprompt: the head ran without a shape feature from this forward's grouping")
        return torch.cat([tokens[:, :prefix].flatten(1), tokens[:, prefix:].max(dim=1).values, self.shape[:, 0]],
                         dim=-1)

    # -- sequence hook -----------------------------------------------------------------------------------------
    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if self.geometry is None or self.shape is None:
            raise PeftError("gaprompt: the blocks ran without this forward's grouping (call the whole model)")
        self._pos = pos
        if index < self.config.prompt_depth:
            layer = self.layers[index]
            batch = x.shape[0]
            prompts = layer.prompt_dropout(layer.prompt_embeddings.expand(batch, -1, -1))
            prompts = prompts + 0.5 * self.shape + self._token_pos.expand(batch, -1, -1)
            x = torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1)
            if pos is not None:
                pos = torch.cat([pos[:, :1], pos.new_zeros(prompts.shape), pos[:, 1:]], dim=1)
        if self.config.propagation == "before":
            return self.propagate(index, x if pos is None else x + pos), None
        return x, pos

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if self.config.propagation == "after":
            x = self.propagate(index, x)
        pos, self._pos = self._pos, None
        x = self.adapt(index, x)
        if index == len(self.layers) - 1:
            self.geometry = None  # the head still reads self.shape
        return x, pos

    def num_added_tokens(self, depth: int) -> int:
        return 0  # the prompts leave after every block


@register_method
@dataclasses.dataclass
class GAPromptConfig(PeftConfig):
    """GAPrompt with the official PB_T50_RS values. The other official configs: OBJ_BG ``prompt_points=10,
    perturbation=0.2, propagation="before"``; OBJ_ONLY ``prompt_points=10, perturbation=0.1``; ModelNet40
    ``perturbation=0.05`` (with 64 groups in the model). See the module docstring for each option."""

    method: ClassVar[str] = "gaprompt"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM, "group_divider (wrapped)"})
    official_markers: ClassVar[tuple[str, ...]] = ("shift_net.", "shape_feature_mlp.", "point_prompt.points")

    prompt_points: int = 5
    prompt_scale: float = 0.01
    prompt_factor: float = 5.0
    perturbation: float = 0.8
    propagation: str = "after"
    prompt_depth: int = 6
    propagation_index: str = "official"
    exclude_near_origin: bool = True
    interpolation_neighbours: int = 32
    head_dropout: float | None = 0.6
    update_frozen_bn_stats: bool = True

    def _check(self, backbone: nn.Module) -> None:
        if self.propagation not in SIDES:
            raise PeftError(f"gaprompt propagation must be one of {SIDES}, got {self.propagation!r}")
        if self.propagation_index not in INDEX_MODES:
            raise PeftError(f"gaprompt propagation_index must be one of {INDEX_MODES}, got {self.propagation_index!r}")
        if self.prompt_points < 1 or self.interpolation_neighbours < 1 or self.prompt_depth < 0:
            raise PeftError("gaprompt needs prompt_points >= 1, interpolation_neighbours >= 1 and prompt_depth >= 0")
        grouper = getattr(backbone, "group_divider", None)
        if grouper is None or not hasattr(grouper, "num_group") or not hasattr(backbone, "pos_embed"):
            raise PeftError(f"gaprompt moves and groups a point cloud, but {type(backbone).__name__} has no point "
                            f"grouper (`group_divider`) and positional MLP: it applies to point backbones only")
        if not getattr(backbone, "classifier_name", None) or getattr(backbone, "num_global_tokens", 0) < 1:
            raise PeftError(f"gaprompt's head reads the cls token, the max of the patches and the shape feature; "
                            f"{type(backbone).__name__} has no cls token and classification head (segmentation)")
        if grouper.num_group < 4 or grouper.group_size < 2:
            raise PeftError(f"gaprompt groups the centres again (num_group // 2, group_size // 2): it needs at least "
                            f"4 groups of 2 points, got {grouper.num_group} of {grouper.group_size}")

    def inject(self, backbone: nn.Module, host) -> list[str]:
        self._check(backbone)
        method = GAPrompt(self, backbone)
        host.peft_modules["gaprompt"] = method
        if self.exclude_near_origin:
            backbone.group_divider.exclude_near_origin = True  # the CUDA kernel's rule, as the official grouping
        backbone.group_divider = GAPromptGrouper(backbone.group_divider, method)
        backbone.block_stack.add_sequence_hook(method)
        set_pooling(backbone, "gaprompt", TokenPooling("global tokens, max of patches, shape feature", method.pool),
                    backbone.num_features + backbone.embed_dim)
        if self.head_dropout is not None:
            for module in backbone.get_submodule(backbone.classifier_name).modules():
                if isinstance(module, nn.Dropout):
                    module.p = self.head_dropout
        return []  # cls token, cls pos and the head train by default; everything added trains

    def official_keys(self, host) -> dict[str, str]:
        """{our key: official key}: top-level names as they are, ``layers.{i}.*`` -> ``blocks.blocks.{i}.*``."""
        out = {}
        for key in host.peft_modules["gaprompt"].state_dict():
            official = f"blocks.blocks.{key[len('layers.'):]}" if key.startswith("layers.") else key
            out[f"peft_modules.gaprompt.{key}"] = official
        return out
