"""Inference benchmark (issue 5): one fine-tuned model, the same inputs, one machine, one run.

1. Fine-tune the packaged MiniLM briefly on a sample of WNUT-17 train (generated
   data when ../shared/data is absent) with the `worker.training` engine.
2. Batch: the Transformers pipeline (aggregation "simple", its default batching)
   vs tunepool's batch path (`worker.inference.predict`: length-sorted batches,
   dynamic padding) on sentences of WNUT-17 test; ratio of throughputs.
3. Online: the real API (`POST /v1/models/<ref>/predict`) on a local HTTP server,
   serving in an inference worker (a `tunepool serve` subprocess on a private Redis,
   as in `tunepool up`; the API loads no model), 1 and 32 concurrent clients, one
   sentence per request: requests/s, p50/p99.
4. int8: `worker.inference.compress` on the same model; speedup of the batch path
   and entity-F1 change on the evaluation sentences.

Usage: python bench/inference.py [--train 400] [--test 300] [--epochs 1] [--per-client 8]
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
WNUT = ROOT.parent / "shared" / "data" / "ner" / "wnut17"


def _sample_conll(source: Path, n: int, dest: Path) -> Path:
    blocks = source.read_text(encoding="utf-8").split("\n\n")
    kept = [b for b in blocks if b.strip()][:n]
    dest.write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    return dest


def _data(tmp: Path, n_train: int, n_test: int) -> tuple[Path, Path, str]:
    if (WNUT / "train.conll").is_file() and (WNUT / "test.conll").is_file():
        train = _sample_conll(WNUT / "train.conll", n_train, tmp / "train.conll")
        test = _sample_conll(WNUT / "test.conll", n_test, tmp / "test.conll")
        return train, test, "wnut17"
    from tunepool.synthetic import conll_text

    (tmp / "train.conll").write_text(conll_text(n_train, seed=1), encoding="utf-8")
    (tmp / "test.conll").write_text(conll_text(n_test, seed=2), encoding="utf-8")
    return tmp / "train.conll", tmp / "test.conll", "generated"


def _finetune(tmp: Path, train: Path, test: Path, epochs: int) -> tuple[Path, dict[str, Any]]:
    from worker.training import Hyperparameters, NullCallbacks, TrainSpec, finetune
    from worker.training.models import resolve_base_model

    spec = TrainSpec(
        task="token-classification",
        base_model=resolve_base_model("all-MiniLM-L6-v2"),
        train_file=train,
        train_format="conll",
        validation_file=test,
        validation_format="conll",
        output_dir=tmp / "model",
        hyperparameters=Hyperparameters(
            epochs=epochs, learning_rate=1e-4, batch_size=16, max_length=64, log_every_steps=50
        ),
        device="cpu",
    )
    result = finetune(spec, NullCallbacks())
    return result.model_dir, dict(result.metrics)


def _time(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _batch(model_dir: Path, texts: list[str]) -> dict[str, Any]:
    from transformers import pipeline

    from worker.inference.model import load_model
    from worker.inference.predict import predict

    pipe = pipeline("token-classification", model=str(model_dir), aggregation_strategy="simple")
    loaded = load_model(model_dir)
    pipe(texts[:4])  # warm-up both
    predict(loaded, texts[:4])
    pipeline_s = _time(lambda: pipe(texts))
    tunepool_s = _time(lambda: predict(loaded, texts, 32))
    return {
        "pipeline_s": pipeline_s,
        "tunepool_s": tunepool_s,
        "pipeline_sent_per_s": len(texts) / pipeline_s,
        "tunepool_sent_per_s": len(texts) / tunepool_s,
        "batch_ratio_vs_pipeline": pipeline_s / tunepool_s,
    }


def _serve(tmp: Path, model_dir: Path) -> tuple[list[Any], str, dict[str, str]]:
    """The API on a local HTTP server and a serving worker, on a private Redis; what to
    stop afterwards, the prediction URL and its headers."""
    import subprocess

    import redis
    from werkzeug.serving import make_server

    from api.app import create_app
    from commands.embedded import child_env
    from commands.redis_server import start_redis
    from storage.blobs import store_dir
    from storage.db import transaction
    from storage.layout import model_prefix
    from storage.models import ModelVersion
    from storage.platform import Platform
    from storage.schema import upgrade
    from storage.teams import create_team
    from tunepool.serving_protocol import live_workers
    from tunepool.settings import Settings

    redis_server = start_redis(tmp / "redis", persist=False)
    settings = Settings(  # type: ignore[call-arg]
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'bench.sqlite3'}",
        object_store_url=(tmp / "objects").as_uri(),
        redis_url=redis_server.url,
        rate_limit_per_s=0,  # 32 clients of one key: measure serving, not the limiter
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    with transaction(platform.sessions) as session:
        team, key = create_team(session, "bench")
        session.flush()
        prefix = model_prefix(team.id, "ner", 1)
        store_dir(session, platform.store, prefix, model_dir)
        session.add(
            ModelVersion(
                team_id=team.id,
                name="ner",
                version=1,
                task="token-classification",
                prefix=prefix,
                base_model="all-MiniLM-L6-v2",
            )
        )
    with (tmp / "serve.log").open("ab") as log:
        serving = subprocess.Popen(
            [sys.executable, "-m", "commands", "serve", "--name", "bench-serve"],
            env={**child_env(settings), "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 120
    while not live_workers(client) and time.monotonic() < deadline:
        if serving.poll() is not None:
            raise RuntimeError((tmp / "serve.log").read_text()[-2000:])
        time.sleep(0.1)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = make_server("127.0.0.1", 0, create_app(platform=platform), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/models/ner:1/predict"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [server, serving, redis_server], url, headers


def _stop(running: list[Any]) -> None:
    server, serving, redis_server = running
    server.shutdown()
    serving.terminate()
    serving.wait(60)
    redis_server.stop()


def _online(url: str, headers: dict[str, str], texts: list[str], clients: int, per: int) -> dict:
    def call(text: str) -> float:
        body = json.dumps({"inputs": [text]}).encode()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
        return time.perf_counter() - started

    def client(index: int) -> list[float]:
        return [call(texts[(index * per + i) % len(texts)]) for i in range(per)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for batch in pool.map(client, range(clients)) for t in batch]
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "requests": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400, help="training sentences")
    parser.add_argument("--test", type=int, default=300, help="test sentences")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--per-client", type=int, default=8, help="requests per online client")
    args = parser.parse_args()

    from tunepool.data.token_files import read_token_examples
    from worker.inference.compress import compress
    from worker.inference.evaluate import sentence_text

    with tempfile.TemporaryDirectory(prefix="tunepool-bench-inference-") as raw:
        tmp = Path(raw)
        train, test, source = _data(tmp, args.train, args.test)
        examples = read_token_examples(test, "conll")
        texts = [sentence_text(e.tokens)[0] for e in examples]
        started = time.perf_counter()
        model_dir, train_metrics = _finetune(tmp, train, test, args.epochs)
        took = time.perf_counter() - started
        f1 = train_metrics.get("f1", 0.0)
        print(f"fine-tuned MiniLM on {args.train} {source} sentences in {took:.0f}s: f1={f1:.3f}")

        batch = _batch(model_dir, texts)
        print(f"batch, {len(texts)} sentences: pipeline {batch['pipeline_sent_per_s']:.1f}/s, "
              f"tunepool {batch['tunepool_sent_per_s']:.1f}/s, "
              f"ratio {batch['batch_ratio_vs_pipeline']:.2f}x (goal >= 1.5)")  # fmt: skip

        running, url, headers = _serve(tmp, model_dir)
        try:
            _online(url, headers, texts, 1, 3)  # loads the model into the worker's cache
            one = _online(url, headers, texts, 1, 60)
            many = _online(url, headers, texts, 32, args.per_client)
        finally:
            _stop(running)
        print(f"online, 1 client: {one['rps']:.1f} req/s, p50 {one['p50_ms']:.1f} ms, "
              f"p99 {one['p99_ms']:.1f} ms")  # fmt: skip
        print(f"online, 32 clients: {many['rps']:.1f} req/s, p50 {many['p50_ms']:.1f} ms, "
              f"p99 {many['p99_ms']:.1f} ms (serving in an inference worker); "
              f"batch ratio {batch['batch_ratio_vs_pipeline']:.2f}x")  # fmt: skip

        report = compress(model_dir, tmp / "int8", examples)
        print(f"int8: {report['size_bytes_fp32'] / 1e6:.1f} MB -> "
              f"{report['size_bytes_int8'] / 1e6:.1f} MB, speedup {report['speedup']:.2f}x, "
              f"F1 {report['f1_fp32']:.3f} -> {report['f1_int8']:.3f}")  # fmt: skip

    result = {
        "data": source,
        "train_sentences": args.train,
        "test_sentences": len(texts),
        "pipeline_sent_per_s": round(batch["pipeline_sent_per_s"], 2),
        "tunepool_sent_per_s": round(batch["tunepool_sent_per_s"], 2),
        "batch_ratio_vs_pipeline": round(batch["batch_ratio_vs_pipeline"], 3),
        "online_rps_1": round(one["rps"], 2),
        "online_p50_ms_1": round(one["p50_ms"], 2),
        "online_p99_ms_1": round(one["p99_ms"], 2),
        "online_rps_32": round(many["rps"], 2),
        "online_p50_ms_32": round(many["p50_ms"], 2),
        "online_p99_ms_32": round(many["p99_ms"], 2),
        "online_requests_32": many["requests"],
        "online_serving": "inference worker (tunepool serve)",
        "int8_speedup": round(report["speedup"], 3),
        "int8_f1_delta": round(report["f1_delta"], 4),
        "f1_fp32": round(report["f1_fp32"], 4),
        "int8_size_ratio": round(report["size_ratio"], 3),
        "cpu_threads": __import__("torch").get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
