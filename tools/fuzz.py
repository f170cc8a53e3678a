"""Coverage-guided fuzzing of one point-file reader with atheris (libFuzzer for Python).

    python tools/fuzz.py ply --seconds 600
    python tools/fuzz.py pcd --seconds 60 --corpus /tmp/pcd-corpus

Runs the harness of READER from ``tests/fuzz/harnesses.py`` (write the bytes to a file of the reader's suffix, read
it, check: a well-formed cloud or one ``DatasetError`` naming the file) on inputs that libFuzzer mutates from a
corpus, for ``--seconds``. The corpus starts from the files the tests write (and the shared real meshes for OFF);
inputs that reach new code are added to it, so a later run with the same ``--corpus`` goes on from there. The
format's keywords are libFuzzer's dictionary (``READER.dict`` beside the corpus).

Findings: any other exception (saved as one file per input under ``--crashes``, the first few of each kind), an
input running longer than ``--timeout`` (libFuzzer's ``timeout-*`` file; the run then restarts for the time
left), and an allocation beyond ``--memory-mb`` above the process's size at the start (the address space is
capped, so it fails as a MemoryError instead of succeeding). Prints the inputs tried and the findings by kind;
exits 1 when there were findings, else 0.

Atheris must own its process: this tool runs the fuzzer in a child process (itself, marked by an environment
variable) and sums up what the children report.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READERS = ("ply", "pcd", "off", "xyz", "npy")
CHILD_ENV = "PCPEFT_FUZZ_CHILD"
#: libFuzzer's names of the inputs it saves itself
LIBFUZZER_ARTIFACTS = ("timeout-", "oom-", "crash-", "leak-", "slow-unit-")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="tools/fuzz.py", description="Coverage-guided fuzzing (atheris) of one point-file reader of pcpeft: "
        "every input must read to a well-formed cloud or be refused with one DatasetError naming the file.")
    parser.add_argument("reader", metavar="READER", choices=READERS,
                        help=f"the reader to fuzz: one of {', '.join(READERS)}")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="how long to fuzz, in seconds, restarts after a timeout included (default: 60)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="corpus folder: seeded with the files the tests write, grown with inputs that reach new "
                             "code, reused by later runs (default: <temp>/pcpeft-fuzz/READER/corpus)")
    parser.add_argument("--crashes", type=Path, default=None,
                        help="folder for the inputs of findings (default: a 'crashes' folder beside the corpus)")
    parser.add_argument("--timeout", type=int, default=2,
                        help="seconds one input may take before it counts as a hang (libFuzzer -timeout; default: 2)")
    parser.add_argument("--memory-mb", type=int, default=1024,
                        help="address space the fuzzing process may grow by, in MiB, after its imports; a larger "
                             "allocation fails as a MemoryError finding (default: 1024)")
    parser.add_argument("--max-len", type=int, default=16384,
                        help="largest input libFuzzer makes, in bytes (libFuzzer -max_len; default: 16384)")
    parser.add_argument("--seed", type=int, default=0,
                        help="libFuzzer's random seed; 0 draws one (default: 0)")
    parser.add_argument("--keep", type=int, default=3,
                        help="inputs saved per kind of finding; all are counted (default: 3)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                        help="the shared data folder whose data/modelnet_off_samples meshes seed the OFF corpus "
                             "(default: ../shared beside the checkout; skipped when absent)")
    args = parser.parse_args(argv)
    if args.corpus is None:
        args.corpus = Path(tempfile.gettempdir()) / "pcpeft-fuzz" / args.reader / "corpus"
    if args.crashes is None:
        args.crashes = args.corpus.parent / "crashes"
    if args.seconds <= 0 or args.timeout <= 0 or args.memory_mb <= 0 or args.max_len <= 0 or args.keep < 0:
        parser.error("--seconds, --timeout, --memory-mb and --max-len must be positive, --keep not negative")
    return args


# ------------------------------------------------------------------------------------------------------- parent

def main(argv: list[str] | None = None) -> int:
    """Seed the corpus, fuzz in child processes until ``--seconds`` are used, print the summary."""
    if os.environ.get(CHILD_ENV):
        return child_main(json.loads(os.environ[CHILD_ENV]))
    args = parse_args(argv)
    args.corpus.mkdir(parents=True, exist_ok=True)
    args.crashes.mkdir(parents=True, exist_ok=True)
    seeded = write_seeds(args)
    log = args.corpus.parent / "fuzz.log"
    print(f"fuzzing {args.reader} for {args.seconds:g} s: corpus {args.corpus} ({seeded} seed files), findings in "
          f"{args.crashes}, libFuzzer log {log}", flush=True)
    totals, started = Counter(), time.monotonic()
    kinds: Counter = Counter()
    with open(log, "a") as log_handle:
        while (left := args.seconds - (time.monotonic() - started)) >= 1:
            stats_path = args.crashes / f".stats-{os.getpid()}-{int(totals['children'])}.json"
            code = run_child(args, left, stats_path, log_handle)
            stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {"inputs": 0, "kinds": {}}
            stats_path.unlink(missing_ok=True)
            totals["inputs"] += stats["inputs"]
            totals["children"] += 1
            kinds.update(stats["kinds"])
            if code != 0:
                print(f"  the fuzzing process ended with status {code} after {stats['inputs']} inputs (see {log}); "
                      f"going on for the time left", flush=True)
                kinds[f"libFuzzer exit status {code}"] += 1
    kinds.update(libfuzzer_artifacts(args.crashes))
    return report(args, totals["inputs"], time.monotonic() - started, kinds)


def write_seeds(args: argparse.Namespace) -> int:
    """Put the reader's seed files in the corpus (named ``seed-*``; existing files are kept). Returns how many."""
    sys.path.insert(0, str(ROOT))  # the checkout's tests package
    from tests.fuzz import harnesses

    seeds = harnesses.seed_corpus(args.reader, args.shared if args.shared.is_dir() else None)
    for name, data in seeds.items():
        (args.corpus / f"seed-{name}").write_bytes(data)
    dictionary_path(args).write_text(harnesses.libfuzzer_dictionary(args.reader))
    return len(seeds)


