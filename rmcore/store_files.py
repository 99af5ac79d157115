"""A run's folder on disk: removing it and writing exports into it without following links.

Anyone with access to the runs folder can plant a symbolic link in a run's folder (or make
the run's folder itself a link) pointing at files elsewhere. Deleting the run removes the
link, never its target; exports replace a link named like one of their files instead of
writing through it, and refuse a default export folder that is a link out of the run's own
folder. Deleting sets the folder aside first (one rename, checked before any row is
deleted), so a delete that cannot go through leaves the run as it was.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from rmcore.errors import ConfigError


def set_aside(folder: Path) -> Path | None:
    """Rename a run's folder (or link) to a hidden name beside it; None if there is none.

    Hidden names start with a dot, which no run id does, so the runs list never sees them.
    """
    if not os.path.lexists(folder):
        return None
    aside = folder.parent / f".deleting-{folder.name}-{secrets.token_hex(4)}"
    try:
        os.rename(folder, aside)  # renames a link itself, never what it points at
    except OSError as exc:
        raise ConfigError(f"Cannot delete {folder}: {exc.strerror or exc}; nothing was deleted.") from exc
    return aside


def put_back(aside: Path | None, folder: Path) -> None:
    if aside is not None:
        os.rename(aside, folder)


def remove_aside(aside: Path | None, run_id: str) -> None:
    """Remove what set_aside moved: a link is unlinked; a folder is removed without following
    the links inside it (shutil.rmtree unlinks them, and refuses a link as its root)."""
    if aside is None:
        return
    try:
        if aside.is_symlink() or not aside.is_dir():
            aside.unlink()
        else:
            shutil.rmtree(aside)
    except OSError as exc:
        raise ConfigError(f"Run {run_id} was deleted, but its folder could not be removed entirely "
                          f"({exc.strerror or exc}); remove {aside} by hand.") from exc


def own_subfolder(run_dir: Path, name: str) -> Path:
    """run_dir/name, made if needed, refusing links: a link there would take the files out of
    the run's folder, to wherever it points."""
    path = run_dir / name
    for part in (run_dir, path):
        if part.is_symlink():
            raise ConfigError(f"{part} is a symbolic link; rmcore does not follow links out of a run's folder. "
                              "Remove the link, or choose an output folder (--out).")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_replacing(path: Path, write: Callable[[Path], None]) -> Path:
    """Write a file through `write(temporary path)`, then move it onto `path`.

    os.replace swaps the name, so a link planted at `path` is replaced, not written through,
    and a reader never sees a half-written file.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: a fresh file of ours (never a planted link), with the usual umask permissions.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
