"""The id mapping of a vocabulary-subset checkpoint.

A small model trained only on what its tasks use needs only a few thousand of the
201,088 o200k_harmony ids. Its embedding and output layers are cut to that subset, and
``token_map.json`` next to its weights says which original id each compact id stands
for. The backend applies the mapping at its edges, so everything else (rendering,
parsing, stop tokens) keeps speaking original o200k_harmony ids.

Pure Python: the trainer and the service can import it without torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

FILENAME = "token_map.json"


class TokenMap:
    """Compact id ``i`` stands for original id ``original_ids[i]``.

    An original id outside the map becomes ``unknown_id`` (a compact id), so any prompt
    can be fed to the model; the model can only ever produce ids of the map.
    """

    def __init__(self, original_ids: Sequence[int], unknown_id: int) -> None:
        self.original_ids: tuple[int, ...] = tuple(int(i) for i in original_ids)
        if not self.original_ids:
            raise ValueError("a token map needs at least one id")
        self._compact_of = {original: i for i, original in enumerate(self.original_ids)}
        if len(self._compact_of) != len(self.original_ids):
            raise ValueError("a token map lists an original id twice")
        if not 0 <= unknown_id < len(self.original_ids):
            raise ValueError(
                f"unknown_id {unknown_id} is not a compact id (0..{len(self.original_ids) - 1})"
            )
        self.unknown_id = unknown_id

    @classmethod
    def covering(cls, used_ids: Iterable[int], unknown_original_id: int) -> TokenMap:
        """The smallest map holding ``used_ids`` and ``unknown_original_id``, sorted by
        original id (so the map is the same whatever order the ids were seen in).

        ``unknown_original_id`` is the original token that unmapped ids turn into, for
        example a rarely used special token.
        """
        ids = sorted({*used_ids, unknown_original_id})
        return cls(ids, ids.index(unknown_original_id))

    @property
    def vocab_size(self) -> int:
        """The number of compact ids: the model's embedding rows."""
        return len(self.original_ids)

    def to_compact(self, original_ids: Iterable[int]) -> list[int]:
        get = self._compact_of.get
        return [get(i, self.unknown_id) for i in original_ids]

    def to_original(self, compact_ids: Iterable[int]) -> list[int]:
        return [self.original_ids[i] for i in compact_ids]

    def __contains__(self, original_id: object) -> bool:
        return original_id in self._compact_of

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenMap):
            return NotImplemented
        return self.original_ids == other.original_ids and self.unknown_id == other.unknown_id

    def __hash__(self) -> int:
        return hash((self.original_ids, self.unknown_id))

    def __repr__(self) -> str:
        return f"TokenMap(vocab_size={self.vocab_size}, unknown_id={self.unknown_id})"

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the map as JSON. ``path`` is a checkpoint folder or a file name."""
        target = Path(path)
        if target.is_dir():
            target = target / FILENAME
        target.write_text(
            json.dumps({"original_ids": list(self.original_ids), "unknown_id": self.unknown_id})
        )
        return target

    @classmethod
    def load(cls, path: str | Path) -> TokenMap:
        """Read a map written by ``save``. ``path`` is a checkpoint folder or the file."""
        source = Path(path)
        if source.is_dir():
            source = source / FILENAME
        data = json.loads(source.read_text())
        try:
            return cls(data["original_ids"], data["unknown_id"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source} is not a token map: {exc}") from exc

    @classmethod
    def from_checkpoint(cls, folder: str | Path) -> TokenMap | None:
        """The map of a checkpoint folder, or None for a full-vocabulary checkpoint."""
        source = Path(folder) / FILENAME
        return cls.load(source) if source.is_file() else None
