"""Key/value caches of recent conversations, kept so a follow-up turn prefills only
what is new.

A conversation's next prompt is its previous prompt, the completion, the tool's answer
and the next user message: the cache of the earlier turn covers almost all of it. The
pool holds one cache per ``cache_key`` (plus a few unkeyed ones), least recently used
evicted under a byte budget.

Sliding-window layers. gpt-oss alternates full attention with 128-token sliding-window
attention. transformers' own sliding layer keeps only the last 127 positions, so once a
conversation is longer than the window it can only grow, never be cut back: a prompt
that diverges from the cached tokens (a regenerated answer, an edited turn, the
stop token that is not part of the next prompt) would have to be recomputed from
scratch. ``RewindableSlidingLayer`` instead keeps every position, hands attention only
the window it needs, and so can be cropped to any length like a full layer. It costs
the same memory as a full layer; attention compute stays windowed.

Imports torch and transformers: only the transformers backend imports this module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer


class RewindableSlidingLayer(DynamicLayer):
    """A sliding-window cache layer that keeps all positions so it can be cropped.

    ``update`` returns (and ``get_mask_sizes`` announces) only the keys the window can
    see: the last ``sliding_window - 1`` cached positions plus the new ones, exactly what
    transformers' ``DynamicSlidingWindowLayer`` returns, so attention results agree with
    it. ``crop`` is ``DynamicLayer``'s: everything is still there to cut back to.
    """

    is_sliding = True

    def __init__(self, sliding_window: int) -> None:
        super().__init__()
        self.sliding_window = sliding_window

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = super().update(key_states, value_states)
        visible = self.sliding_window - 1 + key_states.shape[-2]
        return keys[:, :, -visible:, :], values[:, :, -visible:, :]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        # Called before ``update`` with the length cached so far; must describe the
        # slice ``update`` is about to return.
        past = self.get_seq_length()
        offset = max(past - self.sliding_window + 1, 0)
        return past + query_length - offset, offset


def new_rewindable_cache(config: Any) -> Cache:
    """An empty cache for ``config``'s model whose every layer can be cropped."""
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * int(
        config.num_hidden_layers
    )
    window = getattr(config, "sliding_window", None)
    layers: list[Any] = [
        RewindableSlidingLayer(window)
        if layer_type == "sliding_attention" and window is not None
        else DynamicLayer()
        for layer_type in layer_types
    ]
    return Cache(layers=layers)


def cache_nbytes(cache: Cache) -> int:
    """Memory the cache holds. Counts whole storages, since a cropped layer is a view
    that keeps its uncropped storage alive until the next update replaces it."""
    total = 0
    for layer in cache.layers:
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.untyped_storage().nbytes()
    return total


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class CachedSequence:
    """A cache and the token ids (as the model saw them) whose keys and values it holds."""

    cache: Cache
    tokens: list[int] = field(default_factory=list)

    def crop(self, length: int) -> None:
        """Forget everything after the first ``length`` tokens."""
        remove = len(self.tokens) - length
        if remove > 0:
            # transformers' crop takes a negative count (a positive one is a legacy form).
            self.cache.crop(-remove)
            del self.tokens[length:]

    @property
    def nbytes(self) -> int:
        return cache_nbytes(self.cache)


class PrefixCache:
    """Least-recently-used caches of recent conversations, under a byte budget.

    A request with a ``cache_key`` reuses the cache stored under that key. A request
    without one reuses the unkeyed cache sharing the longest prefix with its prompt
    (typically the same system prompt), so unkeyed traffic still skips the common
    preamble. Caches are taken out while in use (one generation owns its cache) and put
    back afterwards; a budget of 0 turns caching off.

    Not thread-safe on its own: the backend calls it under its generation lock.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[CachedSequence, int]] = OrderedDict()
        self._anonymous = count()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def take(self, key: str | None, prompt: Sequence[int]) -> CachedSequence | None:
        """Remove and return the cache worth reusing for ``prompt``, or None.

        The caller crops it to the common prefix; a cache sharing nothing is dropped.
        """
        if key is not None:
            found = self._entries.pop(("key", key), None)
            if found is None or common_prefix_length(found[0].tokens, prompt) == 0:
                return None
            return found[0]
        best: tuple[str, str] | None = None
        best_length = 0
        for slot, (entry, _) in self._entries.items():
            if slot[0] != "anonymous":
                continue
            length = common_prefix_length(entry.tokens, prompt)
            if length > best_length:
                best, best_length = slot, length
        if best is None:
            return None
        return self._entries.pop(best)[0]

    def put(self, key: str | None, entry: CachedSequence) -> None:
        """Store ``entry`` as the most recently used, evicting the least recently used
        caches until the pool fits its budget (``entry`` too, if it alone is too big)."""
        slot = ("key", key) if key is not None else ("anonymous", str(next(self._anonymous)))
        self._entries.pop(slot, None)
        self._entries[slot] = (entry, entry.nbytes)
        total = self.nbytes
        while self._entries and total > self.budget_bytes:
            _, (_, size) = self._entries.popitem(last=False)
            total -= size

    def clear(self) -> None:
        self._entries.clear()
