"""Alerts reach a real webhook receiver and a real SMTP server: once per incident, once resolved."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from commands.netutil import free_port
from commands.redis_server import RedisServer
from scheduler.alerts.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, configured, signature
from scheduler.alerts.engine import deliver, evaluate
from scheduler.alerts.rules import RULES
from scheduler.wait_board import Place, post_board
from storage.alerts import Incident
from storage.models import Job, Worker
from storage.teams import create_team
from tunepool.redis_client import redis_client
from tunepool.settings import Settings

SECRET = "webhook-secret"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail:
                    self.send_response(503)
                else:
                    receiver.requests.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def settings(
    receiver: Receiver, mailbox: tuple[Mailbox, int], redis_server: RedisServer
) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        alert_webhook_url=receiver.url,
        alert_webhook_secret=SECRET,
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=mailbox[1],
        alert_email_to="ops@example.com",
        alert_repeat_s=600,
        alert_resolve_after_s=60,
    )


RULES_UNDER_TEST = {k: RULES[k] for k in ("job_failed", "job_pending", "worker_lost")}


def tick(sessions: sessionmaker[Session], settings: Settings, now: float) -> list[dict[str, Any]]:
    with sessions() as session:
        due = evaluate(session, settings, None, now, rules=RULES_UNDER_TEST)
        session.commit()
    return deliver(sessions, due, configured(settings), now)


def test_one_notification_per_incident_and_one_resolved_despite_flapping(
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: Receiver,
    mailbox: tuple[Mailbox, int],
) -> None:
    t0 = time.time()
    with sessions() as session:
        session.add(
            Worker(name="w1", hostname="h", queue="q", slots=2, state="lost", heartbeat_at=t0 - 300)
        )
        session.commit()

    def set_worker(state: str) -> None:
        with sessions() as session:
            worker = session.get(Worker, "w1")
            assert worker is not None
            worker.state = state
            session.commit()

    assert [m["status"] for m in tick(sessions, settings, t0)] == ["firing"]
    # Flapping inside the resolve window: clear, back, clear -- one incident, no new message.
    for dt, state in ((10, "alive"), (20, "lost"), (30, "alive"), (50, "alive")):
        set_worker(state)
        assert tick(sessions, settings, t0 + dt) == [], dt
    # Clear for longer than alert_resolve_after_s: one "resolved".
    assert [m["status"] for m in tick(sessions, settings, t0 + 100)] == ["resolved"]
    assert tick(sessions, settings, t0 + 200) == []

    hooks = receiver.messages()
    assert [(m["rule"], m["status"]) for m in hooks] == [
        ("worker_lost", "firing"),
        ("worker_lost", "resolved"),
    ]
    assert hooks[0]["incident"] == hooks[1]["incident"]
    for headers, body in receiver.requests:
        assert headers[SIGNATURE_HEADER] == signature(SECRET, headers[TIMESTAMP_HEADER], body)
        assert headers[SIGNATURE_HEADER] != signature("wrong", headers[TIMESTAMP_HEADER], body)
    mails = mailbox[0].messages
    assert [m["Subject"].split("]")[0] for m in mails] == [
        "[tunepool FIRING",
        "[tunepool RESOLVED",
    ]
    assert "w1" in mails[0]["Subject"]
    with sessions() as session:
        incidents = session.scalars(select(Incident)).all()
    assert [(i.rule, i.state, i.notifications) for i in incidents] == [
        ("worker_lost", "resolved", 2)
    ]


def test_a_lasting_condition_repeats_after_the_interval_and_a_dead_webhook_is_retried(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    settings = settings.model_copy(update={"alert_smtp_host": ""})  # the webhook only
    t0 = time.time()
    with sessions() as session:
        team, _ = create_team(session, "alerts-team")
        session.add(
            Job(
                id="job_stuck",
                team_id=team.id,
                type="finetune",
                task="ner",
                spec={},
                state="pending",
                reason_code="no_capacity",
                reason="every GPU is busy",
                created_at=t0 - settings.alert_pending_after_s - 5,
            )
        )
        session.commit()
    # The last admission pass put it third on the wait board.
    post_board(redis_client(settings.redis_url), {"job_stuck": Place(3, None)})
    receiver.fail = True
    assert tick(sessions, settings, t0) == []  # the webhook refused: not counted as sent
    receiver.fail = False
    sent = tick(sessions, settings, t0 + 5)  # retried on the next pass
    assert [(m["rule"], m["status"], m["repeat"]) for m in sent] == [
        ("job_pending", "firing", False)
    ]
    # The alert names the reason code and the queue position.
    assert "no_capacity" in sent[0]["summary"] and "position 3" in sent[0]["summary"]
    assert sent[0]["team_id"] == team.id
    assert tick(sessions, settings, t0 + 300) == []
    again = tick(sessions, settings, t0 + 5 + settings.alert_repeat_s)
    assert [(m["status"], m["repeat"]) for m in again] == [("firing", True)]
    assert len(receiver.requests) == 2


def test_every_rule_runs_on_a_real_platform_and_a_missing_backup_alerts(tmp_path) -> None:
    from scheduler.alerts.engine import run_alerts
    from scheduler.backup import run_backup
    from storage.platform import Platform
    from storage.schema import upgrade

    platform = Platform(Settings(home=tmp_path / "home", alert_resolve_after_s=0))
    upgrade(platform.engine)
    t0 = time.time()
    sent = run_alerts(platform, now=t0)
    assert [(m["rule"], m["status"]) for m in sent] == [("backup_missing", "firing")]
    run_backup(platform)
    sent = run_alerts(platform, now=t0 + 1)
    assert [(m["rule"], m["status"]) for m in sent] == [("backup_missing", "resolved")]
    platform.close()
