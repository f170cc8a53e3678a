"""PointGST's spectral bases: eigenvectors of a normalised graph Laplacian over the patch centres, and the
z-order that splits the centres into local groups.

``official_basis`` restates the official computation, ill-conditioning included:

* ``L = torch.cdist(c, c)``; ``m`` = the smallest positive entry of L over the **whole batch** (one scalar);
* ``A = 1 / (L / m + I)`` (dense, no kNN); ``Lap = I - D^-1/2 A D^-1/2`` with ``D^-1/2 = rsqrt(rowsum(A) + 1e-6)``
  applied as diagonal matrices;
* ``U`` = ``torch.linalg.eigh(Lap)`` eigenvectors (float32, ascending eigenvalues, signs as returned).

``torch.cdist`` (matrix-multiply path for more than 25 points) leaves rounding noise on the diagonal, so ``m`` is
usually that noise and not the smallest centre distance: ``L / m`` is then huge, ``A`` is close to the identity
plus tiny couplings and the eigenvectors of the nearly degenerate spectrum are ill-defined. Any other numerical
path (float64, CUDA, other signs, exact distances, another batch split) moves the logits by ~5e-4 to 7e-4.

``stable_basis`` is a well-conditioned alternative (an option, never the default): exact pairwise distances,
``m`` = each cloud's smallest off-diagonal distance, float64 Laplacian and ``eigh``, eigenvector signs fixed so
that each column's largest-magnitude entry is positive, cast back to the input dtype.
"""
from __future__ import annotations

import torch


def _laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """(B, N, N) -> I - D^-1/2 A D^-1/2, D = row sums (+1e-6), diagonal scaling as matrix products."""
    inv_sqrt = torch.diag_embed(torch.rsqrt(adjacency.sum(dim=-1) + 1e-6))
    eye = torch.eye(adjacency.shape[-1], device=adjacency.device, dtype=adjacency.dtype)
    return eye - inv_sqrt @ adjacency @ inv_sqrt


def official_basis(centres: torch.Tensor) -> torch.Tensor:
    """centres (B, N, 3) -> U (B, N, N), as the official code computes it (see the module docstring)."""
    distance = torch.cdist(centres, centres)
    smallest = distance[distance > 0].min()
    eye = torch.eye(distance.shape[-1], device=distance.device, dtype=distance.dtype)
    return torch.linalg.eigh(_laplacian(1 / (distance / smallest + eye)))[1]


def stable_basis(centres: torch.Tensor) -> torch.Tensor:
    """centres (B, N, 3) -> U (B, N, N), well conditioned (see the module docstring)."""
    c = centres.double()
    distance = (c[:, :, None, :] - c[:, None, :, :]).pow(2).sum(-1).sqrt()
    count = distance.shape[-1]
    eye = torch.eye(count, device=c.device, dtype=c.dtype)
    off = distance + eye * torch.finfo(c.dtype).max
    smallest = off.flatten(1).min(dim=1).values.clamp_min(1e-12)[:, None, None]
    basis = torch.linalg.eigh(_laplacian(1 / (distance / smallest + eye)))[1]
    peak = basis.gather(1, basis.abs().argmax(dim=1, keepdim=True))
    return (basis * torch.where(peak < 0, -1.0, 1.0)).to(centres.dtype)


BASES = {"official": official_basis, "stable": stable_basis}


def z_order_keys(centres: torch.Tensor, scale: float = 100.0, bits: int = 16) -> torch.Tensor:
    """centres (B, N, 3) -> int64 keys (B, N): the coordinates times ``scale``, truncated to integers, their low
    ``bits`` bits (two's complement) interleaved with the **y** axis in the highest position of each triple, then
    x, then z (the official code passes the axes as y, x, z to an x-highest encoder)."""
    c = (centres * scale).long()
    first, second, third = c[..., 1], c[..., 0], c[..., 2]
    key = torch.zeros_like(first)
    for bit in range(bits):
        key |= ((first >> bit) & 1) << (3 * bit + 2)
        key |= ((second >> bit) & 1) << (3 * bit + 1)
        key |= ((third >> bit) & 1) << (3 * bit)
    return key


def local_split(centres: torch.Tensor, local: int, basis) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """centres (B, N, 3) -> (order (B, N), inverse order (B, N), local bases (B, N/local, local, local)):
    the centres sorted by z-order key, cut into groups of ``local``, one basis per group (the official scalar
    normalisation then runs over all groups of the batch together)."""
    batch, count, _ = centres.shape
    order = torch.sort(z_order_keys(centres))[1]
    inverse = torch.sort(order)[1]
    ordered = torch.gather(centres, 1, order.unsqueeze(-1).expand(-1, -1, 3))
    groups = count // local
    sub = basis(ordered.reshape(batch * groups, local, 3)).reshape(batch, groups, local, local)
    return order, inverse, sub
