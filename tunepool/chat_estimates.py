"""How long a chat fine-tune will take, before it runs: tokens x epochs at a measured speed.

OpenAI and Mistral show the tokens a fine-tuning job will bill and an expected duration
before it starts; tunepool shows the same in a chat dataset's upload report and a job's
``validate_only`` report, and admission plans with it (a pending causal-lm job's
``estimated_runtime_s``; once it runs, its own ETA from measured steps takes over).

The speeds are real (non-padding) tokens trained per second: SmolLM2-135M-Instruct,
LoRA r16 on every linear layer, batch 8, fp32, on 2 CPU cores. Measured here on a quiet
machine, TRL's SFTTrainer without gradient checkpointing trained 78.7 real tokens/s on
GSM8K chats whose batches were 33 % padding, about 117 tokens/s of work; tunepool's
engine pads about 3 % (length-grouped batches), so about 110 real tokens/s. On this
shared machine under load the engine measured 26-43 tokens/s (make demo-llm): the
estimate is for a machine the job has to itself, and rough by design. No GPU was at
hand to measure: a datacenter GPU is taken as about 100x, the ratio the encoder
estimates use (worker.training.validation). Larger models take proportionally longer;
the estimate says which basis it used.
"""

from __future__ import annotations

from typing import Any

CPU_TOKENS_PER_S = 110.0
GPU_TOKENS_PER_S = 11_000.0
BASIS = "SmolLM2-135M LoRA real tokens/s on 2 CPU cores (a GPU taken as 100x); rough"
# The engine's defaults (worker.training.causal_lm.spec.SFTHyperparameters) for what a
# job leaves out, and the length an upload report counts against.
DEFAULT_EPOCHS = 1
DEFAULT_MAX_LENGTH = 1024


def tokens_per_s(gpu: bool) -> float:
    return GPU_TOKENS_PER_S if gpu else CPU_TOKENS_PER_S


def dry_run_estimate(
    train_tokens: int, epochs: int, tokens_per_s: float | None, padding_ratio: float = 1.0
) -> dict[str, Any]:
    """Tokens the run will bill (tokens x epochs) and, given a speed, the expected time.

    `padding_ratio` (>= 1) scales the work when batches are padded; packed runs pad 1.0.
    """
    billed = train_tokens * epochs
    estimate: dict[str, Any] = {"train_tokens": train_tokens, "epochs": epochs}
    estimate["billed_tokens"] = billed
    if tokens_per_s and tokens_per_s > 0:
        estimate["tokens_per_s"] = tokens_per_s
        estimate["expected_seconds"] = round(billed * padding_ratio / tokens_per_s, 1)
    return estimate


def expected_by_device(train_tokens: int, epochs: int) -> dict[str, Any]:
    """The dry run on a CPU slot and on a GPU, as an upload report shows it."""
    return {
        **dry_run_estimate(train_tokens, epochs, None),
        "expected_seconds_cpu": round(train_tokens * epochs / CPU_TOKENS_PER_S, 1),
        "expected_seconds_gpu": round(train_tokens * epochs / GPU_TOKENS_PER_S, 1),
        "basis": BASIS,
    }


# Without the model's tokenizer (no converted copy yet), tokens are guessed from the
# report's counts. Fitted on the shared chat data with SmolLM2's tokenizer: ~3.2
# characters a token, ~5 tokens of template per message, ~20 for the system turn the
# template adds when an example has none; within about 10 % on SMS, GSM8K and WNUT17.
CHARACTERS_PER_TOKEN = 3.2
TEMPLATE_TOKENS_PER_MESSAGE = 5
DEFAULT_SYSTEM_TOKENS = 20


def approximate_tokens(report: dict[str, Any]) -> int:
    """Rendered tokens of a chat file guessed from ``chat_file_report``'s counts."""
    messages = sum(report.get("messages_by_role", {}).values())
    without_system = report.get("examples", 0) - report.get("examples_with_system", 0)
    return round(
        report.get("content_characters", 0) / CHARACTERS_PER_TOKEN
        + TEMPLATE_TOKENS_PER_MESSAGE * messages
        + DEFAULT_SYSTEM_TOKENS * without_system
    )


def train_tokens(stats: dict[str, Any]) -> tuple[int, str] | None:
    """A chat dataset's rendered tokens from its stored stats, and whether they were
    ``counted`` with the model's tokenizer or ``approximated``; None without stats."""
    tokens = stats.get("tokens") or {}
    if isinstance(tokens.get("total"), int):
        return tokens["total"], tokens.get("basis", "counted")
    if "content_characters" in stats:
        return approximate_tokens(stats), "approximated"
    return None
