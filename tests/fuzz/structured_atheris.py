"""Coverage-guided fuzzing (atheris, libFuzzer) of the structured readers through their harnesses.

    python -m tests.fuzz.structured_atheris READER SECONDS CORPUS_DIR [--crashes DIR] [--memory-mb N]

READER is a name of :data:`structured_harnesses.READERS` (``h5_scanobjectnn``, ``pickle_dat``,
``torch_checkpoint``, ``safetensors_checkpoint``, ``recipe_yaml``, ...). CORPUS_DIR is seeded with the reader's
valid files when empty and grows with the inputs libFuzzer keeps. Bounds per input: SIGALRM after
``--seconds-per-input`` (the harness's own :func:`~structured_harnesses.time_limit`; libFuzzer's timer is off so
that it does not share the signal), a faulthandler watchdog that ends the process when a hang sits in C code,
``RLIMIT_AS`` at the process's size plus ``--memory-mb``, and the harness's peak-RSS check. Every input breaking
the property is saved under ``--crashes`` (the first ones of each kind of failure, as ``<reader>-<sha1>`` with a
``.txt`` saying what happened) and fuzzing goes on; an input that kills the process (a hang in C code, a crash of
a native library) is saved from ``.current-<reader>`` by :func:`run`, which starts the fuzzer again until the time
is spent.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the modules whose Python code libFuzzer sees (their branches guide the mutations)
INSTRUMENTED = ["pcpeft", "yaml", "h5py", "safetensors", "pickle", "json", "zipfile", "_weights_only_unpickler"]
#: modules imported (and so instrumented) before fuzzing: the readers and what they import lazily
READER_MODULES = ["pcpeft.datasets.h5", "pcpeft.datasets.scanobjectnn", "pcpeft.datasets.modelnet",
                  "pcpeft.io.safe_pickle", "pcpeft.io.safe_torch", "pcpeft.models.checkpoints",
                  "pcpeft.peft.adapter_files", "pcpeft.export.weights_export", "pcpeft.engine.recipe.yaml_io",
                  "pcpeft.engine.recipe.schema", "pcpeft.commands.recipe_input", "pcpeft.engine.recipe.official",
                  "torch._weights_only_unpickler"]
SAVED_PER_KIND = 3


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) << 10
    return 0


def _import_harnesses():
    """The harness module, with the readers' modules imported under atheris' instrumentation."""
    import importlib

    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        for name in READER_MODULES:
            importlib.import_module(name)
        from tests.fuzz import structured_harnesses
    return structured_harnesses


class _CrashLog:
    """Saves the inputs that break the property: the first :data:`SAVED_PER_KIND` of each kind of failure."""

    def __init__(self, reader: str, folder: Path) -> None:
        self.reader, self.folder, self.kinds = reader, folder, {}
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, data: bytes, err: BaseException) -> None:
        cause = err.__cause__
        where = ""
        if cause is not None and cause.__traceback__ is not None:
            import traceback

            frame = traceback.extract_tb(cause.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
        kind = f"{type(cause).__name__ if cause else ''}@{where}|{str(err).split(':', 2)[1][:60]}"
        count = self.kinds.get(kind, 0)
        self.kinds[kind] = count + 1
        if count >= SAVED_PER_KIND:
            return
        name = f"{self.reader}-{hashlib.sha1(data).hexdigest()[:16]}"
        (self.folder / name).write_bytes(data)
        (self.folder / f"{name}.txt").write_text(f"{kind}\n{err}\n")
        print(f"[structured_atheris] property broken ({kind}); saved {self.folder / name}", flush=True)


def main(reader: str, seconds: int, corpus_dir: str | os.PathLike, crash_dir: str | os.PathLike | None = None,
         memory_mb: int = 2048, seconds_per_input: float = 10.0, max_len: int = 1 << 16) -> None:
    """Fuzz ``reader`` for ``seconds`` (libFuzzer ``-max_total_time``) from the corpus in ``corpus_dir``."""
    import faulthandler

    import atheris

    harnesses = _import_harnesses()
    if reader not in harnesses.READERS:
        raise SystemExit(f"unknown reader {reader!r}; choose from {sorted(harnesses.READERS)}")
    corpus = Path(corpus_dir)
    if not corpus.is_dir() or not any(corpus.iterdir()):
        harnesses.write_seed_corpus(reader, corpus)
    crashes = _CrashLog(reader, Path(crash_dir) if crash_dir else corpus.parent / "crashes")
    current = crashes.folder / f".current-{reader}"
    harness = harnesses.READERS[reader]
    harness(harnesses.seeds(reader)[0])  # imports, caches and the first model builds happen outside the bounds
    harnesses.SECONDS_PER_INPUT = seconds_per_input
    limit = _vm_bytes() + (memory_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    def test_one_input(data: bytes) -> None:
        current.write_bytes(data)
        faulthandler.dump_traceback_later(3 * seconds_per_input + 5, exit=True)
        try:
            harness(data)
        except harnesses.PropertyViolation as err:
            crashes.save(data, err)
        finally:
            faulthandler.cancel_dump_traceback_later()

    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-timeout=0", f"-max_len={max_len}",
                   f"-rss_limit_mb={memory_mb + 2048}", f"-artifact_prefix={crashes.folder}/{reader}-native-",
                   "-print_final_stats=1", "-len_control=0"], test_one_input)
    atheris.Fuzz()


def run(reader: str, seconds: int, corpus_dir: str, crash_dir: str, extra: list[str]) -> int:
    """Run :func:`main` in child processes until ``seconds`` are spent: a child killed by a hang in C code or a
    native crash leaves its input in ``.current-<reader>``, saved here as ``<reader>-killed-<sha1>``."""
    deadline = time.monotonic() + seconds
    restarts = 0
    while (left := int(deadline - time.monotonic())) > 5:
        child = subprocess.run([sys.executable, "-m", "tests.fuzz.structured_atheris", reader, str(left), corpus_dir,
                                "--crashes", crash_dir, "--child", *extra], cwd=HERE.parents[1])
        if child.returncode == 0:
            break
        current = Path(crash_dir) / f".current-{reader}"
        if current.is_file():
            data = current.read_bytes()
            (Path(crash_dir) / f"{reader}-killed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
        restarts += 1
        print(f"[structured_atheris] {reader}: the fuzzer ended with status {child.returncode}; restarting",
              flush=True)
    return restarts


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reader")
    parser.add_argument("seconds", type=int)
    parser.add_argument("corpus_dir")
    parser.add_argument("--crashes", default=None, help="folder for the inputs breaking the property")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address space above the process's own")
    parser.add_argument("--seconds-per-input", type=float, default=10.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _arguments(sys.argv[1:])
    crash_dir = args.crashes or str(Path(args.corpus_dir).parent / "crashes")
    if args.child:
        sys.argv = sys.argv[:1]  # atheris.Setup gets its own arguments
        main(args.reader, args.seconds, args.corpus_dir, crash_dir, args.memory_mb, args.seconds_per_input)
    else:
        Path(crash_dir).mkdir(parents=True, exist_ok=True)
        run(args.reader, args.seconds, args.corpus_dir, crash_dir,
            ["--memory-mb", str(args.memory_mb), "--seconds-per-input", str(args.seconds_per_input)])
