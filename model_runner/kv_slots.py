"""Key/value storage of the batching runner: a fixed set of slots, one per conversation,
each able to hold a whole context. Imports torch: only the transformers backend uses it.

Every layer's keys and values live in one tensor of shape (slots, kv_heads, length,
head_dim), allocated once. A generation takes a slot, writes each token's keys and
values at its position, and leaves them there when it ends: the slot stays with its
conversation (``cache_key``) so that the next turn, whose prompt is the previous prompt
plus the completion and the tool's answer, prefills only what is new. A slot whose
conversation goes quiet is taken over, least recently used first.

Sliding-window layers are stored whole too: attention is windowed by the mask, not by
the storage, so a slot can be cut back to any length (an edited or regenerated turn)
and still be exact. transformers' own sliding layers keep only the window, and its
continuous-batching cache cannot share blocks of sliding-window layers at all; gpt-oss
alternates them with full attention, which is why this runner keeps its own slots.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class Slot:
    index: int
    #: Token ids (as the model sees them) whose keys and values the slot holds, in order.
    tokens: list[int] = field(default_factory=list)
    #: The conversation it belongs to: a request's ``cache_key``, or None.
    key: str | None = None
    busy: bool = False
    last_used: int = 0


@dataclass(frozen=True)
class Claim:
    slot: Slot
    #: Prompt tokens already in the slot: the prefill starts after them.
    reused: int


class SlotCache:
    """The key/value tensors of every layer, and which slot holds what.

    ``reuse`` turns prefix reuse off (a cache budget of 0): every claim then starts
    from an empty slot. Not thread-safe: the runner's one worker thread owns it.
    """

    def __init__(
        self,
        config: Any,
        *,
        num_slots: int,
        length: int,
        device: torch.device,
        dtype: torch.dtype,
        reuse: bool = True,
    ) -> None:
        self.layer_types: list[str] = list(
            getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
        )
        self.sliding_window: int | None = getattr(config, "sliding_window", None)
        kv_heads = int(getattr(config, "num_key_value_heads", config.num_attention_heads))
        head_dim = int(
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        shape = (num_slots, kv_heads, length, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.layer_types]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.layer_types]
        self.length = length
        self.reuse = reuse
        self.slots = [Slot(i) for i in range(num_slots)]
        self._clock = itertools.count(1)

    @staticmethod
    def bytes_per_slot(config: Any, length: int, dtype: torch.dtype) -> int:
        kv_heads = int(getattr(config, "num_key_value_heads", config.num_attention_heads))
        head_dim = int(
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        return 2 * int(config.num_hidden_layers) * kv_heads * length * head_dim * dtype.itemsize

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.keys) + sum(t.nbytes for t in self.values)

    @property
    def cached_conversations(self) -> int:
        """Idle slots that still hold a conversation's tokens."""
        return sum(1 for s in self.slots if s.tokens and not s.busy)

    def is_sliding(self, layer_idx: int) -> bool:
        return (
            self.layer_types[layer_idx] == "sliding_attention" and self.sliding_window is not None
        )

    # -- claiming ---------------------------------------------------------------------

    def claim(self, key: str | None, prompt: Sequence[int]) -> Claim | None:
        """A slot for a generation of ``prompt``, holding as much of it as possible; None
        when every slot is busy. At least the prompt's last token is left to compute,
        since its logits give the first new token."""
        if not self.reuse:
            slot = self._free_slot()
            if slot is None:
                return None
            self._reset(slot, key)
            return self._take(slot, 0)
        limit = len(prompt) - 1
        own = next((s for s in self.slots if key is not None and s.key == key), None)
        if own is not None and not own.busy:
            reused = min(common_prefix_length(own.tokens, prompt), limit)
            if reused > 0:
                del own.tokens[reused:]
                return self._take(own, reused)
        # Another conversation may share a preamble (the same system prompt): copy it.
        donor, shared = self._longest_prefix(prompt)
        slot = own if own is not None and not own.busy else self._free_slot()
        if slot is None:
            return None
        self._reset(slot, key)
        shared = min(shared, limit)
        if donor is not None and shared > 0 and donor is not slot:
            self._copy(donor, slot, shared)
            slot.tokens = list(prompt[:shared])
            return self._take(slot, shared)
        return self._take(slot, 0)

    def release(self, slot: Slot) -> None:
        slot.busy = False
        slot.last_used = next(self._clock)
        if not self.reuse:
            slot.tokens.clear()

    def forget(self) -> None:
        """Drop every idle slot's contents (after an out-of-memory error, say)."""
        for slot in self.slots:
            if not slot.busy:
                slot.tokens.clear()
                slot.key = None

    def pack(self, slots: Sequence[Slot]) -> None:
        """Move ``slots`` to the front, indices 0 to n-1, by swapping them with slots
        there: a pass reads each layer's keys as one view from its first row to its
        last, so rows spread over the whole cache would have it read every slot between
        (gathering them instead copied every row's span, every step: at 8 rows, a fifth
        of a decoding step on a CPU). A swap copies only the tokens the two slots hold,
        and a Slot keeps its contents (it is the Slot's ``index`` that changes)."""
        front = len(slots)
        wanted = {id(slot) for slot in slots}
        strangers = (s for s in self.slots[:front] if id(s) not in wanted)
        for slot in [s for s in slots if s.index >= front]:
            self._swap(slot, next(strangers))

    def _swap(self, a: Slot, b: Slot) -> None:
        used = max(len(a.tokens), len(b.tokens))
        if used:
            i, j = a.index, b.index
            for tensors in (self.keys, self.values):
                for layer in tensors:
                    held = layer[i, :, :used].clone()
                    layer[i, :, :used] = layer[j, :, :used]
                    layer[j, :, :used] = held
        self.slots[a.index], self.slots[b.index] = b, a
        a.index, b.index = b.index, a.index

    def _take(self, slot: Slot, reused: int) -> Claim:
        slot.busy = True
        slot.last_used = next(self._clock)
        return Claim(slot, reused)

    def _reset(self, slot: Slot, key: str | None) -> None:
        slot.tokens = []
        # A key names one slot: the conversation moves here from wherever it was.
        for other in self.slots:
            if key is not None and other.key == key and other is not slot:
                other.key = None
        slot.key = key

    def _free_slot(self) -> Slot | None:
        idle = [s for s in self.slots if not s.busy]
        if not idle:
            return None
        # Empty slots first, then the least recently used conversation.
        return min(idle, key=lambda s: (bool(s.tokens), s.last_used))

    def _longest_prefix(self, prompt: Sequence[int]) -> tuple[Slot | None, int]:
        best: Slot | None = None
        best_length = 0
        for slot in self.slots:
            length = common_prefix_length(slot.tokens, prompt)
            if length > best_length:
                best, best_length = slot, length
        return best, best_length

    def _copy(self, source: Slot, target: Slot, length: int) -> None:
        for tensors in (self.keys, self.values):
            for layer in tensors:
                layer[target.index, :, :length] = layer[source.index, :, :length]
