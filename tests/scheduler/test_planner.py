"""The admission plan on hand-made pools: order, quotas, borrowing, backfill, preemption."""

from __future__ import annotations

from scheduler.planner import (
    PendingJob,
    Policy,
    RunningJob,
    TeamState,
    WorkerCapacity,
    fair_order,
    plan,
)

NOW = 1_000_000.0


def pending(
    id: str,
    team: str = "a",
    slots: int = 1,
    priority: int = 1,
    age: float = 0.0,
    runtime: float = 600.0,
) -> PendingJob:
    return PendingJob(id, team, priority, slots, NOW - 100 + age * -1, runtime)


def running(
    id: str,
    worker: str,
    gpus: tuple[int, ...],
    team: str = "a",
    priority: int = 1,
    ends_in: float = 600.0,
    borrowed: bool = False,
    checkpoint_age: float = 60.0,
) -> RunningJob:
    return RunningJob(
        id, team, priority, len(gpus), worker, gpus, NOW + ends_in, borrowed, NOW - checkpoint_age
    )


def workers(*sizes: int) -> list[WorkerCapacity]:
    return [WorkerCapacity(f"w{i}", f"q{i}", n) for i, n in enumerate(sizes)]


def test_high_priority_first_then_teams_take_turns_by_weight() -> None:
    teams = {"a": TeamState("a", weight=1), "b": TeamState("b", weight=2)}
    jobs = [pending(f"a{i}", "a", age=10 - i) for i in range(4)]
    jobs += [pending(f"b{i}", "b", age=5 - i) for i in range(4)]
    jobs.append(pending("urgent", "a", priority=2))
    order = [j.id for j in fair_order(jobs, teams, {}, NOW, Policy())]
    assert order[0] == "urgent"
    # After 'urgent' team a holds 1 GPU; b (weight 2) gets two turns for each of a's.
    assert order[1:] == ["b0", "b1", "a0", "b2", "b3", "a1", "a2", "a3"]


def test_aging_moves_a_starving_job_up_one_class() -> None:
    jobs = [pending("old-low", priority=0, age=7200), pending("new-normal", priority=1)]
    order = [j.id for j in fair_order(jobs, {}, {}, NOW, Policy(starvation_s=3600))]
    assert order == ["old-low", "new-normal"]


def test_team_over_quota_waits_with_reason_quota_while_another_runs() -> None:
    teams = {"a": TeamState("a", max_gpus=1, can_borrow=False), "b": TeamState("b")}
    result = plan(
        [pending("a2", "a"), pending("b1", "b")],
        [running("a1", "w0", (0,), team="a")],
        teams,
        workers(4),
        NOW,
    )
    assert [p.job_id for p in result.placements] == ["b1"]
    assert result.waits["a2"].reason_code == "quota"
    assert "quota of 1" in result.waits["a2"].reason


def test_borrowing_uses_idle_gpus_and_is_preempted_for_a_team_within_quota() -> None:
    teams = {"a": TeamState("a", max_gpus=1, can_borrow=True), "b": TeamState("b", max_gpus=2)}
    first = plan(
        [pending("a2", "a")], [running("a1", "w0", (0,), team="a")], teams, workers(2), NOW
    )
    assert [(p.job_id, p.borrowed) for p in first.placements] == [("a2", True)]
    # Now b wants its quota back: the borrowing job yields.
    second = plan(
        [pending("b1", "b")],
        [running("a1", "w0", (0,), team="a"), running("a2", "w0", (1,), team="a", borrowed=True)],
        teams,
        workers(2),
        NOW,
    )
    assert second.placements == []
    assert [(p.victim_id, p.for_job_id) for p in second.preemptions] == [("a2", "b1")]
    assert second.waits["b1"].reason_code == "priority"


def test_a_two_slot_job_lands_on_one_worker_with_two_free_slots() -> None:
    pool = workers(2, 2)
    result = plan([pending("big", slots=2)], [running("r", "w0", (0,))], {}, pool, NOW)
    assert [(p.worker, p.gpu_indices) for p in result.placements] == [("w1", (0, 1))]


