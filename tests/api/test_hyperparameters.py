"""Hyperparameters are checked at submit by the worker's own typed spec: every route that
takes them refuses wrong types, unknown names and out-of-range values with a 422 naming
``hyperparameters.<name>``, so nothing accepted fails on the worker (issue 20, item 17)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.api.conftest import KeyFactory, upload_ner

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"seed": "abc"}, "seed"),
    ({"seed": -1}, "seed"),
    ({"metric_for_best": "bogus"}, "metric_for_best"),
    # A metric that exists, but not for token classification.
    ({"metric_for_best": "accuracy"}, "metric_for_best"),
    ({"epochs": 1.5}, "epochs"),
    ({"epochs": 2.0}, "epochs"),
    ({"epochs": 1e12}, "epochs"),
    ({"epochs": 10**12}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"epochs": "3"}, "epochs"),
    ({"batch_size": 1e21}, "batch_size"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"learning_rate": 5}, "learning_rate"),
    ({"max_length": 100_000}, "max_length"),
    ({"eval_every_epoch": "yes"}, "eval_every_epoch"),
    ({"seed": "auto"}, "seed"),
    ({"learning_rat": 1e-4}, "learning_rat"),
]


def _job(client: FlaskClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return client.post("/v1/jobs", headers=headers, json={"task": "token-classification", **body})


def test_native_jobs_refuse_each_bad_hyperparameter_naming_it(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)["id"]
    for validate_only in (False, True):
        for hyper, name in REFUSED:
            body = {"train_dataset": ds, "hyperparameters": hyper, "validate_only": validate_only}
            resp = _job(client, headers, body)
            assert resp.status_code == 422, (hyper, resp.get_json())
            assert resp.get_json()["error"]["field"] == f"hyperparameters.{name}", hyper
    assert client.get("/v1/jobs", headers=headers).get_json()["data"] == []
    good = {
        "epochs": 2,
        "learning_rate": 1,  # a whole number is a fine float
        "metric_for_best": "strict_f1",
        "batch_size": "auto",
        "seed": 7,
    }
    resp = _job(client, headers, {"train_dataset": ds, "hyperparameters": good})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["spec"]["hyperparameters"]["epochs"] == 2


def test_openai_fine_tuning_refuses_bad_hyperparameters_naming_them(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)["id"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"hyperparameters": {"n_epochs": 1.5}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": "2"}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": 10**12}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"batch_size": 1e21}}, "hyperparameters.batch_size"),
        ({"hyperparameters": {"batch_size": "many"}}, "hyperparameters.batch_size"),
        (
            {"hyperparameters": {"learning_rate_multiplier": 1e9}},
            "hyperparameters.learning_rate_multiplier",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": -1}},
            "hyperparameters.learning_rate_multiplier",
        ),
        ({"seed": 1.0}, "seed"),
        ({"seed": "abc"}, "seed"),
    ]
    for change, field in cases:
        body = {"model": "all-MiniLM-L6-v2", "training_file": ds, **change}
        resp = client.post("/v1/fine_tuning/jobs", headers=headers, json=body)
        assert resp.status_code == 422, (change, resp.get_json())
        assert resp.get_json()["error"]["field"] == field, (change, resp.get_json())
    body = {
        "model": "all-MiniLM-L6-v2",
        "training_file": ds,
        "hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": 2},
    }
    assert client.post("/v1/fine_tuning/jobs", headers=headers, json=body).status_code == 200


def test_schedules_refuse_bad_hyperparameters_naming_them(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    upload_ner(client, headers, name="ner")
    evaluation = upload_ner(client, headers, name="ner-eval")["id"]
    for hyper, name in REFUSED:
        body = {
            "model_name": "ner",
            "dataset_name": "ner",
            "cron": "0 3 * * *",
            "evaluation_dataset": evaluation,
            "hyperparameters": hyper,
        }
        resp = client.post("/v1/schedules", headers=headers, json=body)
        assert resp.status_code == 422, (hyper, resp.get_json())
        assert resp.get_json()["error"]["field"] == f"hyperparameters.{name}", hyper


def test_the_api_checks_with_the_workers_own_spec() -> None:
    import tunepool.hyperparameters as core
    import worker.training.spec as spec

    assert spec.Hyperparameters is core.Hyperparameters
    assert spec.TASK_METRICS is core.TASK_METRICS
