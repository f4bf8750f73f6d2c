"""Streamed text adds up to the full text, and never shows part of a stop string."""

from __future__ import annotations

from typing import Any

from worker.inference.generation.text import TextAssembler


def stream(tokenizer: Any, text: str, stop: tuple[str, ...]) -> tuple[list[str], TextAssembler]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assembler = TextAssembler(tokenizer, (101,), stop)
    pieces = []
    for token in ids:
        pieces.append(assembler.add(token))
        if assembler.stopped:
            break
    pieces.append(assembler.finish())
    return pieces, assembler


def test_pieces_add_up_to_the_decoded_text(tokenizer: Any) -> None:
    pieces, assembler = stream(tokenizer, "the quick brown fox jumps", ())
    assert "".join(pieces) == assembler.text == "the quick brown fox jumps"
    assert all(pieces[:-1])  # each word released as soon as its token came


def test_a_stop_string_cuts_the_text_and_is_never_released(tokenizer: Any) -> None:
    pieces, assembler = stream(tokenizer, "the quick brown fox jumps over", ("fox j",))
    assert assembler.stopped
    assert assembler.text == "the quick brown "
    assert "".join(pieces) == "the quick brown "
    # "fox" might have begun "fox j", so it was held back, then dropped with the stop.
    assert not any("fox" in piece for piece in pieces)


def test_held_back_text_is_released_when_it_turns_out_not_to_stop(tokenizer: Any) -> None:
    pieces, assembler = stream(tokenizer, "the quick brown fox", ("brown cow",))
    assert not assembler.stopped
    assert "".join(pieces) == "the quick brown fox"
    # "brown" waited one token to see whether " cow" followed; the space before it did not.
    assert pieces[2:4] == [" ", "brown fox"]
