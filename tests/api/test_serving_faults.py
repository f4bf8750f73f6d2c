"""Online predictions when serving workers are missing, full or die (DESIGN §7), with real
`tunepool serve` processes on a Redis database of this test's own: no worker is a 503 that
says what to start; a full queue is a 503 with Retry-After; a worker killed while it holds
a request ends that request's wait with a 503 within its heartbeat expiry, never a hang,
and the next request goes to a live worker."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from werkzeug.test import TestResponse

from api.app import create_app
from commands.redis_server import RedisServer
from storage.platform import Platform
from tests.api.conftest import KeyFactory
from tests.api.models_helpers import publish_version
from tests.inference.tiny import NER_LABELS, tiny_model_dir
from tests.serving_process import ServingProcess, serving_env

FAULTS_DB = 8
LOST_AFTER_S = 2.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_worker_a_full_one_and_one_that_dies_mid_request(
    platform: Platform,
    make_key: KeyFactory,
    redis_server: RedisServer,
    serving_objects: Path,
    tiny_base_models: dict[str, str],
    tmp_path: Path,
) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{FAULTS_DB}"
    redis.Redis.from_url(url).flushdb()
    client = create_app(
        platform=Platform(platform.settings.model_copy(update={"redis_url": url}))
    ).test_client()
    alpha = make_key("alpha")
    publish_version(platform, "alpha", "ner", tiny_model_dir(tmp_path / "ner", NER_LABELS))

    def predict() -> TestResponse:
        return client.post("/v1/models/ner/predict", headers=alpha, json={"inputs": ["Ola"]})

    none = predict()
    assert none.status_code == 503 and none.headers["Retry-After"] == "1"
    error = none.get_json()["error"]
    assert error["code"] == "no_serving_worker" and "tunepool serve" in error["message"]

    def worker(name: str) -> ServingProcess:
        env = serving_env(
            tmp_path / name,
            url,
            serving_objects,
            tiny_base_models,
            TUNEPOOL_SERVE_QUEUE_LIMIT="1",
            TUNEPOOL_SERVE_LOST_AFTER_S=str(LOST_AFTER_S),
        )
        return ServingProcess(name, env, tmp_path / f"{name}.log")

    first, second = worker("first"), worker("second")
    try:
        first.start()
        stream = (first.advert() or pytest.fail("no advert")).stream
        first.signal(signal.SIGSTOP)  # it takes the next request and never answers
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(predict)
            deadline = time.monotonic() + 20
            while first.redis.xlen(stream) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            # Its one place is taken, and there is no other worker: busy, retry later.
            busy = predict()
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
            assert busy.get_json()["error"]["code"] == "busy"
            second.launch()  # starts up while the first one's wait runs out
            first.signal(signal.SIGKILL)
            killed = time.monotonic()
            lost = held.result(timeout=30)
            waited = time.monotonic() - killed
        assert lost.status_code == 503, lost.get_json()
        error = lost.get_json()["error"]
        assert error["code"] == "serving_worker_lost" and "first" in error["message"]
        # Its advert expires LOST_AFTER_S after its last beat; the API looks twice a second.
        assert waited < LOST_AFTER_S + 1.5, waited

        second.wait_ready()
        answer = predict()
        assert answer.status_code == 200, answer.get_json()
        assert [e["text"] for e in answer.get_json()["predictions"][0]["entities"]] in ([], ["Ola"])
        version_id = answer.get_json()["model"]["id"]
        deadline = time.monotonic() + 5
        while not second.model_stats(version_id).get("requests") and time.monotonic() < deadline:
            time.sleep(0.05)  # until a heartbeat after the answer
        assert second.model_stats(version_id)["requests"] == 1  # the live worker answered
    finally:
        first.stop()
        second.stop()
