"""Label alignment to word pieces, dynamic padding and length-grouped batch order."""

from __future__ import annotations

import pytest

from tunepool.data import DataError, TokenExample
from worker.training.batching import length_grouped_batches, sorted_batches
from worker.training.collate import pad_batch
from worker.training.models import load_tokenizer, minilm_path
from worker.training.token_classification import (
    IGNORE_INDEX,
    check_label_subset,
    encode_sentences,
    infer_labels,
    word_predictions,
)

LABELS = ["O", "B-PRODUCT", "I-PRODUCT", "B-PER"]
LABEL2ID = {label: index for index, label in enumerate(LABELS)}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(minilm_path()))


def test_first_word_piece_carries_the_label_and_the_rest_are_ignored(tokenizer):
    example = TokenExample(
        ["Ada", "loves", "Tunepoolification", "Pro"], ["B-PER", "O", "B-PRODUCT", "I-PRODUCT"], 1
    )
    [sentence] = encode_sentences([example], tokenizer, LABEL2ID, max_length=32)
    pieces = tokenizer.convert_ids_to_tokens(sentence.input_ids)
    assert pieces == ["[CLS]", "ada", "loves", "tune", "##pool", "##ification", "pro", "[SEP]"]
    ignore = IGNORE_INDEX
    assert sentence.labels == [ignore, 3, 0, 1, ignore, ignore, 2, ignore]
    assert sentence.first_piece_words == [-1, 0, 1, 2, -1, -1, 3, -1]


def test_truncated_and_pieceless_words_are_predicted_o(tokenizer):
    # "\u200b" yields no word piece; max_length 7 keeps [CLS] + 5 pieces + [SEP].
    example = TokenExample(["Ada", "\u200b", "Tunepoolification", "x", "Bob"], ["B-PER"] * 5, 1)
    [sentence] = encode_sentences([example], tokenizer, {"O": 0, "B-PER": 1}, max_length=7)
    assert len(sentence.input_ids) == 7
    predicted = [1] * len(sentence.input_ids)
    assert word_predictions(sentence, predicted, {0: "O", 1: "B-PER"}) == [
        "B-PER",
        "O",  # no piece at all
        "B-PER",
        "B-PER",
        "O",  # cut off by max_length
    ]


def test_padding_is_dynamic_to_a_multiple_of_8_and_labelled_minus_100(tokenizer):
    examples = [
        TokenExample(["Tunepoolification"], ["B-PRODUCT"], 1),
        TokenExample(["a"] * 9, ["O"] * 9, 2),
    ]
    sentences = encode_sentences(examples, tokenizer, LABEL2ID, max_length=128)
    batch = pad_batch(sentences, tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, 16)  # longest is 11 pieces, not 128
    assert batch["attention_mask"][0].tolist() == [1] * 5 + [0] * 11
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 1] + [IGNORE_INDEX] * 14
    assert batch["input_ids"][0, 5:].eq(tokenizer.pad_token_id).all()
    assert batch["labels"][1, 11:].eq(IGNORE_INDEX).all()


def test_label_set_is_sorted_with_o_first_and_validation_must_be_a_subset():
    train = [TokenExample(["a", "b"], ["I-PER", "B-PER"], 1), TokenExample(["c"], ["B-LOC"], 3)]
    assert infer_labels(train) == ["O", "B-LOC", "B-PER", "I-PER"]
    with pytest.raises(DataError) as caught:
        check_label_subset([TokenExample(["x"], ["B-ORG"], 7)], infer_labels(train), "validation")
    assert caught.value.line == 7
    assert "'B-ORG'" in caught.value.message


def test_length_grouped_batches_cover_every_sentence_once_and_are_seeded():
    lengths = [(i * 37) % 50 + 1 for i in range(200)]
    batches = length_grouped_batches(lengths, batch_size=8, seed=3)
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    assert batches == length_grouped_batches(lengths, batch_size=8, seed=3)
    assert batches != length_grouped_batches(lengths, batch_size=8, seed=4)
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # longest first

    # Grouping keeps padding low: within a batch lengths are close together (lengths
    # here run 1-50; batches of consecutive indices, i.e. unsorted, spread about 40).
    def spread(of: list[list[int]]) -> float:
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in of) / len(of)

    unsorted = [list(range(i, i + 8)) for i in range(0, 200, 8)]
    assert spread(batches) < 8 < 4 * 8 < spread(unsorted)


def test_sorted_batches_for_evaluation():
    assert sorted_batches([5, 1, 3], batch_size=2) == [[1, 2], [0]]
