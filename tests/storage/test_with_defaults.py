"""with_defaults: an unsaved object's INSERT parameters, its defaults filled as a flush would."""

from __future__ import annotations

from storage.models import Job, with_defaults


def test_unset_columns_get_their_defaults_on_the_object_and_in_the_values() -> None:
    job = Job(id="job_1", team_id="team_1", type="finetune", task="t", spec={}, state="pending")
    values = with_defaults(job)
    assert values["attempt"] == job.attempt == 0
    assert values["progress"] == job.progress == {}
    assert values["gpu_indices"] == [] and values["borrowed"] is False
    assert values["created_at"] > 0 and values["finished_at"] is None
    assert values["id"] == "job_1"  # a set value is kept, not replaced by the default
    other = Job(id="job_2", team_id="team_1", type="finetune", task="t", spec={}, state="pending")
    # A callable default makes a new object each time: no two jobs share one dict.
    assert with_defaults(other)["progress"] is not values["progress"]
