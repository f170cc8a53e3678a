"""Mixed precision: which autocast a run uses on its device.

CUDA: ``train.amp`` means fp16 autocast with a gradient scaler (as before). CPU: bf16 autocast is a separate opt-in
(``train.amp_cpu``, or ``--amp`` on train / test / bench), because the recipes' ``train.amp: true`` default always
meant "fp16 on CUDA" and turning every CPU run into bf16 would silently change their numerics. bf16 is used only
where the CPU computes it natively (AVX-512 BF16 or AMX); elsewhere the run stays fp32 and logs why (emulated bf16
is slower than fp32).
"""
from __future__ import annotations

import functools
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

LOG = logging.getLogger("pcpeft")

#: /proc/cpuinfo flags of native bf16 arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> tuple[bool, str]:
    """Whether this CPU has native bf16 matrix arithmetic, and the evidence (a cpuinfo flag or oneDNN's answer)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
        found = [flag for flag in BF16_FLAGS if flag in flags]
        if found:
            return True, f"cpu flag {found[0]}"
        if flags:
            return False, f"no {' / '.join(BF16_FLAGS)} cpu flag (capability {torch.backends.cpu.get_cpu_capability()})"
    except OSError:
        pass
    mkldnn_check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if mkldnn_check is not None and mkldnn_check():
        return True, "oneDNN reports bf16 support"
    return False, f"no native bf16 found (capability {torch.backends.cpu.get_cpu_capability()})"


@dataclass(frozen=True)
class Precision:
    """The autocast of a run: ``enabled``, its ``dtype``, and a human-readable ``reason``."""

    device_type: str
    enabled: bool
    dtype: torch.dtype
    reason: str

    def autocast(self) -> AbstractContextManager:
        """``torch.autocast`` for this precision (a no-op context when disabled)."""
        if not self.enabled:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def select_precision(device: torch.device | str, amp: bool, amp_cpu: bool) -> Precision:
    """CUDA: fp16 when ``amp``; CPU: bf16 when ``amp_cpu`` and the CPU has native bf16; else fp32 (with reason)."""
    device = torch.device(device)
    if device.type == "cuda":
        if amp:
            return Precision("cuda", True, torch.float16,
                             "train.amp on CUDA: fp16 autocast with a gradient scaler (the "
                                                          "reference repositories train in fp32: --opts "
                                                          "train.amp=false matches them)")
        return Precision("cuda", False, torch.float32, "train.amp is off")
    if device.type != "cpu":
        return Precision(device.type, False, torch.float32, f"no autocast on {device.type}")
    if not amp_cpu:
        return Precision("cpu", False, torch.float32, "train.amp_cpu is off (CPU bf16 is opt-in: --amp)")
    native, evidence = cpu_native_bf16()
    if not native:
        return Precision("cpu", False, torch.float32, f"bf16 asked but {evidence}: fp32")
    return Precision("cpu", True, torch.bfloat16, f"bf16 autocast ({evidence})")


def log_precision(precision: Precision) -> Precision:
    """Log the choice (once per run) and return it."""
    LOG.info(f"precision: {'bf16' if precision.dtype == torch.bfloat16 else 'fp16' if precision.enabled else 'fp32'}"
             f" - {precision.reason}")
    return precision
