"""Where the API sends a request (api/serving.py): a live worker of the kind that holds the
model, else the least loaded; never a full, stopping or dead one. The workers here are
adverts written by the production heartbeat into real Redis, with real streams."""

from __future__ import annotations

import time

import pytest
import redis

from api.errors import ApiError
from api.serving import ServingClient
from tunepool.serving_protocol import GROUP, Advert, Request, advert_key
from worker.serving.advert import Heartbeat


def advertise(
    client: redis.Redis,
    name: str,
    *,
    models: tuple[str, ...] = (),
    waiting: int = 0,
    capacity: int = 4,
    kinds: tuple[str, ...] = ("predict",),
    draining: bool = False,
) -> Advert:
    advert = Advert(
        name=name,
        instance=f"{name}-1",
        host="host",
        pid=1,
        kinds=list(kinds),
        capacity=capacity,
        threads=2,
        queue_depth=waiting,
        models={model: {"bytes": 1} for model in models},
        loading=[],
        cache_bytes=0,
        cache_max_bytes=1,
        started_at=time.time(),
        beat_at=time.time(),
        draining=draining,
    )
    client.xgroup_create(advert.stream, GROUP, id="0", mkstream=True)
    for _ in range(waiting):
        client.xadd(advert.stream, Request("predict", {}, time.time() + 60).to_fields())  # type: ignore[arg-type]
    Heartbeat(client, lambda: advert, advert.stream, interval_s=1, lost_after_s=30).beat()
    return advert


@pytest.fixture
def client(transport_url: str) -> redis.Redis:
    return redis.Redis.from_url(transport_url)


@pytest.fixture
def router(client: redis.Redis) -> ServingClient:
    return ServingClient(client, timeout_s=5)


def sent_to(router: ServingClient, model: str | None = "mv_1", kind: str = "predict") -> str:
    return router.send(kind, {"inputs": ["x"]}, model).worker.name


def test_no_worker_is_a_503_that_says_how_to_start_one(router: ServingClient) -> None:
    with pytest.raises(ApiError) as refused:
        sent_to(router)
    error = refused.value
    assert (error.status, error.code) == (503, "no_serving_worker")
    assert "'predict'" in error.message and "tunepool serve" in error.message
    assert error.headers["Retry-After"] == "1"


def test_a_worker_holding_the_model_wins_over_a_less_loaded_one(
    client: redis.Redis, router: ServingClient
) -> None:
    advertise(client, "holder", models=("mv_1",), waiting=2)
    advertise(client, "idle")
    assert sent_to(router, "mv_1") == "holder"
    # Nobody holds mv_2: the least loaded (by live queue depth over capacity) gets it.
    assert sent_to(router, "mv_2") == "idle"
    # Load is the share of capacity in use: 2 of 100 is less than idle's 1 of 4 now.
    advertise(client, "roomy", waiting=2, capacity=100)
    assert sent_to(router, "mv_3") == "roomy"


def test_a_full_worker_is_skipped_and_when_all_are_full_the_answer_is_503_busy(
    client: redis.Redis, router: ServingClient
) -> None:
    full = advertise(client, "full", models=("mv_1",), waiting=2, capacity=2)
    advertise(client, "spare", capacity=1)
    assert sent_to(router, "mv_1") == "spare"  # affinity loses to a full queue
    with pytest.raises(ApiError) as refused:
        sent_to(router, "mv_1")
    assert (refused.value.status, refused.value.code) == (503, "busy")
    assert refused.value.headers["Retry-After"] == "1"
    # Nothing was added beyond the capacities the workers advertise.
    assert client.xlen(full.stream) == 2


def test_stopping_dead_and_other_kinds_of_workers_get_nothing(
    client: redis.Redis, router: ServingClient
) -> None:
    advertise(client, "stopping", models=("mv_1",), draining=True)
    advertise(client, "reports", models=("mv_1",), kinds=("report",))
    dead = advertise(client, "dead", models=("mv_1",))
    client.delete(advert_key("dead"))  # its advert expired: it stopped beating
    with pytest.raises(ApiError) as refused:
        sent_to(router, "mv_1")
    assert refused.value.code == "no_serving_worker"
    assert client.xlen(dead.stream) == 0
    assert sent_to(router, None, kind="report") == "reports"
    assert sorted(w.name for w in router.workers()) == ["reports", "stopping"]


def test_chat_goes_to_the_adapter_holder_else_the_base_holder_else_the_least_loaded(
    client: redis.Redis, router: ServingClient
) -> None:
    chat = ("chat",)
    base = "base:tiny-llama"
    advertise(client, "idle", kinds=chat)
    advertise(client, "has-base", models=(base,), waiting=2, kinds=chat)
    advertise(client, "has-adapter", models=(base, "mv-1"), waiting=3, kinds=chat)
    assert router.send("chat", {}, model="mv-1", base=base).worker.name == "has-adapter"
    # Another adapter of the same base: its base is resident at has-base (and has-adapter,
    # busier), which load it in milliseconds rather than the base in seconds.
    assert router.send("chat", {}, model="mv-2", base=base).worker.name == "has-base"
    # A base nobody holds: the least loaded.
    other = "base:other"
    assert router.send("chat", {}, model=other, base=other).worker.name == "idle"
