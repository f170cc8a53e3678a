"""Independent restatement of the official PointLoRA forward (songw-zju/PointLoRA @ 82719f0,
``models/PointLoRA.py`` ``PointTransformer_PointLoRA`` after ``inject_pointlora2pt``), for tests.

Written from the facts of the official repository in plain torch, sharing no code with ``pcpeft``. The modules
carry the official names, so ``state_dict()`` *is* an official fine-tuned state dict (266 entries at full size).
The official hard-coded sizes (scale-1 grouping 128 x 32, scale-2 grouping 64 x 64, top-k 32 and 8, the slices
``1:129`` and ``-40:``) are parameters here so that a tiny model can be compared: the scale-1 grouping takes the
main grouping's settings, and the slices follow from the group count and the two k.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.references.impl import RefEncoder as Encoder  # Point-MAE's tokenizer, restated once


# -- grouping: FPS from index 0 over squared distances, kNN by squared distance ----------------------------------
def fps(cloud: torch.Tensor, count: int) -> torch.Tensor:
    """cloud (N, 3) -> (count,) indices: farthest-point order starting at point 0."""
    chosen = [0]
    nearest = torch.full((cloud.shape[0],), float("inf"))
    for _ in range(count - 1):
        diff = cloud - cloud[chosen[-1]]
        nearest = torch.minimum(nearest, diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2])
        chosen.append(int(torch.argmax(nearest)))
    return torch.tensor(chosen)


def group(points: torch.Tensor, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """points (B, N, 3) -> neighbourhoods relative to their centre (B, count, size, 3), centres (B, count, 3)."""
    neighbourhoods, centres = [], []
    for cloud in points:
        centre = cloud[fps(cloud, count)]
        dist = ((centre[:, None, :] - cloud[None, :, :]) ** 2).sum(-1)
        nearest = torch.argsort(dist, dim=1, stable=True)[:, :size]
        neighbourhoods.append(cloud[nearest] - centre[:, None, :])
        centres.append(centre)
    return torch.stack(neighbourhoods), torch.stack(centres)


# -- layers ------------------------------------------------------------------------------------------------------
class MaskPredictor(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, dim // 2), nn.Linear(dim // 2, 1)

    def forward(self, tokens):
        return torch.sigmoid(self.fc2(F.relu(self.fc1(tokens))).squeeze(-1))


class LoRALinear(nn.Module):
    """``utils/lora.py``: the pre-trained linear at ``.linear``, A, B and the [1] gate ``weight``; alpha/r unused."""

    def __init__(self, rank: int, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.lora_A = nn.Parameter(torch.zeros(rank, linear.in_features))
        self.lora_B = nn.Parameter(torch.zeros(linear.out_features, rank))
        self.weight = nn.Parameter(torch.tensor([1.0]))

    def forward(self, x, mlp):
        result = F.linear(x, self.linear.weight, self.linear.bias)
        return result + (x @ self.lora_A.T @ self.lora_B.T + self.weight * mlp(x))


class Mlp(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(d, h), nn.GELU(), nn.Linear(h, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, rank: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = LoRALinear(rank, nn.Linear(dim, 3 * dim, bias=False))
        self.proj = LoRALinear(rank, nn.Linear(dim, dim))

    def forward(self, x, proj_mlp, qkv_mlp):
        b, n, c = x.shape
        qkv = self.qkv(x, qkv_mlp).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((qkv[0] @ qkv[1].transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ qkv[2]).transpose(1, 2).reshape(b, n, c), proj_mlp)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, rank: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.attn = Attention(dim, heads, rank)

    def forward(self, x, proj_mlp, qkv_mlp):
        x = x + self.attn(self.norm1(x), proj_mlp, qkv_mlp)
        return x + self.mlp(self.norm2(x))


def small_mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))


class Blocks(nn.Module):
    """Official ``TransformerEncoder``: the blocks and the four shared MLPs."""

    def __init__(self, dim: int, depth: int, heads: int, rank: int, hidden: int, patches: int, selected: int) -> None:
        super().__init__()
        self.patches, self.selected = patches, selected
        self.blocks = nn.ModuleList([Block(dim, heads, rank) for _ in range(depth)])
        self.prompt_mlp = small_mlp(dim, hidden, dim)
        self.prompt_pos_mlp = small_mlp(dim, hidden, dim)
        self.prompt_proj_mlp = small_mlp(dim, hidden, dim)
        self.prompt_qkv_mlp = small_mlp(dim, hidden, 3 * dim)

    def forward(self, x, pos):
        g, k = self.patches, self.selected
        for block in self.blocks:
            x = x + pos
            x = x.clone()
            x[:, 1:g + 1] = x[:, 1:g + 1] + self.prompt_mlp(x[:, 1:g + 1])
            x[:, -k:] = x[:, -k:] + self.prompt_pos_mlp(x[:, -k:])
            x = block(x, self.prompt_proj_mlp, self.prompt_qkv_mlp)
        return x


def entropy_term(p: torch.Tensor) -> torch.Tensor:
    return torch.mean(p * torch.log(p + 1e-6) + (1 - p) * torch.log(1 - p + 1e-6))


class RefPointLoRA(nn.Module):
    """Official ``PointTransformer_PointLoRA`` after injection. pts (B, N, 3) -> (logits (B, classes), mask_loss)."""

    def __init__(self, classes: int, num_group: int, group_size: int, scale2: tuple[int, int] = (64, 64),
                 top_k: tuple[int, int] = (32, 8), depth: int = 12, dim: int = 384, heads: int = 6, rank: int = 8,
                 hidden: int = 32) -> None:
        super().__init__()
        self.num_group, self.group_size, self.scale2, self.top_k = num_group, group_size, scale2, top_k
        self.encoder = Encoder(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.lora_mask_predictor = MaskPredictor(dim)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.blocks = Blocks(dim, depth, heads, rank, hidden, num_group, sum(top_k))
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = nn.Sequential(
            nn.Linear(2 * dim, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, classes))

    @staticmethod
    def _pick(scores, k, tokens, pos):
        _, index = torch.topk(scores, k, dim=1)
        rows = torch.arange(tokens.shape[0]).unsqueeze(1).expand(-1, k)
        return tokens[rows, index], pos[rows, index]

    def forward(self, pts):
        neighbourhood, centre = group(pts, self.num_group, self.group_size)
        neighbourhood1, centre1 = group(pts, self.num_group, self.group_size)  # center_divider1
        neighbourhood2, centre2 = group(pts, *self.scale2)  # center_divider2
        tokens = self.encoder(neighbourhood)
        tokens1, tokens2 = self.encoder(neighbourhood1), self.encoder(neighbourhood2)
        b = tokens.shape[0]
        pos, pos1, pos2 = self.pos_embed(centre), self.pos_embed(centre1), self.pos_embed(centre2)
        p1, p2 = self.lora_mask_predictor(tokens1), self.lora_mask_predictor(tokens2)
        mask_loss = entropy_term(p1) + 0.25 * entropy_term(p2)
        sel1, sel_pos1 = self._pick(p1, self.top_k[0], tokens1, pos1)
        sel2, sel_pos2 = self._pick(p2, self.top_k[1], tokens2, pos2)
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens, sel1, sel2], dim=1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), pos, sel_pos1, sel_pos2], dim=1)
        x = self.norm(self.blocks(x, pos))
        feature = torch.cat([x[:, 0], x[:, 1:].max(1)[0]], dim=-1)
        return self.cls_head_finetune(feature), mask_loss


def randomise_official(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every tensor non-zero and non-trivial: LoRA A and B, the gates (not 1), BatchNorm statistics and counters.
    Matrices get N(0, 1/fan_in) entries so the many added terms keep the activations moderate; the predictor's last
    layer is larger, so that its scores spread and the top-k has clear margins."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.fill_(int(torch.randint(1, 100, (1,), generator=gen)))
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith((".qkv.weight", ".proj.weight")):  # the [1] gates
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif tensor.dim() == 1 or name.endswith((".1.weight", ".5.weight")):  # norms, BatchNorm weights
                tensor.copy_(1 + torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name == "lora_mask_predictor.fc2.weight":  # scores spread over (0, 1): no near-ties at the k-th
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 20 / tensor.shape[1] ** 0.5)
            elif name.endswith(("cls_token", "cls_pos")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.5)
            else:
                fan_in = tensor.shape[1] if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / fan_in ** 0.5)
    return model
