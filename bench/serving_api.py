"""Chat serving through the API with the official `openai` SDK (issue 23, second figure).

A real platform on one machine: Redis, SQLite, a file object store, the API under
gunicorn (gthread, as docker-compose.yml runs it, with enough threads for every
client's open stream) and one serving worker (`tunepool serve`). N random LoRA
adapters over the base are registered as a team's causal-LM versions; C clients
stream chat completions at once, spread over the adapters, each its share of the
requests. Measured: time to first token as the client sees it (request sent to first
content chunk: API, routing, Redis relay, worker and engine together), generated
tokens per second, and the API processes' peak memory (gunicorn master and worker,
VmHWM), with a check that no torch library is mapped into them.

Usage: python bench/serving_api.py [--base tiny|smollm2] [--adapters 8] [--clients 32]
       [--per-client 2] [--max-tokens 16]
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from serving import QUESTIONS, make_adapters  # noqa: E402  (bench/serving.py)


def base_dir(kind: str, tmp: Path) -> tuple[str, Path]:
    from worker.training.causal_lm.base_models import (
        SMOLLM2_NAME,
        make_tiny_llama_dir,
        resolve_causal_base,
    )

    if kind == "smollm2":
        return SMOLLM2_NAME, Path(resolve_causal_base(SMOLLM2_NAME, tmp / "bases"))
    return "tiny-llama", make_tiny_llama_dir(tmp / "tiny-llama", layers=2)


def platform_with_adapters(tmp: Path, name: str, base: Path, n: int) -> tuple[Any, Any, str]:
    from transformers import AutoModelForCausalLM

    from commands.redis_server import start_redis
    from storage.blobs import store_dir
    from storage.db import transaction
    from storage.layout import model_prefix
    from storage.models import ModelVersion
    from storage.platform import Platform
    from storage.schema import upgrade
    from storage.teams import create_team
    from tunepool.settings import Settings

    redis_server = start_redis(tmp / "redis", persist=False)
    settings = Settings(  # type: ignore[call-arg]
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'bench.sqlite3'}",
        object_store_url=(tmp / "objects").as_uri(),
        redis_url=redis_server.url,
        base_models={name: str(base)},
        rate_limit_per_s=0,  # one key for every client: measure serving, not the limiter
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    dirs = make_adapters(
        AutoModelForCausalLM.from_pretrained(base), tmp / "adapters", n, 16, "all-linear"
    )
    with transaction(platform.sessions) as session:
        team, key = create_team(session, "bench")
        session.flush()
        for i, directory in enumerate(dirs):
            prefix = model_prefix(team.id, f"bot{i}", 1)
            store_dir(session, platform.store, prefix, directory)
            session.add(
                ModelVersion(
                    team_id=team.id,
                    name=f"bot{i}",
                    version=1,
                    task="causal-lm",
                    prefix=prefix,
                    base_model=name,
                )
            )
    return platform, redis_server, key


def start(tmp: Path, platform: Any, adapters: int, clients: int) -> tuple[list[Any], str]:
    import redis

    from commands.embedded import child_env
    from commands.netutil import free_port
    from tunepool.serving_protocol import live_workers

    env = child_env(
        platform.settings,
        PYTHONPATH=str(ROOT),
        TUNEPOOL_SERVE_CHAT_MAX_ADAPTERS=str(adapters),
        TUNEPOOL_CHAT_TEAM_CONCURRENCY=str(clients * 2),
    )
    port = free_port()
    with (tmp / "serve.log").open("ab") as log:
        serving = subprocess.Popen(
            [sys.executable, "-m", "commands", "serve", "--name", "bench-chat"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    with (tmp / "api.log").open("ab") as log:
        api = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-b", f"127.0.0.1:{port}",
             "-k", "gthread", "--threads", str(clients * 2), "-w", "1", "api.wsgi:app"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    client = redis.Redis.from_url(platform.settings.redis_url)
    deadline = time.monotonic() + 300
    while not live_workers(client):
        if serving.poll() is not None or time.monotonic() > deadline:
            raise SystemExit((tmp / "serve.log").read_text()[-3000:])
        time.sleep(0.2)
    return [serving, api], f"http://127.0.0.1:{port}/v1"


def api_memory(api_pid: int) -> dict[str, Any]:
    import psutil

    master = psutil.Process(api_pid)
    peak_kb, torch_mapped = 0, False
    for proc in [master, *master.children(recursive=True)]:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak_kb += int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1])
        torch_mapped |= "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
    return {"api_peak_rss_mb": round(peak_kb / 1024, 1), "api_has_torch": torch_mapped}


def run_clients(url: str, key: str, adapters: int, clients: int, per: int, tokens: int) -> dict:
    import openai

    ai = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)
    ttfts: list[float] = []
    generated = [0]
    lock = threading.Lock()

    def one(index: int) -> None:
        for i in range(per):
            n = index * per + i
            started = time.perf_counter()
            first = None
            stream = ai.chat.completions.create(
                model=f"bot{n % adapters}",
                messages=[{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}],
                max_tokens=tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
                if chunk.usage is not None:
                    with lock:
                        generated[0] += chunk.usage.completion_tokens
            with lock:
                ttfts.append(first if first is not None else time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ttfts.sort()
    return {
        "requests": len(ttfts),
        "tokens_per_s": round(generated[0] / elapsed, 1),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1),
        "ttft_p99_ms": round(ttfts[min(len(ttfts) - 1, int(len(ttfts) * 0.99))] * 1000, 1),
        "elapsed_s": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunepool-bench-chat-") as raw:
        tmp = Path(raw)
        name, base = base_dir(args.base, tmp)
        platform, redis_server, key = platform_with_adapters(tmp, name, base, args.adapters)
        processes, url = start(tmp, platform, args.adapters, args.clients)
        try:
            # Warm-up: the base and every adapter loaded, as on a worker in service.
            run_clients(url, key, args.adapters, args.adapters, 1, 2)
            result = run_clients(
                url, key, args.adapters, args.clients, args.per_client, args.max_tokens
            )
            result.update(api_memory(processes[1].pid))
        finally:
            for process in processes:
                process.terminate()
                process.wait(60)
            redis_server.stop()
            platform.close()
    summary = {"base": name, "adapters": args.adapters, "clients": args.clients,
               "max_tokens": args.max_tokens, **result}  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
