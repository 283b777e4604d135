"""The review-simulation benchmark's small mode: simulate-review with and without the feature
cache, side by side, the same results, fewer encoder calls with the cache."""

from usam_video.bench import review_sim


def test_small_mode_times_simulate_review_with_and_without_the_feature_cache() -> None:
    figures = review_sim.main(["--small"])
    assert figures["same_results"]  # the cache changes nothing but the time
    assert figures["median_uncached_s"] > 0 and figures["median_cached_s"] > 0 and figures["ratio"] > 0
    calls = figures["encoder_calls"]
    # every relabel encodes every frame without the cache; with it, each frame once
    assert calls["uncached"] == figures["relabels"] * 8 and calls["cached"] == 2 * 8
    assert 0 < figures["encoder_share_uncached"] < 1
