"""Benchmarks of usam-video, one module each, run as ``python -m usam_video.bench.<name>``.

| module | what it measures |
| --- | --- |
| ``memory`` | peak RSS of the pipeline vs stock sam2 on 200- and 2,000-frame videos (subprocesses) |
| ``overhead`` | time per frame of ``label_video`` vs bare ``init_state`` + ``propagate_in_video`` |
| ``scoring`` | USAM scoring time (all heads) as a fraction of the SAM 2 frame time |
| ``storage`` | bytes per frame and write speed of the Zarr masks vs DAVIS palette PNGs |
| ``gpu`` | frames/s of every SAM 2.1 size on CUDA (refuses without CUDA) |
| ``review_sim`` | ``simulate-review`` at one budget with and without the image-feature cache, side by side |

Every module has a ``--small`` mode (seconds; what ``tests/bench`` runs) and a
``main(argv) -> dict`` returning its figures. Results and commands: ``BENCHMARKS.md``.

This package is a leaf: nothing in ``usam_video`` imports it, and it keeps the import rules:
the Prefect overhead benchmark is ``flows/bench_prefect_overhead.py`` (it imports the flow), and
the storage benchmark tries zarr codecs through ``usam_video.store.mask_codecs``.
"""

__all__: list[str] = []
