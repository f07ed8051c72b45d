"""TokenMap: the compact/original id mapping of vocabulary-subset checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_runner.token_map import FILENAME, TokenMap


def test_maps_both_ways_and_folds_unknown_ids() -> None:
    token_map = TokenMap([200006, 10, 20, 199999], unknown_id=3)
    assert token_map.vocab_size == 4
    assert token_map.to_compact([10, 200006, 20, 55]) == [1, 0, 2, 3]
    assert token_map.to_original([1, 0, 2, 3]) == [10, 200006, 20, 199999]
    assert 10 in token_map
    assert 55 not in token_map


def test_covering_is_sorted_and_holds_the_unknown_token() -> None:
    token_map = TokenMap.covering([30, 10, 20, 10], unknown_original_id=199999)
    assert token_map.original_ids == (10, 20, 30, 199999)
    assert token_map.original_ids[token_map.unknown_id] == 199999


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    token_map = TokenMap.covering(range(100, 150), unknown_original_id=200012)
    written = token_map.save(tmp_path)
    assert written == tmp_path / FILENAME
    assert json.loads(written.read_text()) == {
        "original_ids": list(token_map.original_ids),
        "unknown_id": token_map.unknown_id,
    }
    assert TokenMap.load(tmp_path) == token_map
    assert TokenMap.load(written) == token_map
    assert TokenMap.from_checkpoint(tmp_path) == token_map
    assert TokenMap.from_checkpoint(tmp_path / "elsewhere") is None


@pytest.mark.parametrize(
    ("ids", "unknown"),
    [([], 0), ([1, 2, 1], 0), ([1, 2], 2), ([1, 2], -1)],
)
def test_rejects_malformed_maps(ids: list[int], unknown: int) -> None:
    with pytest.raises(ValueError):
        TokenMap(ids, unknown)


def test_load_rejects_a_file_of_another_shape(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_text(json.dumps({"ids": [1, 2]}))
    with pytest.raises(ValueError, match="not a token map"):
        TokenMap.load(tmp_path)