def dictionary_path(args: argparse.Namespace) -> Path:
    """Where the reader's libFuzzer dictionary (its format's keywords) is written: beside the corpus."""
    return args.corpus.parent / f"{args.reader}.dict"


def run_child(args: argparse.Namespace, seconds: float, stats_path: Path, log_handle) -> int:
    """Run one fuzzing child for ``seconds``; its libFuzzer output goes to ``log_handle``. Returns its status."""
    config = {"reader": args.reader, "seconds": seconds, "crashes": str(args.crashes), "stats": str(stats_path),
              "memory_mb": args.memory_mb, "keep": args.keep,
              "libfuzzer": [str(args.corpus), f"-artifact_prefix={args.crashes}/", f"-timeout={args.timeout}",
                            f"-max_total_time={int(seconds) + 30}", f"-max_len={args.max_len}",
                            f"-seed={args.seed}", f"-dict={dictionary_path(args)}", "-rss_limit_mb=4096",
                            "-print_final_stats=1"]}
    env = {**os.environ, CHILD_ENV: json.dumps(config)}
    progress = time.monotonic()
    with subprocess.Popen([sys.executable, str(Path(__file__).resolve())], env=env, stdout=log_handle,
                          stderr=subprocess.STDOUT) as child:
        while child.poll() is None:
            time.sleep(0.5)
            if time.monotonic() - progress >= 60 and stats_path.is_file():
                progress = time.monotonic()
                stats = json.loads(stats_path.read_text())
                print(f"  {stats['inputs']} inputs, {sum(stats['kinds'].values())} findings", flush=True)
        return child.returncode


def libfuzzer_artifacts(crashes: Path) -> Counter:
    """The inputs libFuzzer saved itself (timeouts, out of memory), by kind."""
    kinds: Counter = Counter()
    for path in crashes.iterdir():
        kind = next((k for k in LIBFUZZER_ARTIFACTS if path.name.startswith(k)), None)
        if kind is not None:
            kinds[f"libFuzzer {kind.rstrip('-')} (saved as {path.name})"] += 1
    return kinds