def test_best_fit_keeps_a_whole_worker_free_for_big_jobs() -> None:
    result = plan([pending("small")], [running("r", "w1", (0,))], {}, workers(2, 2), NOW)
    assert [(p.worker, p.gpu_indices) for p in result.placements] == [("w1", (1,))]


def test_never_fits_is_explained() -> None:
    result = plan([pending("huge", slots=8)], [], {}, workers(4, 4), NOW)
    assert result.waits["huge"].reason_code == "no_free_gpu"
    assert "largest live worker has 4" in result.waits["huge"].reason


def test_backfill_only_where_it_does_not_delay_the_reserved_job() -> None:
    # w0: 4 slots, 2 busy for 100 s. 'big' needs 4 and is reserved for t+100.
    busy = [running("r", "w0", (0, 1), ends_in=100)]
    jobs = [
        pending("big", slots=4, age=30),
        pending("short", slots=1, age=20, runtime=50),  # ends before t+100: fine
        pending("long", slots=1, age=10, runtime=5000),  # would hold a slot past t+100: no
    ]
    result = plan(jobs, busy, {}, workers(4), NOW)
    assert [p.job_id for p in result.placements] == ["short"]
    assert result.waits["big"].estimated_start == NOW + 100
    assert result.waits["long"].estimated_start is not None
    assert result.waits["long"].estimated_start >= NOW + 100


def test_high_priority_preempts_the_victim_that_loses_least_work() -> None:
    busy = [
        running("old-ckpt", "w0", (0,), priority=0, checkpoint_age=900),
        running("fresh-ckpt", "w0", (1,), priority=0, checkpoint_age=5),
    ]
    result = plan([pending("vip", priority=2)], busy, {}, workers(2), NOW)
    assert [p.victim_id for p in result.preemptions] == ["fresh-ckpt"]
    # Next pass, while the victim checkpoints, nobody else is preempted for the same job.
    yielding = [busy[0], RunningJob(**{**busy[1].__dict__, "yielding": True})]
    again = plan([pending("vip", priority=2)], yielding, {}, workers(2), NOW)
    assert again.preemptions == []


def test_equal_priority_never_preempts_a_job_within_quota() -> None:
    busy = [running("r", "w0", (0,), team="a")]
    result = plan([pending("b1", "b")], busy, {}, workers(1), NOW)
    assert result.preemptions == []
    assert result.waits["b1"].reason_code == "no_free_gpu"


def test_waiting_jobs_have_positions_and_monotone_estimates() -> None:
    busy = [running("r", "w0", (0,), ends_in=300)]
    jobs = [pending(f"j{i}", age=-i) for i in range(3)]
    result = plan(jobs, busy, {}, workers(1), NOW)
    waits = [result.waits[f"j{i}"] for i in range(3)]
    assert [w.position for w in waits] == [1, 2, 3]
    starts = [w.estimated_start for w in waits]
    assert starts == [NOW + 300, NOW + 900, NOW + 1500]


def test_estimates_count_each_workers_start_up_time() -> None:
    busy = [running("r", "w0", (0,), ends_in=300)]
    jobs = [pending(f"j{i}", age=-i) for i in range(2)]
    slow = [WorkerCapacity("w0", "q0", 1, startup_s=30.0)]
    result = plan(jobs, busy, {}, slow, NOW)
    # Each waiting job trains 30 s after its slot frees: the process has to start first.
    assert [result.waits[f"j{i}"].estimated_start for i in range(2)] == [NOW + 330, NOW + 960]


def test_held_team_is_not_admitted() -> None:
    result = plan([pending("a1")], [], {"a": TeamState("a", held=True)}, workers(1), NOW)
    assert result.placements == [] and result.waits["a1"].reason_code == "quota"


