"""``make demo-llm``: LoRA fine-tuning of SmolLM2-135M-Instruct on a slice of SMS spam.

What a causal-lm job runs, on this machine's CPU, in a few minutes: the chat files are
checked as an upload is (``chat_file_report``), the builtin SmolLM2 is converted once
from its GGUF into the model cache, the base model answers the held-out messages and is
scored, the engine (``worker.training.causal_lm.recipe.finetune_causal_lm``) trains a
LoRA adapter, and the adapter, loaded with plain ``peft.PeftModel.from_pretrained``,
answers the same messages. It prints the held-out loss and the spam F1 before and
after, and one answer of each. The data (``demo/sms_spam``, CC BY 4.0) ships with the
repository. ``make demo`` shows the platform itself (API, admission, workers).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "demo" / "sms_spam"
MAX_NEW_TOKENS = 8  # one word, with room for a base model that says more


@contextmanager
def phase(name: str, timings: list[tuple[str, float]]) -> Iterator[None]:
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        timings.append((name, elapsed))
        print(f"   ({elapsed:.1f}s)", flush=True)


class PrintProgress:
    """The engine's callbacks, printed as a job's log would show them."""

    def on_progress(self, event: dict[str, Any]) -> None:
        loss = event.get("loss")
        shown = f"{loss:.4f}" if isinstance(loss, float) else "-"
        print(
            f"   step {event['step']}  loss {shown}  {event['tokens_per_s']:.0f} tokens/s"
            f"  eta {event['eta_s']:.0f}s",
            flush=True,
        )

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        print(f"   epoch {epoch + 1}: held-out loss {metrics.get('loss', float('nan')):.4f}")

    def on_checkpoint(self, step: int, epoch: float, path: Path, metrics: dict[str, Any]) -> None:
        pass

    def should_stop(self) -> str | None:
        return None


def run(args: argparse.Namespace) -> int:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunepool.builtin_models import SMOLLM2_NAME
    from tunepool.data.chat import read_chat_examples
    from tunepool.data.chat_report import chat_file_report
    from worker.training.causal_lm.base_models import resolve_causal_base
    from worker.training.causal_lm.batches import collate_padded
    from worker.training.causal_lm.evaluation import generate_answers, heldout_loss, score_answers
    from worker.training.causal_lm.recipe import encode_all, finetune_causal_lm
    from worker.training.causal_lm.spec import SFTHyperparameters, SFTSpec

    torch.manual_seed(args.seed)
    timings: list[tuple[str, float]] = []
    work = Path(args.work)
    train_file, test_file = DATA / "train.jsonl", DATA / "test.jsonl"
    if args.train:
        train_file = work / "train.jsonl"
        train_file.parent.mkdir(parents=True, exist_ok=True)
        lines = (DATA / "train.jsonl").read_text(encoding="utf-8").splitlines(True)
        train_file.write_text("".join(lines[: args.train]), encoding="utf-8")

    with phase("check the chat files as an upload is checked", timings):
        for path in (train_file, test_file):
            report = chat_file_report(path)
            if not report["valid"]:
                print(f"   {path}: {report['first_problem']}", file=sys.stderr)
                return 1
            print(f"   {path.name}: {report['examples']} {report['format']} conversations")
    test = read_chat_examples(test_file).examples
    gold = [example.messages[-1].content for example in test]

    with phase(f"{SMOLLM2_NAME}: converted once from the packaged GGUF", timings):
        base = resolve_causal_base(SMOLLM2_NAME, Path(args.cache))
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base)
        print(f"   {base}")

    items, _ = encode_all(tokenizer, test, args.max_length)

    def collate(chosen: Any) -> Any:
        return collate_padded(chosen, tokenizer.pad_token_id)

    def answer(current: Any) -> tuple[dict[str, float], list[str]]:
        answers = generate_answers(current, tokenizer, test, MAX_NEW_TOKENS)
        return score_answers("label", answers, gold), answers

    with phase("the base model answers the held-out messages", timings):
        # The evaluator the engine runs after each epoch (padded length groups on CPU).
        before_loss = heldout_loss(model, items, 1024, False, collate, torch.device("cpu"))
        before_scores, before_answers = answer(model)
        spam = before_scores.get("f1_spam", 0.0)
        print(f"   loss {before_loss['loss']:.4f}  spam F1 {spam:.3f}")
    del model

    out = work / "run"
    with phase("fine-tune a LoRA adapter (the engine of causal-lm jobs)", timings):
        hp = SFTHyperparameters.from_dict(
            {
                "epochs": args.epochs,
                "batch_size": 8,
                "learning_rate": args.learning_rate,
                "max_length": args.max_length,
                "generation_eval_limit": 0,
                "sample_generations": 0,
                "log_every_steps": 5,
                "seed": args.seed,
            }
        )
        spec = SFTSpec(
            base_model=base, train_file=train_file, validation_file=test_file,
            output_dir=out, hyperparameters=hp, device="cpu", model_cache_dir=Path(args.cache),
        )  # fmt: skip
        result = finetune_causal_lm(spec, PrintProgress())
        throughput = result.report["throughput"]
        print(
            f"   {result.global_step} steps, {throughput['train_tokens']} tokens,"
            f" {throughput['tokens_per_s']:.0f} tokens/s; adapter in {result.model_dir}"
        )

    with phase("the adapter (peft.PeftModel.from_pretrained) answers them again", timings):
        tuned = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base), result.model_dir
        )
        # Merged for generation: an unmerged LoRA costs every layer two more matmuls.
        after_scores, after_answers = answer(tuned.merge_and_unload())
        after_loss = result.metrics["loss"]  # the engine's held-out loss, same evaluator

    print("\n== result")
    print(f"   held-out loss  {before_loss['loss']:.4f} -> {after_loss:.4f}")
    before_f1, after_f1 = before_scores.get("f1_spam", 0.0), after_scores.get("f1_spam", 0.0)
    print(f"   spam F1        {before_f1:.3f} -> {after_f1:.3f}  ({len(test)} messages)")
    shown = next((i for i, label in enumerate(gold) if label == "spam"), 0)
    message = test[shown].messages[-2].content.split("\n\n", 1)[-1]
    print(f"   message        {message[:100]!r}")
    print(f"   expected       {gold[shown]!r}")
    print(f"   before         {before_answers[shown]!r}")
    print(f"   after          {after_answers[shown]!r}")
    print("   timings: " + ", ".join(f"{name.split(':')[0][:28]} {s:.0f}s" for name, s in timings))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train", type=int, default=0, help="first N training lines (0: all 160)")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--cache", default=str(Path.home() / ".cache" / "tunepool" / "models"),
        help="where the converted SmolLM2 is kept (about 540 MB, made once)",
    )  # fmt: skip
    parser.add_argument("--work", default=".tunepool/demo-llm", help="scratch and the adapter")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
