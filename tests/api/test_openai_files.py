"""An OpenAI fine-tuning upload becomes the dataset its first line says it is."""

from __future__ import annotations

import io

import pytest

from api.openai_files import upload_kind


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (b'{"messages": [{"role": "user", "content": "hi"}]}', ("causal-lm", "chat")),
        (b'{"conversations": []}', ("causal-lm", "chat")),
        (b'{"instruction": "x", "output": "y"}', ("causal-lm", "chat")),
        # A broken chat line still goes to the chat reader, which names it.
        (b'{"messages": [{"role": "user", "content": "cut', ("causal-lm", "chat")),
        (b'\xef\xbb\xbf{"tokens": ["Ola"], "tags": ["B-PER"]}', ("token-classification", "jsonl")),
        (b"Ola\tB-PER\nlives\tO\n", ("token-classification", "conll")),
    ],
)
def test_the_first_line_decides_and_the_stream_is_rewound(
    first: bytes, kind: tuple[str, str]
) -> None:
    stream = io.BytesIO(b"\n  \n" + first + b"\nmore\n")
    assert upload_kind(stream) == kind
    assert stream.tell() == 0