def test_reclaim_follows_usage_against_quota_not_how_a_job_was_admitted() -> None:
    # Team a's quota was lowered to 1 while it ran two jobs admitted within quota: it now
    # holds one GPU beyond its quota, and team b (within its own) may reclaim exactly that.
    teams = {"a": TeamState("a", max_gpus=1), "b": TeamState("b", max_gpus=2)}
    busy = [
        running("a1", "w0", (0,), team="a", checkpoint_age=300),
        running("a2", "w0", (1,), team="a", checkpoint_age=10),
    ]
    result = plan([pending("b1", "b"), pending("b2", "b")], busy, teams, workers(2), NOW)
    assert [(p.victim_id, p.for_job_id) for p in result.preemptions] == [("a2", "b1")]
    assert "beyond its quota" in result.preemptions[0].reason


def test_a_team_short_of_quota_keeps_its_big_job_from_being_starved_by_borrowers() -> None:
    # v holds 1 of its 2 GPUs; its 2-GPU job would take it to 3, so it may only borrow (s,
    # whose low-priority job waits too, is further below its share: 1 / 4 against v's
    # 1 / 2), and the one free slot is too few. n is at its quota and borrows too: its long
    # job would hold the slot that v's job needs at NOW + 100; its short one ends before.
    teams = {
        "v": TeamState("v", weight=2, max_gpus=2),
        "n": TeamState("n", weight=1, max_gpus=1),
        "s": TeamState("s", weight=4),
    }
    busy = [
        running("v1", "w0", (0,), team="v", ends_in=100),
        running("n1", "w0", (1,), team="n", ends_in=5000),
        running("s1", "w0", (2,), team="s", ends_in=5000),
    ]
    jobs = [
        pending("v-big", "v", slots=2, age=30),
        pending("n-long", "n", age=20, runtime=5000),
        pending("n-short", "n", age=10, runtime=50),
        pending("s-low", "s", slots=2, priority=0),
    ]
    result = plan(jobs, busy, teams, workers(4), NOW)
    assert [(p.job_id, p.borrowed) for p in result.placements] == [("n-short", True)]
    assert result.waits["v-big"].reason_code == "quota"
    assert result.waits["n-long"].reason_code == "quota"


def test_a_team_furthest_below_its_share_starts_a_job_that_takes_it_over_its_quota() -> None:
    # v holds 3 of its 4 GPUs; its 2-GPU job would take it to 5. Its share, (3 + 0) / 2 =
    # 1.5, is the lowest of the teams with waiting jobs (n: (0 + 3) / 1; h is held and does
    # not count), so the job starts as if within quota, ahead of n's jobs within n's quota.
    teams = {
        "v": TeamState("v", weight=2, max_gpus=4),
        "n": TeamState("n", weight=1, max_gpus=2, usage=3.0),
        "h": TeamState("h", weight=1, held=True),
    }
    busy = [
        running("v1", "w0", (0,), team="v", checkpoint_age=100),
        running("v2", "w0", (1,), team="v", checkpoint_age=200),
        running("v3", "w0", (2,), team="v", checkpoint_age=300),
    ]
    jobs = [
        pending("v-big", "v", slots=2, age=30),
        pending("n1", "n", age=20),
        pending("n2", "n", age=10),
        pending("h1", "h", age=40),
    ]
    result = plan(jobs, busy, teams, workers(3, 2), NOW)
    assert [(p.job_id, p.worker, p.borrowed) for p in result.placements] == [("v-big", "w1", False)]
    # v now holds one GPU beyond its quota: n, within its own, may reclaim that one.
    assert [(p.victim_id, p.for_job_id) for p in result.preemptions] == [("v1", "n1")]
    assert result.waits["n2"].reason_code == "fair_share"


