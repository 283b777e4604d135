"""The storage benchmark's small mode: PNG, the store and every codec on real and generated masks."""

from usam_video.bench import storage


def test_small_mode_reports_bytes_and_speed_of_every_variant() -> None:
    figures = storage.main(["--small"])
    assert set(figures["sets"]) == {"DAVIS 480p annotations", "generated 128x96"}
    expected = {"png", "store"} | {f"zarr/{name}" for name in storage.codec_variants()}
    for mask_set in figures["sets"].values():
        assert set(mask_set["variants"]) == expected
        assert mask_set["variants"]["png"]["bytes_ratio_to_png"] == 1.0
        for row in mask_set["variants"].values():
            assert row["bytes_per_frame"] > 0 and row["frames_per_s"] > 0
            assert row["allocated_bytes"] >= row["bytes"] > 0
    # the store writes exactly the masks chunks of the zarr variant with its codec
    for mask_set in figures["sets"].values():
        assert mask_set["variants"]["store"]["bytes"] == mask_set["variants"]["zarr/zstd-0 (store)"]["bytes"]
    assert figures["store_codec_is_zarr_default"] is True
    assert figures["recommended"] is None or figures["recommended"].startswith("zarr/")
    check_layouts(figures["layouts"])


def test_davis_masks_are_read_as_bool_planes(davis_root) -> None:
    videos = {v.video_id: v for v in storage.load_davis(davis_root, limit_frames=2)}
    tennis = videos["tennis"]
    assert tennis.masks.dtype == bool and tennis.masks.shape == (2, 2, 480, 854)
    assert tennis.object_ids == (1, 2)


def check_layouts(layouts: dict) -> None:
    """The layouts compared side by side: masks, small-array blocks, the store's write_frame."""
    from usam_video.store.mask_codecs import MASK_LAYOUTS

    assert {(r["objects"], r["layout"]) for r in layouts["masks"]} == {
        (o, name) for o in storage.LAYOUT_OBJECTS for name in MASK_LAYOUTS
    }
    for row in layouts["masks"]:
        assert row["ms_per_frame"] > 0 and row["allocated_per_frame"] >= row["bytes_per_frame"] > 0
    shard = {r["objects"]: r for r in layouts["masks"] if r["layout"] == "shard (1,O,H,W) (store)"}
    assert all(r["files_per_frame"] == 1 for r in shard.values())  # one file per frame
    blocks = {(r["objects"], r["block"]) for r in layouts["small_arrays"]}
    assert blocks == {(o, b) for o in storage.LAYOUT_OBJECTS for b in storage.SMALL_BLOCKS}
    assert [r["objects"] for r in layouts["store"]] == list(storage.LAYOUT_OBJECTS)
    assert all(r["total_ms_per_frame"] > 0 and r["paced_ms_per_frame"] > 0 for r in layouts["store"])
