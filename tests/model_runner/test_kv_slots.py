"""The key/value slots' bookkeeping: which slot a prompt gets and how much of it is
reused. (That reuse leaves outputs unchanged is tested end to end in the backend tests.)"""

from __future__ import annotations

import torch
from transformers import GptOssConfig

from model_runner.kv_slots import SlotCache, common_prefix_length

CONFIG = GptOssConfig(
    vocab_size=64, hidden_size=16, intermediate_size=16, num_hidden_layers=2,
    num_attention_heads=2, num_key_value_heads=1, head_dim=8, sliding_window=4,
)  # fmt: skip


def slots(count: int = 3, reuse: bool = True) -> SlotCache:
    return SlotCache(
        CONFIG, num_slots=count, length=32, device=torch.device("cpu"), dtype=torch.float32,
        reuse=reuse,
    )  # fmt: skip


def fill(cache: SlotCache, key: str | None, tokens: list[int]) -> int:
    """Claim a slot for ``tokens``, write them as a generation would, release it."""
    claim = cache.claim(key, tokens)
    assert claim is not None
    for layer in cache.keys:
        layer[claim.slot.index, :, : len(tokens)] = float(claim.slot.index + 1)
    claim.slot.tokens = list(tokens)
    cache.release(claim.slot)
    return claim.slot.index


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_a_conversation_gets_its_own_slot_back_cut_to_the_common_prefix() -> None:
    cache = slots()
    index = fill(cache, "a", [1, 2, 3, 4, 5])
    claim = cache.claim("a", [1, 2, 3, 9, 9])
    assert claim is not None
    assert (claim.slot.index, claim.reused) == (index, 3)
    assert claim.slot.tokens == [1, 2, 3]


def test_the_last_prompt_token_is_always_left_to_compute() -> None:
    cache = slots()
    fill(cache, "a", [1, 2, 3])
    claim = cache.claim("a", [1, 2, 3])
    assert claim is not None and claim.reused == 2


def test_a_shared_preamble_is_copied_not_taken() -> None:
    cache = slots()
    donor = fill(cache, "a", [1, 2, 3, 4])
    claim = cache.claim("b", [1, 2, 3, 7])
    assert claim is not None
    assert claim.slot.index != donor and claim.reused == 3
    # The keys came along, and the donor keeps its conversation.
    assert torch.equal(cache.keys[0][claim.slot.index, :, :3], cache.keys[0][donor, :, :3])
    assert cache.slots[donor].tokens == [1, 2, 3, 4] and cache.slots[donor].key == "a"


def test_busy_slots_are_never_taken_and_a_full_cache_says_so() -> None:
    cache = slots(2)
    first = cache.claim("a", [1, 2])
    second = cache.claim("b", [3, 4])
    assert first is not None and second is not None
    assert cache.claim("c", [5, 6]) is None
    cache.release(first.slot)
    third = cache.claim("c", [5, 6])
    assert third is not None and third.slot is first.slot and third.reused == 0


def test_the_least_recently_used_conversation_goes_first() -> None:
    cache = slots(2)
    old = fill(cache, "old", [1, 1, 1])
    fill(cache, "new", [2, 2, 2])
    claim = cache.claim("third", [3, 3])
    assert claim is not None and claim.slot.index == old
    assert cache.claim("old", [1, 1, 1, 5]) is not None  # it starts again, from nothing


def test_without_reuse_nothing_is_kept() -> None:
    cache = slots(reuse=False)
    fill(cache, "a", [1, 2, 3, 4])
    claim = cache.claim("a", [1, 2, 3, 4, 5])
    assert claim is not None and claim.reused == 0
    assert cache.cached_conversations == 0


def test_packing_moves_busy_slots_to_the_front_with_their_contents() -> None:
    cache = slots(4)
    for key, tokens in (("a", [1, 1]), ("b", [2, 2, 2]), ("c", [3]), ("d", [4, 4, 4, 4])):
        fill(cache, key, tokens)
    by_key = {slot.key: slot for slot in cache.slots}
    busy = [by_key["d"], by_key["b"]]
    before = {slot.key: cache.keys[1][slot.index, :, : len(slot.tokens)].clone() for slot in busy}
    cache.pack(busy)
    # Both now sit in the first two indices; every slot's index says where it is, and
    # each conversation's keys travelled with it.
    assert sorted(slot.index for slot in busy) == [0, 1]
    assert [slot.index for slot in cache.slots] == [0, 1, 2, 3]
    assert {slot.key for slot in cache.slots} == {"a", "b", "c", "d"}
    for slot in cache.slots:
        expected = before.get(slot.key)
        held = cache.keys[1][slot.index, :, : len(slot.tokens)]
        if expected is not None:
            assert torch.equal(held, expected)
    # A conversation whose slot moved still gets it back, keys and all.
    claim = cache.claim("a", [1, 1, 5])
    assert claim is not None and claim.slot is by_key["a"] and claim.reused == 2
    cache.pack([by_key["d"], by_key["b"]])  # already at the front: nothing moves
    assert sorted(slot.index for slot in busy) == [0, 1]