def test_a_job_that_takes_its_team_over_its_quota_borrows_when_others_are_further_below() -> None:
    # As above, but v has used 2 GPUs of late, n nothing: even once n's jobs run, n's share
    # (2 + 0) / 1 is below v's (3 + 2) / 2, so v's job only borrows and n's jobs take the
    # free GPUs within n's quota. And a team that may not borrow never goes over its
    # quota, however far below its share it is.
    busy = [
        running("v1", "w0", (0,), team="v"),
        running("v2", "w0", (1,), team="v"),
        running("v3", "w0", (2,), team="v"),
    ]
    jobs = [pending("v-big", "v", slots=2, age=30), pending("n1", "n"), pending("n2", "n")]
    for n_usage, v_borrows in ((0.0, True), (3.0, False)):
        teams = {
            "v": TeamState("v", weight=2, max_gpus=4, can_borrow=v_borrows, usage=2.0),
            "n": TeamState("n", weight=1, max_gpus=2, usage=n_usage),
        }
        result = plan(jobs, busy, teams, workers(3, 2), NOW)
        assert sorted(p.job_id for p in result.placements) == ["n1", "n2"]
        assert result.waits["v-big"].reason_code == "quota"


def test_a_team_short_of_quota_reclaims_for_a_job_that_takes_it_over_when_fairer() -> None:
    # v holds 1 of 2 and waits with a 2-GPU job; n holds 3 against a quota of 1. With the
    # job v's share is (1 + 2) / 2 = 1.5; n keeps 2 / 1 = 2 after each victim: fairer.
    teams = {"v": TeamState("v", weight=2, max_gpus=2), "n": TeamState("n", weight=1, max_gpus=1)}
    busy = [
        running("v1", "w0", (0,), team="v"),
        running("n1", "w0", (1,), team="n", checkpoint_age=900),
        running("n2", "w0", (2,), team="n", borrowed=True, checkpoint_age=10),
        running("n3", "w0", (3,), team="n", borrowed=True, checkpoint_age=20),
    ]
    result = plan([pending("v-big", "v", slots=2)], busy, teams, workers(4), NOW)
    assert [(p.victim_id, p.for_job_id) for p in result.preemptions] == [
        ("n2", "v-big"),
        ("n3", "v-big"),
    ]
    assert all("beyond its quota" in p.reason for p in result.preemptions)
    assert result.waits["v-big"].reason_code == "priority"
    assert "checkpointing" in result.waits["v-big"].reason


def test_a_team_short_of_quota_does_not_reclaim_where_that_is_less_fair() -> None:
    # n holds only 1 beyond its quota: without a victim it keeps 1 / 1 = 1, less than v's
    # 1.5 with its job, so n's GPUs stay where they are (v would just take them back and
    # forth with n otherwise).
    teams = {
        "v": TeamState("v", weight=2, max_gpus=2),
        "n": TeamState("n", weight=1, max_gpus=1),
        "s": TeamState("s"),
    }
    busy = [
        running("v1", "w0", (0,), team="v"),
        running("n1", "w0", (1,), team="n", borrowed=True),
        running("n2", "w0", (2,), team="n"),
        running("s1", "w0", (3,), team="s"),
    ]
    result = plan([pending("v-big", "v", slots=2)], busy, teams, workers(4), NOW)
    assert result.preemptions == []
    # (v, alone in waiting and so furthest below its share, may cross its quota with the
    # job: it waits for free GPUs, not for its quota.)
    assert result.waits["v-big"].reason_code == "no_free_gpu"


def test_a_job_that_finds_no_victims_does_not_stop_a_smaller_one_behind_it() -> None:
    # The 2-slot jobs find one low-priority victim only (the other job is their own team's);
    # the 1-slot job behind them, of the same team and priority, still gets it.
    busy = [
        running("low", "w0", (0,), team="b", priority=0),
        running("mine", "w0", (1,), team="a"),
    ]
    jobs = [
        pending("a1", "a", slots=2, age=30),
        pending("a2", "a", slots=2, age=20),
        pending("a3", "a", slots=1, age=10),
    ]
    result = plan(jobs, busy, {}, workers(2), NOW)
    assert [(p.victim_id, p.for_job_id) for p in result.preemptions] == [("low", "a3")]
