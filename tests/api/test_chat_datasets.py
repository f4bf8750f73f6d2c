"""Chat datasets (task causal-lm): checked line by line, with token counts and a dry run."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from storage.models import Dataset, StoredObject
from storage.platform import Platform
from tests.api.conftest import KeyFactory
from tunepool.builtin_models import SMOLLM2_NAME, smollm2_source_id


def upload_chat(
    client: FlaskClient, headers: dict[str, str], rows: list[Any], fmt: str = "chat"
) -> dict[str, Any]:
    body = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    resp = client.post(
        "/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={"task": "causal-lm", "format": fmt, "file": (io.BytesIO(body.encode()), "c.jsonl")},
    )
    return {**resp.get_json(), "http_status": resp.status_code}


def chat(user: str, answer: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages, **extra}


def test_the_three_formats_are_detected_and_described(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    openai = upload_chat(client, headers, [chat("Is it spam?", "ham")] * 3)
    assert openai["http_status"] == 201, openai
    stats = openai["stats"]
    assert (stats["format"], stats["examples"]) == ("openai", 3)
    assert stats["messages_by_role"] == {"assistant": 3, "user": 3}
    # No converted SmolLM2 on this platform yet: tokens guessed from characters, labelled.
    assert stats["tokens"]["basis"] == "approximated" and stats["tokenizer"] is None
    assert stats["estimate"]["billed_tokens"] == stats["tokens"]["total"] > 0
    assert stats["estimate"]["expected_seconds_cpu"] > stats["estimate"]["expected_seconds_gpu"]

    sharegpt = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
    alpaca = {"instruction": "Translate", "input": "hei", "output": "hi"}
    for row, name in ((sharegpt, "sharegpt"), (alpaca, "alpaca")):
        created = upload_chat(client, headers, [row, row])
        assert created["http_status"] == 201 and created["stats"]["format"] == name, created
        assert created["format"] == "chat"
    given = upload_chat(client, headers, [alpaca], fmt="alpaca")
    assert given["http_status"] == 201 and given["format"] == "alpaca"
    wrong = upload_chat(client, headers, [chat("a", "b")], fmt="sharegpt")
    assert wrong["http_status"] == 422 and wrong["error"]["line"] == 1, wrong


def test_bad_lines_are_named_every_one_and_nothing_is_stored(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    rows: list[Any] = [
        chat("fine", "ok"),
        {"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]},
        chat("fine", "ok"),
        chat("", "empty user turn"),
        {"messages": [{"role": "user", "content": "no answer"}]},
        "{not json",
    ]
    resp = upload_chat(client, headers, rows)
    assert resp["http_status"] == 422
    error = resp["error"]
    assert (error["field"], error["line"]) == ("file", 2)
    assert error["message"].startswith("file: line 2: messages[0].role 'bot'")
    assert {code: entry["lines"] for code, entry in error["problems"].items()} == {
        "bad_role": [2],
        "empty_content": [4],
        "no_assistant": [5],
        "bad_json": [6],
    }
    with platform.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 0
        assert session.scalar(select(func.count()).select_from(StoredObject)) == 0


def test_tools_are_left_out_with_a_named_warning(client: FlaskClient, make_key: KeyFactory) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    rows = [chat("plain", "ok"), chat("with tools", "ok", tools=tools)]
    created = upload_chat(client, make_key(), rows)
    assert created["http_status"] == 201
    warning = created["stats"]["warnings"]["tools_ignored"]
    assert warning["lines"] == [2] and "tool" in warning["message"]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from worker.training.causal_lm.base_models import make_tiny_llama_dir

    return make_tiny_llama_dir(tmp_path_factory.mktemp("tiny") / "llama")


def test_tokens_are_counted_with_the_published_copy_of_the_chat_model(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, tiny_llama: Path, tmp_path: Path
) -> None:
    """Once a worker has published SmolLM2's converted copy, the dataset check counts
    with its tokenizer and template, exactly as the engine encodes (a tiny Llama stands in)."""
    from transformers import AutoTokenizer

    from tunepool.data.chat import read_chat_examples
    from worker.converted_models import BuiltinSource, converted_base_dir
    from worker.training.causal_lm.rendering import encode_chat

    def convert(source: Path, out: Path) -> Path:
        return Path(shutil.copytree(tiny_llama, out))

    source = BuiltinSource(SMOLLM2_NAME, smollm2_source_id(), tmp_path / "unused.gguf")
    converted_base_dir(platform.sessions, platform.store, source, tmp_path / "worker", convert)

    rows = [chat("Colour of der?", "red"), chat("x" * 1100, "long: one token a byte here")]
    headers = make_key()
    created = upload_chat(client, headers, rows)
    assert created["http_status"] == 201, created
    assert created["stats"]["tokens"]["basis"] == "approximated"  # the API has no tokenizer
    assert created["status"] == "validating"
    from worker.dataset_checks import check_dataset

    assert check_dataset(platform, created["id"]) == "ready"
    stats = client.get(f"/v1/datasets/{created['id']}", headers=headers).get_json()["stats"]
    assert stats["tokens"]["basis"] == "counted" and stats["tokenizer"] == SMOLLM2_NAME
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reference = AutoTokenizer.from_pretrained(tiny_llama)
    encoded = [encode_chat(reference, e, 1024) for e in read_chat_examples(path).examples]
    assert stats["tokens"]["total"] == sum(len(e.input_ids) for e in encoded)
    assert stats["tokens"]["trained"] == sum(e.trained_tokens for e in encoded)
    assert stats["tokens"]["examples_over_max_length"] == {"count": 1, "lines": [2]}
    assert stats["estimate"]["billed_tokens"] == stats["tokens"]["total"]
