"""Reading CoNLL and JSONL token files, and rejecting bad ones at the right line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunepool.data import DataError, read_token_examples

WNUT17 = Path("/work/shared/data/ner/wnut17")


def write(tmp_path: Path, content: str | bytes, name: str = "data.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_conll_last_column_is_the_tag_and_docstart_is_skipped(tmp_path):
    path = write(
        tmp_path,
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n",
    )
    examples = read_token_examples(path, "conll")
    assert [e.tokens for e in examples] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert [e.tags for e in examples] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    assert [e.line for e in examples] == [3, 7]


def test_conll_bom_only_line_breaks_sentences_and_bom_is_stripped_from_tokens(tmp_path):
    path = write(tmp_path, "\ufeffHi\tO\nDubbz\ufeff\tB-person\n \ufeff \nnext\tO\n\ufeff\n")
    examples = read_token_examples(path, "conll")
    assert [e.tokens for e in examples] == [["Hi", "Dubbz"], ["next"]]
    assert [e.tags for e in examples] == [["O", "B-person"], ["O"]]
    assert [e.line for e in examples] == [1, 4]


def test_conll_crlf_and_unicode_line_separators_inside_tokens(tmp_path):
    # U+2028 and U+0085 are line breaks for str.splitlines() but not in CoNLL.
    path = write(tmp_path, "a\u2028b\tB-X\r\nc\x85\tO\r\n\r\nd\tO\r\n")
    examples = read_token_examples(path, "conll")
    assert [e.tokens for e in examples] == [["a\u2028b", "c\x85"], ["d"]]
    assert [e.tags for e in examples] == [["B-X", "O"], ["O"]]
    assert examples[1].line == 4


def test_conll_non_breaking_space_is_not_a_column_separator(tmp_path):
    path = write(tmp_path, "New\u00a0York\tB-LOC\n")
    assert read_token_examples(path, "conll")[0].tokens == ["New\u00a0York"]


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("a\tO\nb\tO\n\nlonely\n", 4, "one column"),
        ("a\tO\n\nb\tB-PER\nc\tPER\n", 4, "'PER'"),
        ("a\tO\nb\tE-PER\n", 2, "'E-PER'"),
        ("a\tO\nb\tB-\n", 2, "'B-'"),
        (b"a\tO\n\nb\tO\nc\xff\tO\n", 4, "UTF-8"),
    ],
)
def test_conll_malformed_input_names_the_line(tmp_path, content, line, fragment):
    with pytest.raises(DataError) as caught:
        read_token_examples(write(tmp_path, content), "conll")
    assert caught.value.line == line
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"line {line}: ")


@pytest.mark.parametrize("content", ["", "\n\n  \n", "-DOCSTART- O\n\n"])
def test_empty_files_are_rejected(tmp_path, content):
    with pytest.raises(DataError, match=r"empty|no sentences"):
        read_token_examples(write(tmp_path, content), "conll")


def test_jsonl_reads_sentences_with_their_lines(tmp_path):
    rows = [{"tokens": ["Ada", "codes"], "tags": ["B-PER", "O"]}, {"tokens": ["x"], "tags": ["O"]}]
    path = write(
        tmp_path, "\n".join(json.dumps(r) for r in rows[:1]) + "\n\n" + json.dumps(rows[1])
    )
    examples = read_token_examples(path, "jsonl")
    assert [(e.tokens, e.tags, e.line) for e in examples] == [
        (["Ada", "codes"], ["B-PER", "O"], 1),
        (["x"], ["O"], 3),
    ]


@pytest.mark.parametrize(
    ("second_line", "fragment"),
    [
        ('{"tokens": ["a", "b"], "tags": ["O"]}', "2 tokens but 1 tags"),
        ('{"tokens": ["a"], "tags": ["O"]', "invalid JSON"),
        ('{"tokens": ["a"], "tags": ["X-1"]}', "'X-1'"),
        ('{"tokens": "a", "tags": ["O"]}', "list of strings"),
        ('["a"]', "expected an object"),
    ],
)
def test_jsonl_malformed_input_names_the_line(tmp_path, second_line, fragment):
    path = write(tmp_path, '{"tokens": ["ok"], "tags": ["O"]}\n' + second_line + "\n", "d.jsonl")
    with pytest.raises(DataError) as caught:
        read_token_examples(path, "jsonl")
    assert caught.value.line == 2
    assert fragment in caught.value.message


def test_unknown_format_is_rejected(tmp_path):
    with pytest.raises(DataError, match="unknown token file format"):
        read_token_examples(write(tmp_path, "a\tO\n"), "csv")


@pytest.mark.skipif(not (WNUT17 / "dev.conll").exists(), reason="WNUT17 data not present")
def test_wnut17_dev_keeps_every_sentence_and_label_in_place():
    examples = read_token_examples(WNUT17 / "dev.conll", "conll")
    # 1008 blank separators plus a final sentence closed by the BOM-only last line;
    # 15,733 two-column lines in the file (counted with awk).
    assert len(examples) == 1009
    assert sum(len(e.tokens) for e in examples) == 15733
    assert not any("\ufeff" in token for e in examples for token in e.tokens)
    dubbz = next(e for e in examples if "Dubbz" in e.tokens)
    assert dubbz.tags[dubbz.tokens.index("Dubbz")] == "B-person"
    last = examples[-1]
    assert last.tokens[-3:] == ["Discivery", "Channel", "!"]
    assert last.tags[-3:] == ["B-corporation", "I-corporation", "O"]
