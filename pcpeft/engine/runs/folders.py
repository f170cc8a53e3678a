"""Run folders that never clobber each other: names that stay inside the experiments root, one live run per
folder (a lock file with the process id), no silent re-use of a folder that holds a run.

    experiments/<recipe path below cfgs/, without .yaml>/<exp_name>/

A folder holds a run once it has a ``config.yaml``, ``ckpt-last.pth``, ``ckpt-best.pth`` or ``results.json``.
Starting into such a folder is refused unless ``resume`` (continue it) or ``overwrite`` (move it aside to
``<name>.replaced-<UTC time>``, never delete) is given. A ``.lock`` file holding the process id refuses a second
live run; a lock whose process is gone is taken over, with a log line. A run folder, or a folder on the way to it
below the experiments root, that is a symbolic link resolving outside the root is refused. ``--resume`` of a run
that has finished all its epochs changes nothing (:func:`finished_results` finds such a run).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ...errors import UserError
from .training_state import remove_stale_temporaries

LOG = logging.getLogger("pcpeft")
LOCK_FILE = ".lock"
RUN_MARKERS = ("config.yaml", "ckpt-last.pth", "ckpt-best.pth", "results.json")


class RunFolderError(UserError):
    """A run folder name escapes the experiments root, or the folder holds another run."""


def checked_exp_name(name: str) -> str:
    """``name`` if it is a relative path without ``..`` (sub-folders allowed), else :class:`RunFolderError`."""
    path = Path(name)
    if not name or not name.strip() or path.is_absolute() or name.startswith("~") or ".." in path.parts:
        raise RunFolderError(f"--exp_name {name!r} must be a plain relative name inside the experiments root "
                             f"(no absolute path, no '..', not empty)")
    return name


def recipe_run_name(config_path: str | os.PathLike) -> Path:
    """The recipe's folder under the experiments root: its path below the nearest ``cfgs/`` folder without the
    suffix (``cfgs/point_bert/x.yaml`` -> ``point_bert/x``, ``cfgs/x.yaml`` -> ``x``; the same below the shipped
    recipes of an installed package), so the project's recipes
    never share a folder; a recipe outside any ``cfgs/`` folder uses its stem (two such recipes with one stem
    meet in one folder, where the run-folder checks below refuse to mix them)."""
    from ..recipe.shipped import shipped_root_of

    shipped = shipped_root_of(config_path)
    if shipped is not None:
        return Path(config_path).resolve().relative_to(shipped).with_suffix("")
    parts = Path(config_path).resolve().parts
    if "cfgs" in parts[:-1]:
        below = parts[len(parts) - parts[::-1].index("cfgs"):]
        return Path(*below).with_suffix("")
    return Path(Path(config_path).stem)


def experiment_dir(experiments_root: str | os.PathLike, config_path: str | os.PathLike, exp_name: str) -> Path:
    return Path(experiments_root) / recipe_run_name(config_path) / checked_exp_name(exp_name)


def refuse_links_out_of_root(root: str | os.PathLike, path: str | os.PathLike) -> None:
    """Refuse (:class:`RunFolderError`, naming the link) when ``path`` or any folder on the way to it below the
    experiments ``root`` is a symbolic link that resolves outside ``root``: nothing is written through it. Links
    that stay inside the root, and a root that is itself a link, are fine."""
    root, path = Path(root), Path(path)
    base = root.resolve()
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return
    current = root
    for part in parts:
        current = current / part
        if not current.is_symlink():
            continue
        target = current.resolve()
        if not target.is_relative_to(base):
            raise RunFolderError(f"{current} is a symbolic link to {target}, outside the experiments root {base}: "
                                 f"a run writes only inside the experiments root; remove the link, or choose "
                                 f"another --exp_name or --experiments")


def finished_results(folder: str | os.PathLike) -> dict | None:
    """The ``results.json`` of the run in ``folder`` when it has finished all of its epochs (``finished: true``),
    else None (no such file, an unfinished run, or an unreadable file, which a resume rewrites)."""
    try:
        results = json.loads((Path(folder) / "results.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict) or results.get("finished") is not True:
        return None
    return results


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def holds_run(folder: Path) -> bool:
    return any((folder / marker).exists() for marker in RUN_MARKERS)


class RunFolder:
    """The claimed folder of one run; use as a context manager (the lock is released on exit)."""

    def __init__(self, path: str | os.PathLike, resume: bool = False, overwrite: bool = False,
                 root: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.root = None if root is None else Path(root)  # the experiments root: no link below it may leave it
        self.resume, self.overwrite = resume, overwrite
        self.lock = self.path / LOCK_FILE
        self.moved_aside: Path | None = None
        self._held = False

    def __enter__(self) -> "RunFolder":
        self.claim()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def claim(self) -> None:
        """Take the folder for this process, or raise :class:`RunFolderError` saying why not."""
        if self.resume and self.overwrite:
            raise RunFolderError("--resume and --overwrite contradict each other: choose one")
        if self.root is not None:
            refuse_links_out_of_root(self.root, self.path)
        self._refuse_live_owner()
        if self.overwrite and self.path.exists() and holds_run(self.path):
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            self.moved_aside = self.path.with_name(f"{self.path.name}.replaced-{stamp}-{os.getpid()}")
            os.replace(self.path, self.moved_aside)
            (self.moved_aside / LOCK_FILE).unlink(missing_ok=True)
            LOG.info(f"--overwrite: moved the previous run aside to {self.moved_aside}")
        self.path.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            if holds_run(self.path) and not self.resume:
                raise RunFolderError(
                    f"{self.path} already holds a run: continue it with --resume, move it aside with --overwrite, "
                    f"or choose another --exp_name")
            if self.resume and not (self.path / "ckpt-last.pth").is_file():
                raise RunFolderError(f"--resume: {self.path} holds no ckpt-last.pth to continue from")
            remove_stale_temporaries(self.path)
        except BaseException:
            self.release()
            raise

    def _refuse_live_owner(self) -> None:
        owner = _lock_owner(self.lock) if self.lock.exists() else None
        if owner is not None and owner != os.getpid() and _process_alive(owner):
            raise RunFolderError(f"{self.path} is in use by a running process (pid {owner}, lock file {self.lock}); "
                                 f"wait for it to finish or choose another --exp_name")

    def _take_lock(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = _lock_owner(self.lock)
                if owner is not None and owner != os.getpid() and _process_alive(owner):
                    raise RunFolderError(f"{self.path} is in use by a running process (pid {owner}, lock file "
                                         f"{self.lock}); wait for it to finish or choose another --exp_name") from None
                LOG.info(f"taking over the stale lock {self.lock} of process {owner} (no longer running)")
                self.lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            self._held = True
            return
        raise RunFolderError(f"could not take the lock {self.lock}: another process keeps creating it")

    def release(self) -> None:
        if self._held and _lock_owner(self.lock) == os.getpid():
            self.lock.unlink(missing_ok=True)
        self._held = False
