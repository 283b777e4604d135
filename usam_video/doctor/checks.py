"""What a user needs to know before a run, as a list of :class:`Check` records.

Each ``check_*`` function is a plain function that never raises for the condition it checks:
it returns one :class:`Check` (or a tuple of them) saying in a few lines what it found. A check
with ``ok=False`` and ``fatal=True`` means a run would fail; ``ok=False`` with ``fatal=False``
is a warning (random weights, a partial heads set). :func:`run_checks` runs them all, and
:func:`exit_code` turns the result into the command's exit status.

Import discipline: this module is a top layer like ``pipeline``. It never imports ``sam2``
(importing it initialises Hydra globally: the package is located and hashed instead), never
imports ``prefect`` (the server is probed over HTTP and the version read from metadata) and
reaches zarr only through ``usam_video.store``. Heavy libraries (torch, decord) are imported
inside the checks so that a broken install is reported as a failed check, not a traceback.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from usam_video.config import load_run_config
from usam_video.doctor import integrity
from usam_video.engine.locate import resolve_sam2_config
from usam_video.errors import ModelBuildError, StoreNotFoundError, UsamVideoError
from usam_video.hashing import file_sha256

if TYPE_CHECKING:  # imported lazily at run time: a broken torch install is a failed check
    from usam_video.heads import HeadsManifest

__all__ = [
    "Check",
    "DEFAULT_MIN_FREE_BYTES",
    "DEFAULT_PREFECT_TIMEOUT_S",
    "check_python",
    "check_torch",
    "check_cuda",
    "check_sam2",
    "check_decord",
    "check_zarr",
    "check_prefect",
    "check_prefect_server",
    "check_checkpoint",
    "check_heads",
    "check_disk",
    "check_store",
    "check_run_config",
    "run_checks",
    "exit_code",
    "checks_as_dict",
]

#: Below this much free space where the store goes, the disk check fails (1 GiB).
DEFAULT_MIN_FREE_BYTES: int = 1 << 30
#: How long the Prefect server probe waits for an answer.
DEFAULT_PREFECT_TIMEOUT_S: float = 2.0

_SAM2_VERSION = "1.1.0"


@dataclass(frozen=True)
class Check:
    """One finding of the doctor.

    Attributes:
        name: Short identifier (``torch``, ``sam2``, ``checkpoint``, ``heads/iou_tiny``, ...).
        ok: ``True`` when nothing is wrong.
        detail: What was found, in one to a few lines (versions, paths, sizes, hashes, remedy).
        fatal: Whether a failure of this check makes a run fail (exit code 1). A check with
            ``ok=False`` and ``fatal=False`` is a warning.
    """

    name: str
    ok: bool
    detail: str
    fatal: bool = True

    @property
    def failed(self) -> bool:
        """``True`` when this check fails in a way that would make a run fail."""
        return self.fatal and not self.ok

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``name``, ``ok``, ``fatal``, ``detail``."""
        return asdict(self)


