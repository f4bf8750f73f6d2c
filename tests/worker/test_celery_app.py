"""worker.celery_app: the publisher warmed before a request needs it."""

from __future__ import annotations

import socket

import pytest

from tunepool.settings import Settings
from worker.celery_app import make_celery, warm_publisher


def test_warming_the_publisher_does_not_connect_to_the_broker() -> None:
    # The API warms it while it starts (api/warm.py): a broker that is down or slow then
    # must not stop or hold up the start. The first send connects, as it always did.
    with socket.socket() as broker:
        broker.bind(("127.0.0.1", 0))
        broker.listen(8)
        port = broker.getsockname()[1]
        app = make_celery(Settings.model_validate({"redis_url": f"redis://127.0.0.1:{port}/0"}))
        warm_publisher(app)
        broker.settimeout(0.3)
        with pytest.raises(TimeoutError):
            broker.accept()  # a connection made by the warm-up would be waiting here
        with app.producer_or_acquire() as producer:
            assert producer.connection is not None  # built, and not yet connected
