"""Chat fine-tuning (issue 22): tunepool's causal-LM engine vs TRL's SFTTrainer, and quality.

Throughput (always): SmolLM2-135M-Instruct (the builtin GGUF, converted once into
--cache), the first --examples of gsm8k_train.jsonl, one epoch, the same LoRA
(r 16, alpha 32, dropout 0.05, all linear layers), learning rate 2e-4, batch 8,
max length 1024 for both:
(a) tunepool: `finetune_causal_lm` with its defaults (packed rows, no padding,
    logits only where a target is, no gradient checkpointing);
(b) TRL `SFTTrainer` with its defaults otherwise (padded batches, gradient
    checkpointing on, bf16 autocast, loss on every token since SmolLM2's template
    has no {% generation %} markers for `assistant_only_loss`);
(c) with --packing-trl, SFTTrainer with packing=True at the same max length.
Each runs alone in a fresh process (peak RSS is that process's). Real tokens are
the examples' rendered tokens (no padding), the same for all; real tokens/s =
real tokens / training seconds. Held-out loss: the same evaluator (mean loss on
the assistant tokens of the first --eval-examples of gsm8k_test.jsonl) on each
trained model.

Quality (--sms, --wnut): LoRA SFT with tunepool on the SMS-spam (WNUT17) chat
train set (its first --sms-train / --wnut-train lines), greedy answers on the test
set: spam-class F1 (entity F1), beside the base model's zero-shot score. The
platform's recipe for them: --quality-lr, --quality-epochs, and --label-balance
(the engine's label_balance: spam drawn more often than its 13 % of the data).

Usage: python bench/llm_sft.py [--examples 200] [--sms] [--wnut] [--packing-trl]
Smoke: --examples 16 --eval-examples 8 --sms-train 16 --test-limit 16. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chat"
LORA = {"lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.05}
COMMON = {"learning_rate": 2e-4, "batch_size": 8, "max_length": 1024, "epochs": 1}


def head(path: Path, count: int, out: Path) -> Path:
    with path.open(encoding="utf-8") as source:
        lines = [line for _, line in zip(range(count), source, strict=False)]
    out.write_text("".join(lines), encoding="utf-8")
    return out


def base_dir(cache: Path) -> str:
    from worker.training.causal_lm.base_models import resolve_causal_base

    return resolve_causal_base("SmolLM2-135M-Instruct", cache)


def heldout(model: Any, tokenizer: Any, eval_file: Path) -> float:
    import torch

    from tunepool.data.chat import read_chat_examples
    from worker.training.causal_lm.batches import collate_padded
    from worker.training.causal_lm.evaluation import heldout_loss
    from worker.training.causal_lm.recipe import encode_all

    items, _ = encode_all(tokenizer, read_chat_examples(eval_file).examples, COMMON["max_length"])

    def collate(chosen: Any) -> Any:
        return collate_padded(chosen, tokenizer.pad_token_id)

    # The evaluator tunepool's run uses on CPU: padded length groups of <= 1024 tokens.
    return heldout_loss(model, items, 1024, False, collate, torch.device("cpu"))["loss"]


def real_tokens(tokenizer: Any, train_file: Path) -> int:
    from tunepool.data.chat import read_chat_examples
    from worker.training.causal_lm.recipe import encode_all

    items, _ = encode_all(tokenizer, read_chat_examples(train_file).examples, COMMON["max_length"])
    return sum(len(item.input_ids) for item in items)


def run_tunepool(args: argparse.Namespace, train: Path, eval_file: Path, out: Path) -> dict:
    from worker.training.callbacks import NullCallbacks
    from worker.training.causal_lm.recipe import finetune_causal_lm
    from worker.training.causal_lm.spec import SFTHyperparameters, SFTSpec

    hp = SFTHyperparameters.from_dict(
        {**COMMON, **LORA, "method": args.method, "generation_eval_limit": 0,
         "sample_generations": 0, "validation_split": 0.0,
         "micro_batch_tokens": args.micro_batch_tokens}
    )  # fmt: skip
    spec = SFTSpec(
        base_model="SmolLM2-135M-Instruct", train_file=train, validation_file=eval_file,
        output_dir=out, hyperparameters=hp, device="cpu", model_cache_dir=args.cache,
    )  # fmt: skip
    result = finetune_causal_lm(spec, NullCallbacks())
    throughput = result.report["throughput"]
    return {
        "real_tokens": throughput["train_tokens"],
        "train_seconds": throughput["train_seconds"],
        "heldout_loss": result.metrics["loss"],
        "steps": result.global_step,
    }


def run_trl(args: argparse.Namespace, train: Path, eval_file: Path, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    base = base_dir(args.cache)
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines()]
    config = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=COMMON["batch_size"],
        learning_rate=COMMON["learning_rate"], num_train_epochs=COMMON["epochs"],
        max_length=COMMON["max_length"], packing=args.method == "trl-packing",
        save_strategy="no", report_to="none", logging_steps=10, seed=42,
        # TRL turns bf16 on by default, which transformers refuses on a CPU without
        # use_cpu; fp32 on CPU, like tunepool, keeps the comparison to the method.
        bf16=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    peft_config = LoraConfig(
        r=LORA["lora_rank"], lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"],
        target_modules="all-linear", task_type="CAUSAL_LM",
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(base)
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows),
        peft_config=peft_config, processing_class=tokenizer,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return {
        "real_tokens": real_tokens(tokenizer, train),
        "train_seconds": round(seconds, 3),
        "heldout_loss": heldout(trainer.model, tokenizer, eval_file),
        "steps": trainer.state.global_step,
    }


def run_quality(args: argparse.Namespace, train: Path, test: Path, out: Path) -> dict:
    """Fine-tuned and zero-shot scores of greedy answers on `test`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunepool.data.chat import read_chat_examples
    from worker.training.callbacks import NullCallbacks
    from worker.training.causal_lm.evaluation import answer_kind, generate_answers, score_answers
    from worker.training.causal_lm.recipe import finetune_causal_lm
    from worker.training.causal_lm.spec import SFTHyperparameters, SFTSpec

    examples = read_chat_examples(test).examples
    kind = answer_kind(examples) or "json"
    tuned = {
        "learning_rate": args.quality_lr,
        "epochs": args.quality_epochs,
        # Only label answers are balanced (the engine ignores it for JSON answers).
        "label_balance": args.label_balance,
    }
    hp = SFTHyperparameters.from_dict(
        {**COMMON, **LORA, **tuned, "max_length": 512, "generation_eval_limit": len(examples)}
    )
    spec = SFTSpec(
        base_model="SmolLM2-135M-Instruct", train_file=train, validation_file=test,
        output_dir=out, hyperparameters=hp, device="cpu", model_cache_dir=args.cache,
    )  # fmt: skip
    started = time.perf_counter()
    result = finetune_causal_lm(spec, NullCallbacks())
    seconds = time.perf_counter() - started
    base = base_dir(args.cache)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    room = 8 if kind == "label" else 128
    answers = generate_answers(model, tokenizer, examples, max_new_tokens=room)
    zero = score_answers(kind, answers, [e.messages[-1].content for e in examples])
    return {
        "fine_tuned": result.metrics,
        "zero_shot": zero,
        "seconds": round(seconds, 1),  # the whole job: training and its evaluation
        "train_seconds": round(result.report["throughput"]["train_seconds"], 1),
        "hyperparameters": {k: v for k, v in hp.to_dict().items() if k in tuned},
    }


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    if args.method in ("lora", "full"):
        result = run_tunepool(args, Path(args.train), Path(args.eval), work / "out")
    elif args.method.startswith("trl"):
        result = run_trl(args, Path(args.train), Path(args.eval), work / "out")
    else:
        result = run_quality(args, Path(args.train), Path(args.eval), work / "out")
    # ru_maxrss is in KiB on Linux: the peak of this process alone.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def spawn(args: argparse.Namespace, method: str, train: Path, eval_file: Path) -> dict:
    with tempfile.TemporaryDirectory() as work:
        paths = ["--train", str(train), "--eval", str(eval_file), "--cache", str(args.cache)]
        paths += ["--micro-batch-tokens", str(args.micro_batch_tokens)]
        paths += ["--quality-lr", str(args.quality_lr), "--label-balance", str(args.label_balance)]
        paths += ["--quality-epochs", str(args.quality_epochs)]
        command = [sys.executable, __file__, "--child", method, "--work", work, *paths]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{method}: {result}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--eval-examples", type=int, default=50)
    parser.add_argument("--packing-trl", action="store_true")
    parser.add_argument(
        "--micro-batch-tokens", type=int, default=0, help="tunepool's budget (0: its default)"
    )
    parser.add_argument("--full", action="store_true", help="also time full fine-tuning")
    parser.add_argument("--sms", action="store_true")
    parser.add_argument("--wnut", action="store_true")
    parser.add_argument("--sms-train", type=int, default=800)
    parser.add_argument("--wnut-train", type=int, default=800)
    parser.add_argument("--test-limit", type=int, default=0, help="0: the whole test set")
    parser.add_argument(
        "--quality-lr", type=float, default=2e-4, help="learning rate of the --sms/--wnut runs"
    )
    parser.add_argument("--quality-epochs", type=int, default=1)
    parser.add_argument(
        "--quality-only", action="store_true", help="only the --sms/--wnut runs, no throughput"
    )
    parser.add_argument(
        "--label-balance", type=float, default=0.0, help="the --sms run's label_balance"
    )
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/tunepool/models")
    parser.add_argument("--child", dest="method", default=None)
    parser.add_argument("--work")
    parser.add_argument("--train")
    parser.add_argument("--eval")
    args = parser.parse_args()
    if args.method:
        child(args)
        return
    base_dir(args.cache)  # convert once, outside every timed process
    summary: dict[str, Any] = {"examples": args.examples, "max_length": COMMON["max_length"]}
    summary["micro_batch_tokens"] = args.micro_batch_tokens or "default"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        train = head(DATA / "gsm8k_train.jsonl", args.examples, tmp / "train.jsonl")
        held = head(DATA / "gsm8k_test.jsonl", args.eval_examples, tmp / "eval.jsonl")
        if not args.quality_only:
            ours = spawn(args, "lora", train, held)
            trl = spawn(args, "trl", train, held)
            rate = ours["real_tokens"] / ours["train_seconds"]
            trl_rate = trl["real_tokens"] / trl["train_seconds"]
            summary |= {
                "tunepool_real_tokens_per_s": round(rate, 1),
                "trl_real_tokens_per_s": round(trl_rate, 1),
                "sft_real_tokens_per_s_ratio_vs_trl": round(rate / trl_rate, 3),
                "tunepool_heldout_loss": round(ours["heldout_loss"], 4),
                "trl_heldout_loss": round(trl["heldout_loss"], 4),
                "heldout_loss_rel_diff": round(ours["heldout_loss"] / trl["heldout_loss"] - 1, 4),
                "steps": {"tunepool": ours["steps"], "trl": trl["steps"]},
                "tunepool_peak_rss_mb": round(ours["peak_rss_mb"]),
                "trl_peak_rss_mb": round(trl["peak_rss_mb"]),
            }
            if args.packing_trl:
                packed = spawn(args, "trl-packing", train, held)
                packed_rate = packed["real_tokens"] / packed["train_seconds"]
                summary["sft_real_tokens_per_s_ratio_vs_trl_packing"] = round(rate / packed_rate, 3)
                summary["trl_packing_peak_rss_mb"] = round(packed["peak_rss_mb"])
            if args.full:
                full = spawn(args, "full", train, held)
                summary["full_ft_real_tokens_per_s"] = round(
                    full["real_tokens"] / full["train_seconds"], 1
                )
                summary["full_ft_peak_rss_mb"] = round(full["peak_rss_mb"])
        for flag, name, size in (
            ("sms", "sms_spam", args.sms_train),
            ("wnut", "wnut17", args.wnut_train),
        ):
            if not getattr(args, flag):
                continue
            train_q = head(DATA / f"{name}_train.jsonl", size, tmp / f"{name}_train.jsonl")
            limit = args.test_limit or 10**9
            test_q = head(DATA / f"{name}_test.jsonl", limit, tmp / f"{name}_test.jsonl")
            quality = spawn(args, "quality", train_q, test_q)
            if flag == "sms":
                summary["sms_spam_chat_f1"] = round(quality["fine_tuned"].get("f1_spam", 0.0), 4)
                summary["sms_spam_chat_f1_zero_shot"] = round(
                    quality["zero_shot"].get("f1_spam", 0.0), 4
                )
                summary["sms_spam_seconds"] = quality["seconds"]
                summary["sms_spam_train_seconds"] = quality["train_seconds"]
                summary["sms_spam_examples"] = size
                summary["sms_spam_hyperparameters"] = quality["hyperparameters"]
            else:
                summary["wnut17_chat_entity_f1"] = round(
                    quality["fine_tuned"].get("entity_f1", 0.0), 4
                )
                summary["wnut17_chat_entity_f1_zero_shot"] = round(
                    quality["zero_shot"].get("entity_f1", 0.0), 4
                )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
