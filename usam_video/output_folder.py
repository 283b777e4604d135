"""Output folders that never adopt a user's folder and are never left half-written.

A command that writes a folder of files (``report --out DIR``) goes through
:func:`atomic_output_folder`:

* it refuses a non-empty folder that is not its own earlier output, unless ``force``. Its own
  output is recognised by :data:`MARKER`, a JSON file written into every folder it creates,
  listing each file it wrote with its sha256: a folder whose files are all listed and unchanged
  is ours to replace; a file the user added or edited there makes it the user's again;
* it writes everything into a temporary sibling (``.<name>.partial-<hex>``) and moves it into
  place at the end, so a failure (a full disk, a bad input found late) leaves the old folder as
  it was and no half-written new one;
* the OS's refusals (read-only, no space, not a directory) become one :class:`WriteError` line.

Replacing an earlier output is one rename of the old folder aside and one of the new folder
into place. With ``force`` into a user's folder, only the entries of the new output (and the
marker) replace those of the same names; every other file of the folder is kept, and stays
unlisted, so the next write there needs ``force`` again.

Stdlib only (plus :mod:`usam_video.errors` and :mod:`usam_video.hashing`): any layer may use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from usam_video.errors import InputError, UsamVideoError, WriteError, os_reason
from usam_video.hashing import file_sha256

__all__ = ["MARKER", "atomic_output_folder", "check_output_folder", "write_text_atomically"]

#: The file that marks a folder as written by usam-video (and lists what it wrote).
MARKER = ".usam-video-output.json"
_TOOL = "usam-video"


def _listing(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative POSIX paths, sorted), the marker left out."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MARKER
    )


def _not_ours(folder: Path, kind: str) -> str:
    """Why ``folder`` (existing, non-empty) is not an unchanged earlier ``kind`` output of ours;
    "" when it is."""
    files = _listing(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        listed = dict(marker["files"]) if marker.get("tool") == _TOOL else None
        written_kind = marker.get("kind")
    except FileNotFoundError:
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        return f"a folder of other files ({shown or 'empty folders'}) without {MARKER}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"an unreadable {MARKER} ({exc})"
    if listed is None:
        return f"a {MARKER} not written by {_TOOL}"
    if written_kind != kind:
        return f"the output of another command ({written_kind!r}, not {kind!r})"
    added = [f for f in files if f not in listed]
    if added:
        return f"files usam-video did not write ({', '.join(added[:5])})"
    changed = [f for f in files if file_sha256(folder / f) != listed[f]]
    if changed:
        return f"files changed since usam-video wrote them ({', '.join(changed[:5])})"
    return ""


def check_output_folder(out: Path, kind: str, force: bool = False) -> None:
    """Refuse ``out`` unless it is absent, an empty folder, an unchanged earlier ``kind`` output
    of usam-video, or ``force`` is given (a folder still; never a regular file).

    Raises:
        InputError: naming the folder, what is in it and the remedy.
    """
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{out}: expected a folder for the {kind}, got a regular file. Choose another --out."
        )
    if not out.exists() or force or not any(out.iterdir()):
        return
    why = _not_ours(out, kind)
    if why:
        raise InputError(
            f"{out}: expected a new or empty folder or an earlier {kind} of usam-video, got {why}. "
            f"Choose another --out, or pass --force to write the {kind}'s files into it (files of "
            "the same names are replaced, the others kept)."
        )


def _write_marker(folder: Path, kind: str) -> None:
    files = {f: file_sha256(folder / f) for f in _listing(folder)}
    payload = {"tool": _TOOL, "kind": kind, "files": files}
    (folder / MARKER).write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")


def _publish(staging: Path, out: Path, replace_whole: bool, trash: Path) -> None:
    """Move the finished ``staging`` folder to ``out``: renamed into place when ``out`` is absent
    or empty, swapped with an earlier output of ours (``replace_whole``), or, forced into a
    user's folder, entry by entry (the user's other files stay)."""
    if not out.exists():
        os.rename(staging, out)
        return
    if not any(out.iterdir()):
        os.rmdir(out)
        try:
            os.rename(staging, out)
        except OSError:
            os.mkdir(out)  # the empty folder the user gave, back as it was
            raise
        return
    if replace_whole:
        os.rename(out, trash)
        try:
            os.rename(staging, out)
        except OSError:
            os.rename(trash, out)  # the earlier output back in place
            raise
        return
    os.mkdir(trash)
    for entry in sorted(staging.iterdir()):
        target = out / entry.name
        if target.exists() or target.is_symlink():
            os.rename(target, trash / entry.name)
        os.rename(entry, target)


@contextlib.contextmanager
def atomic_output_folder(out: str | Path, kind: str, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to write a ``kind`` output (e.g. ``"report"``)
    into; on success it gets the :data:`MARKER` and takes ``out``'s place (see the module
    docstring). On any failure the temporary folder is removed and ``out`` is left as it was.

    Raises:
        InputError: ``out`` is a regular file, or a user's non-empty folder without ``force``.
        WriteError: the OS refused a write (read-only, no space, not a directory), with its reason.
    """
    out = Path(out)
    check_output_folder(out, kind, force)
    replace_whole = out.is_dir() and any(out.iterdir()) and not _not_ours(out, kind)
    tag = uuid.uuid4().hex[:8]
    staging = out.parent / f".{out.name}.partial-{tag}"
    trash = out.parent / f".{out.name}.old-{tag}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(staging)
        yield staging
        _write_marker(staging, kind)
        _publish(staging, out, replace_whole, trash)
    except UsamVideoError:
        raise
    except OSError as exc:
        error = WriteError(f"{out}: expected a writable folder for the {kind}, got {os_reason(exc)}.")
        error.errno = exc.errno  # only errno: OSError's str() would show a filename set here
        raise error from exc
    finally:
        for leftover in (staging, trash):
            shutil.rmtree(leftover, ignore_errors=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Write one text file through a temporary sibling renamed over it, so a crash never leaves
    it torn (a resumable command's progress files and results); the OS's refusal is one
    :class:`WriteError` line."""
    partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex}")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WriteError(f"{path}: could not write it: {os_reason(exc)}.") from exc
