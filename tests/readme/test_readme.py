"""Every snippet of the README runs as written, in order, against a real ``tunepool up``.

``make test`` runs the quick ones; ``make readme`` runs them all, the real fine-tunes of
MiniLM and SmolLM2 of the ``slow`` ones included. Snippets marked ``not run`` say why
(``tests/readme/snippets.py`` has the conventions).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme.conftest import ROOT, Up
from tests.readme.snippets import (
    DONE,
    NOT_RUN,
    SLOW,
    STARTED,
    ReadmeError,
    Snippet,
    numbers,
    read_snippets,
    script,
)

README = ROOT / "README.md"
# Whole runs: the quick snippets take 15 s on 2 idle cores, all of them about 15 minutes;
# a machine shared with other work may take several times that.
QUICK_TIMEOUT_S = 240
FULL_TIMEOUT_S = 3 * 3600


def run_in_order(chosen: list[Snippet], up: Up, reader_dir: Path, timeout_s: float) -> None:
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"the README's snippets need {tool}")
            pytest.skip(f"the README's snippets need {tool}")
    # What a reader's terminal would show as a failure: an HTTP error answer (4xx/5xx)
    # fails its curl command, and so the snippet, with the API's message printed.
    curl_home = reader_dir.parent / "curl-home"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text("--fail-with-body\n--silent\n--show-error\n")
    env = {**up.env, "CURL_HOME": str(curl_home)}
    path = reader_dir.parent / "readme.sh"
    path.write_text(script(chosen, sys.executable))
    log = reader_dir.parent / "readme.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(path)],
            cwd=reader_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        finally:  # timed out or interrupted: the script's whole session goes
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    output = log.read_text(errors="replace")
    done, started = numbers(output, DONE), numbers(output, STARTED)
    expected = [s.number for s in chosen]
    if done != expected:
        stuck = next((s for s in chosen if s.number == started[-1]), None) if started else None
        tail = "\n".join(output.splitlines()[-60:])
        pytest.fail(
            f"{stuck or 'the script'} failed (exit {process.returncode}); ran {done} of "
            f"{expected}.\n--- its output, last lines ---\n{tail}\n"
            f"--- tunepool up: {up.log}, services' logs in {up.home / 'logs'}"
        )


def test_the_quick_snippets_run_as_written(tunepool_up: Up, reader_dir: Path) -> None:
    quick = [s for s in read_snippets(README.read_text()) if s.mark is None]
    assert len(quick) >= 5, "the README's quick snippets are the part `make test` checks"
    run_in_order(quick, tunepool_up, reader_dir, QUICK_TIMEOUT_S)


@pytest.mark.readme
def test_every_snippet_runs_as_written(request: pytest.FixtureRequest, reader_dir: Path) -> None:
    if not request.config.getoption("--readme"):
        pytest.skip("the slow snippets wait for real fine-tunes: `make readme` runs them")
    up: Up = request.getfixturevalue("tunepool_up")  # only now: `make test` starts none
    runnable = [s for s in read_snippets(README.read_text()) if s.mark != NOT_RUN]
    run_in_order(runnable, up, reader_dir, FULL_TIMEOUT_S)


def test_the_readme_parses_and_every_mark_says_why() -> None:
    found = read_snippets(README.read_text())
    marks = {s.mark for s in found}
    assert marks == {None, NOT_RUN, SLOW}
    assert all(s.reason for s in found if s.mark)


@pytest.mark.parametrize(
    ("markdown", "problem"),
    [
        ("```shell\nls\n```\n", "fence language 'shell'"),
        ("```\nls\n```\n", "fence language ''"),
        ("<!-- not run -->\n```sh\nls\n```\n", "a mark reads"),
        ("<!-- skip: slow -->\n```sh\nls\n```\n", "a mark reads"),
        ("<!-- slow: trains -->\n\n```sh\nls\n```\n", "right above a fence"),
        ("<!-- slow: trains -->\n```text\ntree\n```\n", "never run"),
        ("```sh\nls\n", "never closed"),
    ],
)
def test_a_snippet_cannot_escape_the_test_unseen(markdown: str, problem: str) -> None:
    with pytest.raises(ReadmeError, match=problem):
        read_snippets(markdown)


def test_the_script_runs_snippets_in_one_shell_and_stops_at_the_first_failure(
    tmp_path: Path,
) -> None:
    found = read_snippets(
        "```sh\nGREETING=hello\n```\n"
        "```python\nimport os\nprint('python', os.getcwd())\n```\n"
        "```bash\necho $GREETING\nfalse\necho never\n```\n"
        "```sh\necho after\n```\n"
    )
    result = subprocess.run(
        ["bash", "-c", script(found, sys.executable)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert numbers(result.stdout, DONE) == [1, 2]
    assert numbers(result.stdout, STARTED) == [1, 2, 3]
    assert f"python {tmp_path}" in result.stdout
    assert "hello" in result.stdout and "never" not in result.stdout


def test_a_variable_the_readme_never_defines_fails_its_snippet(tmp_path: Path) -> None:
    # The schedules example once sent -H "$AUTH", defined nowhere.
    found = read_snippets('```sh\ncurl -H "$AUTH" http://127.0.0.1:9/v1/schedules\n```\n')
    result = subprocess.run(
        ["bash", "-c", script(found, sys.executable)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert numbers(result.stdout, DONE) == []
    assert "AUTH: unbound variable" in result.stderr
