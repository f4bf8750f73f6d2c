"""Classification (CSV/TSV/JSONL) and corpus readers: columns, labels, lines at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunepool.data import DataError
from tunepool.data.text_files import read_text_documents, read_text_examples
from tunepool.data.text_stats import corpus_stats, text_dataset_stats

SMS = (
    Path(__file__).resolve().parents[2].parent / "shared/data/classification/sms_spam/sms_spam.tsv"
)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_csv_header_names_columns_in_any_case_and_order(tmp_path):
    path = write(tmp_path, "a.csv", 'Label,id,TEXT\npos,1,"good, really"\nneg,2,bad\n\n')
    examples = read_text_examples(path, "csv")
    assert [(e.text, e.label, e.line) for e in examples] == [
        ("good, really", "pos", 2),
        ("bad", "neg", 3),
    ]


def test_two_column_tsv_reads_label_and_the_other_column_as_text(tmp_path):
    path = write(tmp_path, "sms.tsv", 'Label\tSMS\r\nham\tsee you "soon"\r\nspam\tWIN now\r\n')
    examples = read_text_examples(path, "tsv")
    assert [(e.text, e.label) for e in examples] == [('see you "soon"', "ham"), ("WIN now", "spam")]
    stats = text_dataset_stats(examples)
    assert stats["labels"] == {"ham": 1, "spam": 1}


@pytest.mark.skipif(not SMS.exists(), reason="shared data absent")
def test_the_sms_spam_collection_reads_as_shipped():
    examples = read_text_examples(SMS, "tsv")
    assert len(examples) == 5574
    assert text_dataset_stats(examples)["labels"] == {"ham": 4827, "spam": 747}


def test_explicit_columns_and_jsonl(tmp_path):
    path = write(tmp_path, "a.csv", "body,category\nhello,x\n")
    assert read_text_examples(path, "csv", "body", "category")[0].label == "x"
    path = write(
        tmp_path, "a.jsonl", '{"text": "hi", "label": 1}\n\n{"text": "yo", "label": "b"}\n'
    )
    assert [(e.label, e.line) for e in read_text_examples(path, "jsonl")] == [("1", 1), ("b", 3)]


@pytest.mark.parametrize(
    ("name", "content", "line", "message"),
    [
        ("a.csv", "words,label,id\nhi,x,1\n", 1, "no text column"),
        ("a.csv", "text\nhi\n", 1, "at least two columns"),
        ("a.tsv", "text\tlabel\nhi\tx\nsplit,by,comma\n", 3, "separated by tabs"),
        ("a.csv", "text,label\nhi,x\n,y\n", 3, "text is empty"),
        ("a.csv", "text,label\nhi,x\nho,\n", 3, "label is empty"),
        ("a.csv", 'text,label\n"unclosed,x\n', 2, "malformed CSV"),
        ("a.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "x"\n', 2, "invalid JSON"),
        ("a.jsonl", '{"text": "a", "label": null}\n', 1, "string or an integer"),
        ("a.jsonl", '["a", "x"]\n', 1, "expected an object"),
        ("a.csv", b"text,label\nhi,x\n\xff\xfe,y\n", 3, "UTF-8"),
        ("a.csv", b"text,label\nhi\x00,x\n", 2, "binary"),
        ("a.csv", "text,label\n", None, "no examples"),
    ],
)
def test_malformed_classification_files_name_the_line(tmp_path, name, content, line, message):
    with pytest.raises(DataError) as caught:
        read_text_examples(write(tmp_path, name, content), name.rsplit(".", 1)[1])
    assert caught.value.line == line
    assert message in caught.value.message


def test_corpus_reader_skips_blank_lines_and_reads_jsonl(tmp_path):
    path = write(tmp_path, "c.text", "\ufefffirst doc\n\n  \nsecond doc\nfirst doc\n")
    documents = read_text_documents(path, "text")
    assert [(d.text, d.line) for d in documents] == [
        ("first doc", 1),
        ("second doc", 4),
        ("first doc", 5),
    ]
    assert corpus_stats(documents)["duplicates"] == {"count": 1, "lines": [5]}
    path = write(tmp_path, "c.jsonl", '{"text": "a b"}\n{"txt": "c"}\n')
    with pytest.raises(DataError) as caught:
        read_text_documents(path, "jsonl")
    assert caught.value.line == 2
