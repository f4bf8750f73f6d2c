"""Every labelled word weighs the same, whatever the length of the batch it falls in.

Length-grouped batching puts short sentences together and long ones together, so
batches differ several-fold in labelled words. Averaging the loss per batch would
weigh each word of a short batch more than a word of a long one; the loop weighs each
batch by its labelled words instead.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from transformers import BertConfig, BertForTokenClassification

from worker.training.callbacks import NullCallbacks
from worker.training.checkpoint import TrainerState
from worker.training.collate import pad_batch
from worker.training.loop import TrainingLoop, labelled_counts
from worker.training.spec import Hyperparameters
from worker.training.token_classification import IGNORE_INDEX, EncodedSentence


def _sentence(rng: random.Random, words: int) -> EncodedSentence:
    ids = [101, *(rng.randrange(1000, 2000) for _ in range(words)), 102]
    labels = [IGNORE_INDEX, *(rng.randrange(3) for _ in range(words)), IGNORE_INDEX]
    return EncodedSentence(ids, labels, [-1, *range(words), -1], words)


def _model() -> BertForTokenClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=2048,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config.num_labels = 3
    return BertForTokenClassification(config)


def test_accumulated_batches_of_different_lengths_step_like_one_batch(tmp_path: Path) -> None:
    rng = random.Random(1)
    sentences = [_sentence(rng, words) for words in (2, 5, 30, 3)]
    model, reference = _model(), _model()
    hp = Hyperparameters.from_dict(
        {
            "epochs": 1,
            "batch_size": 1,
            "gradient_accumulation": len(sentences),  # the whole epoch is one step
            "max_grad_norm": 0,
            "learning_rate": 0.5,
            "warmup_ratio": 0,
            "log_every_steps": 100,
        }
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=hp.learning_rate)
    loop = TrainingLoop(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
        hp=hp,
        state=TrainerState(),
        sentences=sentences,
        collate=lambda items: pad_batch(items, pad_token_id=0),
        evaluate=lambda: ({"f1": 0.0}, {}),
        callbacks=NullCallbacks(),
        device=torch.device("cpu"),
        output_dir=tmp_path,
        total_steps=1,
    )
    assert loop.run() is None

    # The same step over one batch of all four sentences: the mean over all 40 words.
    reference.train()
    batch = pad_batch(sentences, pad_token_id=0)
    reference(**batch).loss.backward()
    torch.optim.SGD(reference.parameters(), lr=hp.learning_rate).step()

    for (name, trained), expected in zip(
        model.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(trained, expected, atol=1e-6, rtol=1e-5, msg=name)


def test_labelled_counts_per_task() -> None:
    rng = random.Random(0)
    sentence = _sentence(rng, 4)
    assert labelled_counts([sentence]) == [4]

    class Text:
        input_ids = [101, 102]
        label = 1

    class Document:
        input_ids = [101, 102]

    assert labelled_counts([Text(), Text()]) == [1, 1]
    # Masked-LM draws its labels per batch: no fixed count, no weighting.
    assert labelled_counts([Document()]) is None
