from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usam_video.errors import AnnotationError
from usam_video.palette import davis_palette, read_palette_png, write_palette_png


def test_round_trip_keeps_indices_and_davis_colours(tmp_path: Path) -> None:
    labels = np.zeros((5, 7), np.uint8)
    labels[1:3, 2:4] = 1
    labels[4, 6] = 255
    path = tmp_path / "m.png"
    write_palette_png(path, labels)
    np.testing.assert_array_equal(read_palette_png(path), labels)
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.getpalette()[3:6] == [128, 0, 0]  # DAVIS object 1 is dark red
    assert len(davis_palette()) == 768


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="found nothing"):
        read_palette_png(tmp_path / "absent.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(AnnotationError, match="readable PNG"):
        read_palette_png(junk)
    with pytest.raises(AnnotationError, match="uint8 index map"):
        write_palette_png(tmp_path / "x.png", np.zeros((2, 2), np.int32))