def _first_line(exc: BaseException | str, limit: int = 240) -> str:
    """The first line of an error message, shortened (torch appends long advice)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / (1 << 30):.1f} GiB"


def _size(n_bytes: int) -> str:
    if n_bytes >= 1 << 20:
        return f"{n_bytes / (1 << 20):.1f} MiB"
    return f"{n_bytes} B"


def _major_minor(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


# --- the environment -------------------------------------------------------------------------


def check_python() -> Check:
    """The interpreter and the installed usam-video (Python 3.11 or newer is required)."""
    ok = sys.version_info >= (3, 11)
    own = _dist_version("usam-video") or "not installed (run from a checkout?)"
    return Check(
        "python",
        ok,
        f"Python {platform.python_version()} ({sys.executable}); usam-video {own}"
        + ("" if ok else ". Expected Python >= 3.11: recreate .venv with `make test`."),
    )


def check_torch() -> Check:
    """torch and torchvision: importable, versions, and the CUDA version torch was built for."""
    try:
        import torch
    except Exception as exc:  # an install broken in any way must be reported, not raised
        return Check(
            "torch", False, f"torch does not import: {_first_line(exc)}. Reinstall with `make test`."
        )
    cuda_build = torch.version.cuda or "none (CPU-only build)"
    vision = _dist_version("torchvision")
    ok = vision is not None
    return Check(
        "torch",
        ok,
        f"torch {torch.__version__} (CUDA build {cuda_build}), torchvision {vision or 'NOT INSTALLED'}",
    )


def check_cuda(device: str = "auto", dtype: str = "float32") -> Check:
    """The CUDA device a run would use: name, capability, memory, bf16 support.

    Args:
        device: The model config's ``device`` (``auto``, ``cpu``, ``cuda``). ``cuda`` without a
            device fails (fatal); ``auto`` without one falls back to the CPU (ok).
        dtype: The model config's ``dtype``. ``bfloat16`` on a CUDA device without bf16
            support fails (fatal). On the CPU the engine runs float32 whatever the dtype.
    """
    try:
        import torch
    except Exception as exc:
        return Check("cuda", False, f"torch does not import: {_first_line(exc)}")
    if not torch.cuda.is_available():
        if device == "cuda":
            return Check(
                "cuda",
                False,
                "the model config asks for device 'cuda' but no CUDA device is visible. "
                "Set 'device: auto' (or 'cpu'), or run on a machine with a GPU.",
            )
        note = f"; the engine runs {dtype} configs in float32 on the CPU" if dtype != "float32" else ""
        return Check("cuda", True, f"no CUDA device: runs use the CPU{note}", fatal=False)
    if device == "cpu":
        return Check("cuda", True, "CUDA is available but the model config pins device 'cpu'", fatal=False)
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    bf16 = bool(torch.cuda.is_bf16_supported())
    lines = [
        f"{torch.cuda.device_count()} device(s); using cuda:{index} {props.name} "
        f"(sm_{props.major}{props.minor}, {_gib(props.total_memory)})",
        f"bf16: {'supported' if bf16 else 'NOT supported'}",
    ]
    ok = bf16 or dtype != "bfloat16"
    if not ok:
        lines.append("the model config asks for dtype 'bfloat16': use 'float16' or 'float32' on this GPU.")
    return Check("cuda", ok, "\n".join(lines))


def _sam2_extension(package_dir: Path) -> bool:
    return any(package_dir.glob("_C*.so")) or any(package_dir.glob("_C*.pyd"))


def check_sam2() -> Check:
    """The installed sam2: its version and every Python file against the upstream manifest.

    The package is located and hashed, never imported. A mismatch names each file.
    """
    manifest = integrity.load_manifest()
    expected_version = str(manifest.get("version", _SAM2_VERSION))
    version = _dist_version("sam2")
    try:
        package_dir = integrity.find_sam2_dir()
        report = integrity.verify_sam2(package_dir, manifest)
    except ModelBuildError as exc:
        return Check("sam2", False, f"{exc}")
    version_ok = version == expected_version
    lines = report.summary().splitlines()
    problems = lines[1:]
    if len(problems) > 8:
        problems = problems[:8] + [f"... and {len(lines) - 9} more"]
    head = f"sam2 {version} at {report.package_dir}: " + (
        f"{len(manifest['files'])} files identical to upstream {report.commit[:8]}"
        if report.ok
        else f"MODIFIED against upstream {report.commit[:8]}"
    )
    out = [head, *problems]
    if not version_ok:
        out.append(f"expected sam2 {expected_version}: reinstall with `make test` (see the Makefile).")
    if not report.ok:
        out.append("reinstall sam2 (rm -r .venv && make test) or restore the files named above.")
    ext = "built" if _sam2_extension(report.package_dir) else "not built (not needed: hole filling is off)"
    out.append(f"CUDA extension sam2._C: {ext}")
    return Check("sam2", report.ok and version_ok, "\n".join(out))


def check_decord() -> Check:
    """decord (mp4 decoding): importable and its version."""
    try:
        decord = importlib.import_module("decord")
    except Exception as exc:
        return Check("decord", False, f"decord does not import: {_first_line(exc)}")
    return Check("decord", True, f"decord {getattr(decord, '__version__', _dist_version('decord'))}")


def check_zarr() -> Check:
    """zarr (the store): version within ``>=3.1,<4`` and the store module imports."""
    version = _dist_version("zarr")
    if version is None:
        return Check("zarr", False, "zarr is not installed: reinstall with `make test`.")
    try:
        importlib.import_module("usam_video.store")
    except Exception as exc:
        return Check("zarr", False, f"zarr {version}: the store module does not import: {_first_line(exc)}")
    ok = (3, 1) <= _major_minor(version) < (4, 0)
    return Check("zarr", ok, f"zarr {version}" + ("" if ok else ": expected >=3.1,<4"))


def check_prefect() -> Check:
    """prefect: installed with a version within ``>=3.4,<4`` (read from metadata, not imported)."""
    version = _dist_version("prefect")
    if version is None:
        return Check("prefect", False, "prefect is not installed: reinstall with `make test`.")
    ok = (3, 4) <= _major_minor(version) < (4, 0)
    return Check("prefect", ok, f"prefect {version}" + ("" if ok else ": expected >=3.4,<4"))


def check_prefect_server(api_url: str | None = None, timeout: float = DEFAULT_PREFECT_TIMEOUT_S) -> Check:
    """Whether the Prefect API a run would use answers.

    Args:
        api_url: The API URL; ``None`` reads ``PREFECT_API_URL``. When neither is set, the run
            starts an embedded (ephemeral) server and the check passes.
        timeout: Seconds to wait for ``<api_url>/health``.
    """
    api_url = os.environ.get("PREFECT_API_URL") if api_url is None else api_url
    if not api_url:
        return Check(
            "prefect server",
            True,
            "PREFECT_API_URL is not set: `usam-video run` starts an embedded server (ephemeral, local)",
            fatal=False,
        )
    url = api_url.rstrip("/") + "/health"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    key = os.environ.get("PREFECT_API_KEY")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "prefect server",
            False,
            f"PREFECT_API_URL={api_url}: no answer within {timeout:g} s ({reason}). Start the server "
            "(`prefect server start`) or unset PREFECT_API_URL to use an embedded one.",
        )
    ok = status == 200
    detail = f"PREFECT_API_URL={api_url}: {'reachable' if ok else 'answered'} (HTTP {status})"
    if not ok:
        detail += "; check the URL and, for Prefect Cloud, PREFECT_API_KEY."
    return Check("prefect server", ok, detail)


# --- weights named by a config -----------------------------------------------------------


def _unset_variable_hint(path: Path) -> str:
    return " (an environment variable in the config is not set)" if "$" in str(path) else ""


def check_checkpoint(path: Path, name: str = "checkpoint") -> Check:
    """A SAM 2 checkpoint: found, size, sha256, loadable with ``weights_only=True``.

    The file is memory-mapped when it is in torch's zip format, so a large checkpoint is not
    read into memory. A pickle that would run code is refused by ``weights_only=True`` and
    reported here, never executed.
    """
    path = Path(path)
    if not path.is_file():
        return Check(
            name,
            False,
            f"{path}: not found{_unset_variable_hint(path)}. Point the model config's 'checkpoint' "
            "(or SAM2_CHECKPOINTS) at an official sam2.1_hiera_*.pt file.",
        )
    size = path.stat().st_size
    digest = file_sha256(path)
    where = f"{path} ({_size(size)}, sha256 {digest})"
    try:
        import torch

        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # torch raises several unrelated types for bad files
        return Check(name, False, f"{where}\nNOT loadable with weights_only=True: {_first_line(exc)}")
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        found = sorted(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        return Check(
            name, False, f"{where}\nexpected a dict with a 'model' state dict (sam2's format), got {found}"
        )
    n_tensors = sum(1 for v in payload["model"].values() if isinstance(v, torch.Tensor))
    return Check(name, True, f"{where}\nloadable with weights_only=True: {n_tensors} tensors")


def check_heads(
    directory: Path | None,
    names: Sequence[str] | None = None,
    token_dim: int | None = None,
    random_init: bool = False,
    *,
    pairing: Literal["reference", "aligned"] | None = None,
    sam2_version: str | None = None,
) -> tuple[Check, ...]:
    """USAM heads named by a run config: first ``heads/manifest`` (the token pairing, token width,
    SAM 2 release and size, video heads: from ``manifest.json`` or, without one, the published
    set's defaults), then one check per head file (found, size, sha256, loadable).

    Each file is loaded by :func:`usam_video.heads.load_heads` (``weights_only=True`` and a
    shape check), exactly as a run loads it. A named head that is absent is a warning (a run
    scores with the heads present); a directory with none of them, a malformed manifest or one
    that disagrees with the config, or a file that does not load, fails.
    """
    if random_init:
        return (
            Check(
                "heads",
                False,
                "random heads (random_init: true): their scores carry no meaning",
                fatal=False,
            ),
        )
    if directory is None:
        return (Check("heads", True, "no heads configured: only SAM's own scores are computed", fatal=False),)
    directory = Path(directory)
    if not directory.is_dir():
        return (
            Check(
                "heads",
                False,
                f"{directory}: not a directory{_unset_variable_hint(directory)}. Point 'heads.directory' "
                "(or USAM_HEADS) at a folder of <head>/model.pth files.",
            ),
        )
    from usam_video.errors import HeadsError
    from usam_video.heads import manifest_in_force

    wanted = list(names) if names else sorted(p.parent.name for p in directory.glob("*/model.pth"))
    if not wanted:
        return (Check("heads", False, f"{directory}: expected <head>/model.pth files, found none"),)
    try:
        manifest = manifest_in_force(directory, token_dim, pairing, sam2_version)
    except HeadsError as exc:
        # Every head would fail the same way: one failure, with the manifest's message.
        return (Check("heads/manifest", False, f"NOT usable: {_first_line(exc)}"),)
    checks: list[Check] = [_manifest_check(directory, manifest, wanted)]
    for head in wanted:
        checks.append(_head_file_check(directory, head, token_dim, pairing, sam2_version))
    if all(not c.ok and not c.fatal for c in checks[1:]):
        checks.append(Check("heads", False, f"{directory}: none of the heads {wanted} is present"))
    return tuple(checks)


def _manifest_check(directory: Path, manifest: HeadsManifest, wanted: Sequence[str]) -> Check:
    """The ``heads/manifest`` line: where the manifest came from, its token pairing in words,
    token width, SAM 2 release and size, and which of ``wanted`` are video heads."""
    origin = (
        f"{directory / 'manifest.json'}"
        if manifest.from_file
        else f"{directory}: no manifest.json, read as the published UncertainSAM set"
    )
    meaning = {
        "reference": "multimask output k scored with mask token k-1, single-mask output with token 0",
        "aligned": "candidate k scored with mask token k",
    }[manifest.pairing]
    video = [n for n in wanted if manifest.inputs_of(n).inputs]
    return Check(
        "heads/manifest",
        True,
        f"{origin}\npairing {manifest.pairing} ({meaning}); {manifest.token_dim}-d tokens; "
        f"SAM {manifest.sam2_version} {manifest.sam2_size}" + (f"; video heads {video}" if video else ""),
    )


def _head_file_check(
    directory: Path,
    head: str,
    token_dim: int | None,
    pairing: Literal["reference", "aligned"] | None,
    sam2_version: str | None,
) -> Check:
    """One ``heads/<head>`` line: a missing file warns (the run skips it); a present one is
    loaded exactly as a run loads it and fails when it does not load."""
    from usam_video.errors import HeadsError
    from usam_video.heads import load_heads

    path = directory / head / "model.pth"
    if not path.is_file():
        return Check(f"heads/{head}", False, f"{path}: not found (the run skips this head)", fatal=False)
    where = f"{path} ({_size(path.stat().st_size)}, sha256 {file_sha256(path)})"
    try:
        load_heads(directory, [head], token_dim, pairing=pairing, sam2_version=sam2_version)
    except HeadsError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        return Check(f"heads/{head}", False, f"{where}\nNOT loadable: {_first_line(reason)}")
    return Check(f"heads/{head}", True, f"{where}\nloadable with weights_only=True")


def check_disk(store: Path, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES) -> Check:
    """Free space and write access where the store goes (its nearest existing parent folder)."""
    store = Path(store).expanduser().absolute()
    existing = store
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    state = "exists" if store.exists() else "will be created"
    detail = f"store {store} ({state}): {_gib(usage.free)} free of {_gib(usage.total)}"
    writable = os.access(existing if existing.is_dir() else existing.parent, os.W_OK)
    if not writable:
        return Check("disk", False, f"{detail}\n{existing} is not writable")
    if usage.free < min_free_bytes:
        return Check("disk", False, f"{detail}\nless than {_gib(min_free_bytes)} free: free space first")
    return Check("disk", True, detail)


def check_store(store: str | Path) -> Check:
    """Every chunk of an existing store read and its checksum checked (``usam-video verify``).

    Damage is fatal (a run or an export would read it); a store written before checksums is a
    warning (it reads, but nothing proves it intact); a store not created yet, or an empty
    folder, is fine; a regular file, a folder of other files or another Zarr group is fatal (a
    run refuses it).
    """
    from usam_video.store import PseudoLabelStore

    location = str(store)
    local = Path(location.removeprefix("file://"))
    if "://" not in location.removeprefix("file://") and not local.exists():
        return Check("store", True, f"{location}: not created yet")
    try:
        report = PseudoLabelStore.open(location, mode="r").verify()
    except StoreNotFoundError:
        # Only an empty folder (or nothing at a URL) gets here: open() refuses anything else.
        state = "an empty folder" if local.is_dir() else "not created yet"
        return Check("store", True, f"{location}: {state}; a run creates the store there")
    except UsamVideoError as exc:
        return Check("store", False, _first_line(exc, limit=400))
    videos = len({c.video_id for c in report.checks if c.video_id})
    head = f"{location}: {videos} video(s), {report.chunks} chunks read"
    if not report.intact:
        more = len(report.problems) - 5
        shown = report.problems[:5] + ([f"... {more} more"] if more > 0 else [])
        return Check(
            "store",
            False,
            "\n".join([f"{head}; DAMAGED:", *shown, f"list them all with: usam-video verify {location}"]),
        )
    if report.unverifiable:
        return Check(
            "store",
            False,
            f"{head}; unverifiable: {len(report.unverifiable)} array(s) written before checksums "
            "(they read without error; relabel to checksum them)",
            fatal=False,
        )
    return Check("store", True, f"{head}; every checksum matches")


def check_run_config(
    path: Path, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES
) -> tuple[tuple[Check, ...], tuple[str, str]]:
    """The things a run config names: the config itself, dataset, model weights, heads, disk.

    Returns:
        The checks, and the model's ``(device, dtype)`` for :func:`check_cuda`
        (``("auto", "float32")`` when the config does not load).
    """
    try:
        run = load_run_config(Path(path))
    except UsamVideoError as exc:
        return (Check("config", False, str(exc)),), ("auto", "float32")
    checks: list[Check] = [Check("config", True, f"{path}: run {run.name!r}, model {run.model.name!r}")]
    try:
        from usam_video.datasets import open_dataset

        n_videos = len(open_dataset(run.dataset).list_videos())
        checks.append(
            Check(
                "dataset",
                n_videos > 0,
                f"{run.dataset.name} ({run.dataset.format}) at {run.dataset.root}: {n_videos} video(s)",
            )
        )
    except (UsamVideoError, ImportError) as exc:  # ImportError: a broken decord, reported above too
        checks.append(Check("dataset", False, _first_line(exc, limit=400)))
    model = run.model
    try:
        config_path: Path | None = resolve_sam2_config(model.sam2_config)
    except ModelBuildError:  # sam2 missing (reported by check_sam2) or no such config
        config_path = None
    checks.append(
        Check(
            "sam2 config",
            True,
            str(config_path)
            if str(config_path) == model.sam2_config
            else f"{model.sam2_config} -> {config_path}",
        )
        if config_path is not None
        else Check(
            "sam2 config",
            False,
            f"{model.sam2_config!r}: neither a file nor a config inside the sam2 package",
        )
    )
    if model.random_init:
        checks.append(
            Check(
                "checkpoint",
                False,
                f"model {model.name!r} has RANDOM weights (random_init: true): "
                "its masks are not real segmentations",
                fatal=False,
            )
        )
    elif model.checkpoint is not None:
        checks.append(check_checkpoint(Path(model.checkpoint)))
    heads = run.heads
    checks.extend(
        check_heads(
            heads.directory,
            heads.names,
            heads.token_dim,
            heads.random_init,
            pairing=heads.pairing,
            sam2_version=heads.sam2_version,
        )
    )
    checks.append(check_disk(run.store_path, min_free_bytes))
    checks.append(check_store(run.store))
    return tuple(checks), (model.device, model.dtype)


def run_checks(
    config: Path | None = None,
    *,
    prefect_timeout: float = DEFAULT_PREFECT_TIMEOUT_S,
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    store: Path | None = None,
) -> tuple[Check, ...]:
    """Every check, in the order they are printed.

    Args:
        config: A run YAML; without one, the environment alone is checked and the disk check
            looks at the current folder (where ``make demo`` writes ``demo_output/``).
        prefect_timeout: Seconds the Prefect server probe waits.
        min_free_bytes: Free space below which the disk check fails.
        store: A store to verify chunk by chunk (the run config's store is verified too).
    """
    config_checks: tuple[Check, ...] = ()
    device, dtype = "auto", "float32"
    if config is not None:
        config_checks, (device, dtype) = check_run_config(config, min_free_bytes)
    checks = [
        check_python(),
        check_torch(),
        check_cuda(device, dtype),
        check_sam2(),
        check_decord(),
        check_zarr(),
        check_prefect(),
        check_prefect_server(timeout=prefect_timeout),
        *config_checks,
    ]
    if config is None:
        checks.append(check_disk(Path.cwd() / "demo_output", min_free_bytes))
    if store is not None:
        checks.append(check_store(store))
    return tuple(checks)


def exit_code(checks: Iterable[Check]) -> int:
    """``1`` when any fatal check failed (a run would fail), else ``0``."""
    return 1 if any(c.failed for c in checks) else 0


def checks_as_dict(checks: Sequence[Check]) -> dict[str, Any]:
    """The ``--json`` document: ``{"ok": bool, "checks": [{name, ok, fatal, detail}, ...]}``."""
    return {"ok": exit_code(checks) == 0, "checks": [c.as_dict() for c in checks]}