def report(args: argparse.Namespace, inputs: int, seconds: float, kinds: Counter) -> int:
    """Print the summary; 1 when there were findings."""
    corpus = sum(1 for _ in args.corpus.iterdir())
    print(f"{args.reader}: {inputs} inputs tried in {seconds:.0f} s ({inputs / max(seconds, 1e-9):.0f}/s), corpus "
          f"{corpus} files, {sum(kinds.values())} findings of {len(kinds)} kinds")
    for kind, count in kinds.most_common():
        print(f"  {count:6d}  {kind}")
    if kinds:
        print(f"inputs of the findings: {args.crashes}")
    return 1 if kinds else 0


# -------------------------------------------------------------------------------------------------------- child

@dataclass
class ChildState:
    """What one fuzzing child has seen: inputs tried, findings by kind, and where it reports them."""

    reader: str
    deadline: float
    crashes: Path
    stats: Path
    keep: int
    inputs: int = 0
    kinds: Counter = field(default_factory=Counter)
    last_write: float = 0.0

    def record(self, err: BaseException, data: bytes, suffix: str) -> None:
        """Count a finding; save its input while fewer than ``keep`` of its kind are saved."""
        kind = finding_kind(err)
        self.kinds[kind] += 1
        if self.kinds[kind] <= self.keep:
            slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in kind)[:80]
            path = self.crashes / f"{slug}-{hashlib.sha1(data).hexdigest()[:12]}{suffix}"
            path.write_bytes(data)
            if self.kinds[kind] == 1:
                print(f"NEW FINDING {kind}: {type(err).__name__}: {str(err)[:200]} -> {path}", flush=True)
        self.write_stats(force=True)

    def write_stats(self, force: bool = False) -> None:
        """Report inputs and findings to the parent (at most twice a second unless ``force``)."""
        now = time.monotonic()
        if force or now - self.last_write >= 0.5:
            self.last_write = now
            temp = self.stats.with_suffix(".tmp")
            temp.write_text(json.dumps({"inputs": self.inputs, "kinds": dict(self.kinds)}))
            os.replace(temp, self.stats)


def finding_kind(err: BaseException) -> str:
    """An exception's kind: its type and the innermost frame of pcpeft (or of anything) it came from."""
    frames = traceback.extract_tb(err.__traceback__)
    frame = next((f for f in reversed(frames) if f"{os.sep}pcpeft{os.sep}" in f.filename), frames[-1] if frames
                 else None)
    where = f" at {Path(frame.filename).name}:{frame.name}:{frame.lineno}" if frame is not None else ""
    return f"{type(err).__name__}{where}"


def child_main(config: dict) -> int:
    """Fuzz inside this process (atheris): instrumented imports, capped address space, then libFuzzer's loop."""
    import atheris

    sys.path.insert(0, str(ROOT))  # the checkout's tests package
    with atheris.instrument_imports(include=["pcpeft"]):
        from tests.fuzz import harnesses
    harness = harnesses.HARNESSES[config["reader"]]
    suffix = harnesses.SUFFIXES[config["reader"]]
    state = ChildState(config["reader"], time.monotonic() + config["seconds"], Path(config["crashes"]),
                       Path(config["stats"]), config["keep"])
    harnesses.temp_dir()
    limit = harnesses.limit_address_space(config["memory_mb"] * 2 ** 20)
    print(f"address space capped at {limit / 2 ** 30:.2f} GiB", flush=True)

    def one_input(data: bytes) -> None:
        if time.monotonic() >= state.deadline:
            state.write_stats(force=True)
            sys.stdout.flush()
            os._exit(0)
        state.inputs += 1
        try:
            harness(data)
        except Exception as err:  # every exception is a finding; record it and go on fuzzing
            state.record(err, data, suffix)
        state.write_stats()

    atheris.Setup([sys.argv[0], *config["libfuzzer"]], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
