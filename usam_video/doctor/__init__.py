"""Install checks: sam2 integrity against the upstream manifest, and the ``doctor`` report.

:mod:`usam_video.doctor.integrity` hashes the installed ``sam2`` files against the bundled
manifest of upstream commit 2b90b9f; :mod:`usam_video.doctor.checks` runs every check a user
needs before a run (torch/CUDA, sam2, decord, zarr, Prefect, the weights and disk a run config
names). Neither imports ``sam2`` or ``prefect``; torch is imported inside the checks.
"""

from usam_video.doctor.checks import Check, exit_code, run_checks
from usam_video.doctor.integrity import (
    MANIFEST_PATH,
    IntegrityReport,
    find_sam2_dir,
    load_manifest,
    verify_sam2,
)

__all__ = [
    "MANIFEST_PATH",
    "Check",
    "IntegrityReport",
    "exit_code",
    "find_sam2_dir",
    "load_manifest",
    "run_checks",
    "verify_sam2",
]
