"""The serving wire format round-trips, and its key names are spelled in one module."""

from __future__ import annotations

import time
from pathlib import Path

from tunepool import serving_protocol
from tunepool.serving_protocol import Advert, Failure, ReplyEntry, ReplyType, Request

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("api", "worker", "scheduler", "storage", "tunepool")


def test_requests_replies_and_adverts_round_trip_as_redis_returns_them() -> None:
    request = Request("predict", {"inputs": ["Åse", ["a", "b"]]}, time.time() + 5)
    fields = {k.encode(): v.encode() for k, v in request.to_fields().items()}
    assert Request.from_fields(fields) == request
    for entry in (
        ReplyEntry(ReplyType.CHUNK, {"token": "Ola"}),
        ReplyEntry(ReplyType.END, {"predictions": [1.5]}),
        ReplyEntry(ReplyType.ERROR, Failure(422, "invalid_data", "line 2: x", "file", 2)),
    ):
        raw = {k.encode(): v.encode() for k, v in entry.to_fields().items()}
        assert ReplyEntry.from_fields(raw) == entry
    advert = Advert("w", "i1", "h", 1, ["predict"], 8, 4, 2, {"mv_1": {"bytes": 3}}, ["mv_2"],
                    3, 10, 1.0, 2.0)  # fmt: skip
    assert Advert.from_json(advert.to_json().encode()) == advert
    assert advert.holds("mv_1") and advert.holds("mv_2") and not advert.holds("mv_3")
    assert advert.stream == serving_protocol.request_stream("w", "i1")


def test_no_other_production_module_spells_a_serving_key() -> None:
    own = ROOT / "tunepool" / "serving_protocol.py"
    spelled = [
        f"{path.relative_to(ROOT)}"
        for package in PRODUCTION
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != own and serving_protocol.PREFIX in path.read_text(encoding="utf-8")
    ]
    assert spelled == [], "use tunepool.serving_protocol's names instead"
