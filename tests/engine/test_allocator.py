"""The CPU allocator tuning of the tools (pcpeft._allocator): applied once per process, off with the env switch."""
import os
import subprocess
import sys

import pytest

CHECK = ("import pcpeft._allocator as a, torch; first = a.tune_cpu_allocator(); "
         "x = torch.randn(64, 2 ** 20); del x; y = torch.randn(64, 2 ** 20).sum(); "  # 256 MB blocks still allocate
         "print(first, a.tune_cpu_allocator())")


def run_check(**env_overrides: str) -> str:
    env = {**os.environ, **env_overrides}
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuning_applies_once_on_glibc():
    assert run_check(PCPEFT_MALLOC_TUNING="1") == "True True"


def test_tuning_is_off_with_the_switch():
    assert run_check(PCPEFT_MALLOC_TUNING="0") == "False False"


def test_importing_the_library_does_not_tune():
    code = "import pcpeft, pcpeft.models, pcpeft.peft, pcpeft._allocator as a; print(a._applied)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "None", done.stderr
