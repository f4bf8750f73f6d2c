"""The malformed-file corpus in tests/data/corpus/: each file, its task and format, and
the line the rejection must name (None: the file has no line to name)."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"

# (file, task, format, line, words the message must contain)
CASES = [
    ("empty.conll", "token-classification", "conll", None, "empty"),
    ("binary.conll", "token-classification", "conll", 1, "UTF-8"),
    ("nul_byte.conll", "token-classification", "conll", 2, "binary"),
    ("latin1.conll", "token-classification", "conll", 3, "UTF-8"),
    ("cr_only.conll", "token-classification", "conll", 1, "carriage return"),
    ("crlf_bad_tag.conll", "token-classification", "conll", 4, "'PER'"),
    ("bom_line.jsonl", "token-classification", "jsonl", 2, "invalid JSON"),
    ("mixed_separators.conll", "token-classification", "conll", 2, "one column"),
    ("mixed_separators.tsv", "sequence-classification", "tsv", 3, "separated by tabs"),
    ("invalid_bio.conll", "token-classification", "conll", 2, "'E-PER'"),
    ("unbalanced.jsonl", "token-classification", "jsonl", 2, "invalid JSON"),
    ("tags_mismatch.jsonl", "token-classification", "jsonl", 1, "2 tokens but 1 tags"),
    ("no_header.csv", "sequence-classification", "csv", 1, "no label column"),
    ("unbalanced_quote.csv", "sequence-classification", "csv", 2, "CSV"),
    ("unbalanced.text.jsonl", "masked-lm", "jsonl", 2, "invalid JSON"),
]
# Valid files whose labels disagree: evaluation uses B-ORG (line 3), training has none.
UNKNOWN_LABEL = ("unknown_label_train.conll", "unknown_label_validation.conll", 3, "'B-ORG'")
