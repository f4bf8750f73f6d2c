"""The API process never imports torch, transformers or peft (DESIGN §7): not at import of
its WSGI app, and not on any route, a prediction and a validate_only report included
(serving workers answer those). A fresh interpreter imports ``api.wsgi`` as gunicorn
does, calls every route of its URL map with a real key and real ids, and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from commands.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]

# Run in the child: set up a team, a dataset, a job and a model version through the
# platform, then call each rule of the app's URL map once per method (any status will do).
CALL_EVERY_ROUTE = r"""
import io, json, sys
from pathlib import Path

import api.wsgi
from storage.blobs import store_dir
from storage.db import transaction
from storage.layout import model_prefix
from storage.models import ModelVersion
from storage.schema import upgrade
from storage.teams import create_team

app = api.wsgi.app
platform = app.extensions["tunepool"]
upgrade(platform.engine)
with transaction(platform.sessions) as session:
    team, key = create_team(session, "t", role="admin")
    session.flush()
    team_id = team.id
model_dir = Path(sys.argv[1]) / "model"
model_dir.mkdir()
(model_dir / "config.json").write_text('{"architectures": ["BertForTokenClassification"]}')
with transaction(platform.sessions) as session:
    prefix = model_prefix(team_id, "m", 1)
    store_dir(session, platform.store, prefix, model_dir)
    session.add(ModelVersion(team_id=team_id, name="m", version=1, prefix=prefix,
                             task="token-classification", base_model="all-MiniLM-L6-v2"))
client = app.test_client()
auth = {"Authorization": f"Bearer {key}"}
data = b"Ada\tB-PER\nwrites\tO\n\nBob\tB-PER\nreads\tO\n"
dataset = client.post("/v1/datasets", headers=auth, data={
    "task": "token-classification", "format": "conll", "name": "d",
    "file": (io.BytesIO(data), "d.conll")}).get_json()
spec = {"task": "token-classification", "train_dataset": dataset["id"]}
job = client.post("/v1/jobs", headers=auth, json=spec).get_json()
statuses = {
    "validate_only": client.post("/v1/jobs", headers=auth,
                                 json={**spec, "validate_only": True}).status_code,
    "predict": client.post("/v1/models/m:1/predict", headers=auth,
                           json={"inputs": ["Ada writes"]}).status_code,
}
values = {"dataset_id": dataset["id"], "file_id": dataset["id"], "job_id": job["id"],
          "name": "m", "version": "1", "alias": "production", "ref": "m:1"}
for rule in app.url_map.iter_rules():
    path = rule.rule
    for argument in rule.arguments:
        for form in (f"<{argument}>", f"<int:{argument}>", f"<path:{argument}>"):
            path = path.replace(form, values.get(argument, "x"))
    for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
        response = client.open(path, method=method, headers=auth, json={})
        statuses[f"{method} {rule.rule}"] = response.status_code
        response.close()  # an event stream is not read to its end
loaded = [m for m in ("torch", "transformers", "peft") if m in sys.modules]
print(json.dumps({"loaded": loaded, "statuses": statuses}))
"""


def test_every_route_of_the_wsgi_app_leaves_torch_transformers_and_peft_unimported(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEPOOL_")}
    env.update(
        TUNEPOOL_HOME=str(tmp_path / "home"),
        # A database of its own on the session's Redis: no serving worker listens there.
        TUNEPOOL_REDIS_URL=redis_server.url.rsplit("/", 1)[0] + "/9",
        TUNEPOOL_ADMISSION_COALESCE_S="0",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-c", CALL_EVERY_ROUTE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    statuses = report["statuses"]
    # The serving paths were really taken: they answer 503, no serving worker being up.
    assert statuses["predict"] == 503 and statuses["validate_only"] == 503, statuses
    assert statuses["GET /v1/datasets/<dataset_id>"] == 200
    assert len(statuses) > 50, sorted(statuses)
    assert report["loaded"] == [], f"the API imported {report['loaded']}"
