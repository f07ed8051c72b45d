"""The prefix cache's bookkeeping: crop, byte budget, LRU order, unkeyed matching.
(That reuse leaves outputs unchanged is tested end to end in the backend tests.)"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

from model_runner.prefix_cache import (
    CachedSequence,
    PrefixCache,
    RewindableSlidingLayer,
    cache_nbytes,
    common_prefix_length,
)


def filled(tokens: list[int], window: int = 4) -> CachedSequence:
    """A two-layer cache (sliding, full) holding keys and values for ``tokens``."""
    cache = Cache(layers=[RewindableSlidingLayer(window), DynamicLayer()])
    states = torch.zeros(1, 2, len(tokens), 8)
    for layer_idx in range(2):
        cache.update(states, states, layer_idx)
    return CachedSequence(cache, list(tokens))


def test_sliding_layer_returns_the_window_but_keeps_everything() -> None:
    layer = RewindableSlidingLayer(sliding_window=4)
    keys, _ = layer.update(torch.zeros(1, 1, 10, 2), torch.zeros(1, 1, 10, 2))
    assert keys.shape[-2] == 10  # a prefill attends over its whole chunk
    assert layer.get_mask_sizes(query_length=1) == (4, 7)
    keys, _ = layer.update(torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))
    assert keys.shape[-2] == 4  # 3 cached positions in the window, plus the new one
    layer.crop(-8)
    assert layer.get_seq_length() == 3  # cropped past the window, as a full layer would be


def test_crop_forgets_tokens_and_cache_together() -> None:
    entry = filled([1, 2, 3, 4, 5, 6])
    entry.crop(2)
    assert entry.tokens == [1, 2]
    assert entry.cache.get_seq_length() == 2


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_keyed_entries_are_taken_by_key_only() -> None:
    pool = PrefixCache(budget_bytes=10**9)
    pool.put("a", filled([1, 2, 3]))
    assert pool.take("b", [1, 2, 3]) is None
    assert pool.take(None, [1, 2, 3]) is None  # unkeyed requests leave keyed caches alone
    entry = pool.take("a", [1, 2, 9])
    assert entry is not None and entry.tokens == [1, 2, 3]
    assert len(pool) == 0  # taken out while in use


def test_unkeyed_requests_take_the_longest_matching_prefix() -> None:
    pool = PrefixCache(budget_bytes=10**9)
    pool.put(None, filled([1, 2, 7]))
    pool.put(None, filled([1, 2, 3, 4]))
    pool.put(None, filled([5, 6]))
    entry = pool.take(None, [1, 2, 3, 9])
    assert entry is not None and entry.tokens == [1, 2, 3, 4]
    assert pool.take(None, [8]) is None
    assert len(pool) == 2


def test_least_recently_used_entries_go_first_under_the_budget() -> None:
    one = filled([1] * 16)
    size = cache_nbytes(one.cache)
    pool = PrefixCache(budget_bytes=2 * size)
    pool.put("old", one)
    pool.put("mid", filled([2] * 16))
    pool.put("new", filled([3] * 16))
    assert len(pool) == 2
    assert pool.nbytes <= 2 * size
    assert pool.take("old", [1]) is None
    assert pool.take("mid", [2]) is not None


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    pool = PrefixCache(budget_bytes=1)
    pool.put("big", filled([1, 2, 3]))
    assert len(pool) == 0
