"""Training throughput (issue 3): the naive loop vs Hugging Face Trainer vs tunepool's engine.

Same base model (the packaged MiniLM, 6-layer BERT), the same fixed sample of
WNUT-17 train (the first --sentences sentences; generated CoNLL when
../shared/data is absent), the same machine and thread count, in one run:

(a) the naive notebook loop: BertForTokenClassification-style model, every batch
    padded to 128, fp32, AdamW lr 2e-5, batch 16, shuffled, no length grouping;
(b) Hugging Face Trainer with run_ner.py's settings: DataCollatorForTokenClassification
    (dynamic padding to the batch's longest), batch 16, no group_by_length;
(c) tunepool's engine (`worker.training.finetune`): dynamic padding to a multiple
    of 8, length-grouped batches, no per-step host sync.

Fairness: each method runs in a fresh process of its own (one after another, never
in parallel), first a short untimed warm-up on other sentences, then
trains one epoch over the same sample: the same samples, the same number of
optimizer steps (sentences / 16), max length 128 for all. Only the training steps
are timed (no model loading, tokenization or evaluation). Every method sees every
sentence once, so the real (non-padding) tokens are the same for all three and
real tokens/s is total real tokens / training time. On CUDA it also prints
real-token MFU: 6 x non-embedding parameters x real tokens/s (+ attention) over
the GPU's bf16 peak (--peak-tflops, default H100/H200 dense bf16 989).

Usage: python bench/train_throughput.py [--sentences 320] [--threads 2]
Budget: about 4-8 minutes on 2 shared CPU cores with the defaults (the naive
loop's padding to 128 dominates). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
WNUT = ROOT.parent / "shared" / "data" / "ner" / "wnut17"
BATCH = 16
MAX_LENGTH = 128
WARMUP_SENTENCES = 48


def read_blocks(path: Path) -> list[str]:
    """Sentences as CoNLL blocks; WNUT-17 separates most of them by lines of only
    whitespace (a TAB), not empty lines, so split on any blank-looking line."""
    text = path.read_text(encoding="utf-8").replace("\ufeff", "")
    blocks = re.split(r"\n[ \t\r]*\n", "\n" + text + "\n")
    return [block.strip("\n") for block in blocks if block.strip()]


def sample(n: int, tmp: Path) -> tuple[list[str], str]:
    if (WNUT / "train.conll").is_file():
        return read_blocks(WNUT / "train.conll")[: n + WARMUP_SENTENCES], "wnut17"
    from tunepool.synthetic import conll_text

    (tmp / "generated.conll").write_text(conll_text(n + WARMUP_SENTENCES, seed=1))
    return read_blocks(tmp / "generated.conll"), "generated"


def parse(blocks: list[str]) -> list[tuple[list[str], list[str]]]:
    sentences = []
    for block in blocks:
        rows = [line.split("\t") if "\t" in line else line.split() for line in block.split("\n")]
        rows = [row for row in rows if len(row) >= 2 and row[0] != "-DOCSTART-"]
        sentences.append(([row[0] for row in rows], [row[-1] for row in rows]))
    return sentences


def encode(sentences: Any, tokenizer: Any, label2id: dict[str, int], pad: bool) -> list[dict]:
    """First-piece labels (as run_ner); `pad` pads to 128 like the naive notebook."""
    out = []
    for words, tags in sentences:
        enc = tokenizer(
            words,
            is_split_into_words=True,
            truncation=True,
            max_length=MAX_LENGTH,
            padding="max_length" if pad else False,
        )
        labels, previous = [], None
        for word in enc.word_ids():
            labels.append(-100 if word is None or word == previous else label2id[tags[word]])
            previous = word
        out.append({**{k: list(v) for k, v in enc.items()}, "labels": labels})
    return out


def load_model(base: str, labels: list[str]) -> Any:
    import torch
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels))
    )


def naive(base: str, tokenizer: Any, data: Any, warm: Any, labels: list[str]) -> dict:
    import torch

    label2id = {label: i for i, label in enumerate(labels)}
    model = load_model(base, labels)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)

    def epoch(rows: list[dict]) -> None:
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        for start in range(0, len(order), BATCH):
            chunk = [rows[i] for i in order[start : start + BATCH]]
            batch = {k: torch.tensor([row[k] for row in chunk]) for k in chunk[0]}
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            loss.item()  # the notebook prints/accumulates the loss every step

    epoch(encode(warm, tokenizer, label2id, pad=True))
    rows = encode(data, tokenizer, label2id, pad=True)
    started = time.perf_counter()
    epoch(rows)
    return {"seconds": time.perf_counter() - started, "steps": -(-len(rows) // BATCH)}


def hf_trainer(base: str, tokenizer: Any, data: Any, warm: Any, labels: list[str]) -> dict:
    from transformers import (
        DataCollatorForTokenClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    label2id = {label: i for i, label in enumerate(labels)}
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not times:
                times.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            times.append(time.perf_counter())

    model = load_model(base, labels)
    steps = 0
    with tempfile.TemporaryDirectory() as out:
        for rows, timed in ((encode(warm, tokenizer, label2id, False), False), (None, True)):
            if timed:
                rows = encode(data, tokenizer, label2id, False)
                times.clear()
            args = TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=BATCH,
                learning_rate=5e-5,
                num_train_epochs=1,
                save_strategy="no",
                logging_strategy="no",
                report_to=[],
                use_cpu=True,
                dataloader_num_workers=0,
                seed=0,
                disable_tqdm=True,
            )
            trainer = Trainer(
                model=model,
                args=args,
                train_dataset=rows,
                data_collator=DataCollatorForTokenClassification(tokenizer),
                callbacks=[Clock()],
            )
            trainer.train()
            steps = trainer.state.global_step
    return {"seconds": times[-1] - times[0], "steps": steps}


def engine(base: str, data_blocks: list[str], warm_blocks: list[str], tmp: Path) -> dict:
    from worker.training import Hyperparameters, TrainSpec, finetune

    events: list[dict] = []

    class Progress:
        def on_progress(self, event: dict) -> None:
            events.append(event)

        def on_evaluate(self, epoch: int, metrics: dict) -> None:
            pass

        def on_checkpoint(self, *args: Any) -> None:
            pass

        def should_stop(self) -> None:
            return None

    def run(blocks: list[str], name: str) -> Any:
        train = tmp / f"{name}.conll"
        train.write_text("\n\n".join(blocks) + "\n")
        validation = tmp / f"{name}-validation.conll"
        validation.write_text("\n\n".join(blocks[:16]) + "\n")
        steps = -(-len(blocks) // BATCH)
        spec = TrainSpec(
            task="token-classification",
            base_model=base,
            train_file=train,
            train_format="conll",
            validation_file=validation,
            validation_format="conll",
            output_dir=tmp / f"{name}-model",
            # One progress event at the last step: its samples/s and tokens/s cover
            # the whole epoch's training steps and nothing else.
            hyperparameters=Hyperparameters(
                epochs=1, batch_size=BATCH, learning_rate=5e-5, log_every_steps=steps
            ),
            device="auto",
        )
        events.clear()
        return finetune(spec, Progress()), steps

    run(warm_blocks, "warm")
    result, steps = run(data_blocks, "timed")
    last = events[-1]
    assert last["step"] == steps == result.global_step
    return {
        "seconds": len(data_blocks) / last["samples_per_s"],
        "steps": steps,
        "tokens_per_s": last["tokens_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--skip", default="", help="comma list of naive,hf_trainer to skip")
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from worker.training.models import resolve_base_model

    torch.set_num_threads(args.threads)
    base = resolve_base_model("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(base)
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        blocks, source = sample(args.sentences, tmp)
        data_blocks, warm_blocks = blocks[: args.sentences], blocks[args.sentences :]
        data, warm = parse(data_blocks), parse(warm_blocks)
        labels = ["O", *sorted({t for _, tags in data + warm for t in tags} - {"O"})]
        real_tokens = sum(
            len(
                tokenizer(w, is_split_into_words=True, truncation=True, max_length=128)["input_ids"]
            )
            for w, _ in data
        )
        print(
            f"data: {len(data)} {source} sentences, {real_tokens} real word pieces, "
            f"batch {BATCH}, threads {torch.get_num_threads()}, "
            f"device {'cuda' if cuda else 'cpu'}"
        )
        if args.only:
            # One method in this fresh process; the parent collects the JSON line.
            if args.only == "naive":
                result = naive(base, tokenizer, data, warm, labels)
            elif args.only == "hf_trainer":
                result = hf_trainer(base, tokenizer, data, warm, labels)
            else:
                result = engine(base, data_blocks, warm_blocks, tmp)
            print(json.dumps(result))
            return
        results: dict[str, dict] = {}
        skip = set(filter(None, args.skip.split(",")))
        methods = ["naive", "hf_trainer", "tunepool"] if not cuda else ["tunepool"]
        for name in methods:
            if name in skip:
                continue
            results[name] = run_isolated(name, args)
            report(name, results[name], len(data), real_tokens)
    summary: dict[str, Any] = {"bench": "train_throughput", "data": source}
    summary.update(sentences=len(data), real_tokens=real_tokens, device="cuda" if cuda else "cpu")
    for name, result in results.items():
        samples_per_s = len(data) / result["seconds"]
        tokens_per_s = real_tokens / result["seconds"]
        summary[f"{name}_samples_per_s"] = round(samples_per_s, 2)
        summary[f"{name}_real_tokens_per_s"] = round(tokens_per_s, 1)
    engine_rate = summary["tunepool_samples_per_s"]
    for name in ("naive", "hf_trainer"):
        if name in results:
            summary[f"ratio_vs_{name}"] = round(engine_rate / summary[f"{name}_samples_per_s"], 2)
            print(f"ratio vs {name}: {summary[f'ratio_vs_{name}']:.2f}")
    if cuda:
        summary["mfu"] = round(mfu(base, summary["tunepool_real_tokens_per_s"], args), 4)
        print(f"real-token MFU: {summary['mfu']:.1%} of {args.peak_tflops} TFLOP/s bf16")
    print(json.dumps(summary))


def run_isolated(name: str, args: argparse.Namespace) -> dict:
    """Each method in a fresh process: a method run after another inherited its
    allocator state and garbage (the engine measured 1.5x slower last in line)."""
    command = [sys.executable, __file__, "--only", name]
    command += ["--sentences", str(args.sentences), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{name} failed: {done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(name: str, result: dict, samples: int, real_tokens: int) -> None:
    seconds = result["seconds"]
    print(
        f"{name:>10}: {result['steps']} steps in {seconds:.1f}s, "
        f"{samples / seconds:.1f} samples/s, {real_tokens / seconds:.0f} real tokens/s",
        flush=True,
    )


def mfu(base: str, tokens_per_s: float, args: argparse.Namespace) -> float:
    """6 N FLOPs per token for the non-embedding weights (forward + backward)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base)
    hidden, layers = config.hidden_size, config.num_hidden_layers
    per_layer = 4 * hidden * hidden + 2 * hidden * config.intermediate_size
    flops_per_token = 6 * layers * per_layer
    return tokens_per_s * flops_per_token / (args.peak_tflops * 1e12)


if __name__ == "__main__":
    main()
