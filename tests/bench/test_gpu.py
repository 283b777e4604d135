"""The GPU benchmark refuses clearly without CUDA, and runs its small mode on a GPU."""

import pytest
import torch

from usam_video.bench import gpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_refuses_without_cuda_before_doing_anything() -> None:
    with pytest.raises(gpu.CudaUnavailable, match="expected a CUDA device, found none"):
        gpu.main(["--small"])
    assert issubclass(gpu.CudaUnavailable, RuntimeError)


@pytest.mark.gpu
def test_small_mode_on_cuda() -> None:
    figures = gpu.main(["--small"])
    assert [(r["size"], r["objects"]) for r in figures["results"]] == [("tiny", 1), ("tiny", 8)]
    for row in figures["results"]:
        assert row["median_fps_bare"] > 0 and row["median_fps_pipeline"] > 0
        assert row["peak_gpu_bytes_bare"] > 0 and 0 < row["scoring_fraction"] < 1
