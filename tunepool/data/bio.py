"""BIO tag rules shared by the file readers and the dataset statistics.

Only `O`, `B-<type>` and `I-<type>` are accepted: the engine's metrics (seqeval,
IOB2) and its label alignment assume exactly this scheme, so other schemes
(IOBES, bare types) are rejected at upload rather than silently mis-scored.
"""

from __future__ import annotations


def is_bio_tag(tag: str) -> bool:
    """True for `O`, or `B-`/`I-` followed by a non-empty entity type."""
    if tag == "O":
        return True
    return len(tag) > 2 and tag[:2] in ("B-", "I-") and not tag[2:].isspace()


def entity_type(tag: str) -> str | None:
    """The entity type of a B-/I- tag, None for `O`."""
    return None if tag == "O" else tag[2:]


def invalid_transition(previous: str | None, tag: str) -> bool:
    """True when `tag` is I-X but the tag before it is neither B-X nor I-X.

    `previous` is None at the start of a sentence. seqeval's default mode reads
    such an I-X as the start of a new entity, its strict mode drops it, so the
    two scores differ exactly on these positions.
    """
    if not tag.startswith("I-"):
        return False
    return previous is None or previous == "O" or previous[2:] != tag[2:]
