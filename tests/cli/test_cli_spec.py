"""`tunepool jobs submit`'s spec: a YAML or JSON file, then flags and --set on top."""

from __future__ import annotations

from pathlib import Path

from commands.cli_client import _spec_from


def test_a_json_specs_numbers_stay_numbers(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) alone reads 1e-4 as the string "1e-4"; the API then refused the
    # README's job.json with "learning_rate: must be a number, not str".
    spec = tmp_path / "job.json"
    spec.write_text('{"hyperparameters": {"learning_rate": 1e-4, "epochs": 3}}')
    found = _spec_from(spec, {"epochs": 1}, ("warmup_ratio=5e-2", "method=lora"))
    hyper = found["hyperparameters"]
    assert hyper == {"learning_rate": 1e-4, "epochs": 1, "warmup_ratio": 0.05, "method": "lora"}


def test_a_yaml_spec_reads_as_yaml(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("task: token-classification\nhyperparameters:\n  learning_rate: 0.0001\n")
    found = _spec_from(spec, {}, ("lora_target_modules=[q_proj, v_proj]",))
    assert found["task"] == "token-classification" and found["type"] == "finetune"
    assert found["hyperparameters"] == {
        "learning_rate": 0.0001,
        "lora_target_modules": ["q_proj", "v_proj"],
    }


def test_a_yaml_spec_reads_exponents_as_numbers(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("hyperparameters:\n  learning_rate: 1e-4\n  weight_decay: 5E2\n  tag: 1e4x\n")
    hyper = _spec_from(spec, {}, ())["hyperparameters"]
    assert hyper == {"learning_rate": 1e-4, "weight_decay": 500.0, "tag": "1e4x"}
