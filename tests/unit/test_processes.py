"""ManagedProcess, wait_until, Supervisor and the run registry's reaper, with real small processes.

PID 1 on the test machines may not reap orphans, so a killed grandchild can linger as a
zombie; ``is_running`` counts zombies as gone, and so do these tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_kuberay._support.processes import (
    ManagedProcess,
    Supervisor,
    is_running,
    process_started_at,
    wait_until,
)
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local import run_registry
from pytest_kuberay.providers.local.run_registry import RecordedProcess, RunRecord, RunState


def _bash(name: str, script: str, tmp_path: Path) -> ManagedProcess:
    return ManagedProcess(name, ["bash", "-c", textwrap.dedent(script)], tmp_path / f"{name}.log", cwd=tmp_path)


def _printed(proc: ManagedProcess, line: str) -> bool:
    """True once the process printed ``line`` (the log's header line also names the command, so match whole lines)."""
    return line in proc.tail(50).splitlines()


def _eventually(check: object, timeout: float = 5.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition did not hold in time"
        time.sleep(0.02)


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor()
    yield sup
    sup.stop(grace=0.5)


# ---------------------------------------------------------------------------------- ManagedProcess


def test_runs_in_its_own_process_group_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", ["sleep", "60"], tmp_path / "sleeper.log").start()
    try:
        assert proc.alive()
        assert os.getpgid(proc.pid) == proc.pid
        assert os.getsid(proc.pid) == proc.pid
        assert proc.started_at == process_started_at(proc.pid)
    finally:
        code = proc.stop(grace=5)
    assert code == -signal.SIGTERM
    assert not proc.alive()
    assert not is_running(proc.pid)
    assert proc.exit_code == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    proc = _bash(
        "stubborn",
        """
        trap '' TERM
        echo ready
        while true; do sleep 0.05; done
        """,
        tmp_path,
    ).start()
    _eventually(lambda: _printed(proc, "ready"))
    started = time.monotonic()
    code = proc.stop(grace=0.5)
    took = time.monotonic() - started
    assert code == -signal.SIGKILL
    assert 0.5 <= took < 5
    assert not is_running(proc.pid)


def test_stop_also_kills_a_grandchild_that_survives_sigterm(tmp_path: Path) -> None:
    """The leader exits on SIGTERM, its child ignores it: the group SIGKILL after the grace still reaches it."""
    proc = _bash(
        "parent",
        """
        (trap '' TERM; exec sleep 300) &
        echo $! > grandchild.pid
        wait
        """,
        tmp_path,
    ).start()
    _eventually(lambda: (tmp_path / "grandchild.pid").is_file() and (tmp_path / "grandchild.pid").read_text().strip())
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert os.getpgid(grandchild) == proc.pid
    assert is_running(grandchild)
    proc.stop(grace=0.5)
    _eventually(lambda: not is_running(grandchild))
    assert not is_running(proc.pid)


def test_tail_returns_the_last_lines_of_the_log(tmp_path: Path) -> None:
    proc = _bash("counter", "for i in $(seq 1 500); do echo line $i; done; echo oops >&2", tmp_path).start()
    _eventually(lambda: not proc.alive())
    assert proc.exit_code == 0
    assert proc.tail(3).splitlines() == ["line 499", "line 500", "oops"]
    assert proc.log_path.read_text().startswith("# ")  # the command line heads the log


def test_env_and_cwd_are_passed(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "env", ["bash", "-c", 'echo "$MARK $(pwd)"'], tmp_path / "env.log", env={"MARK": "here"}, cwd=tmp_path
    ).start()
    _eventually(lambda: not proc.alive())
    assert proc.tail(1) == f"here {tmp_path}"


def test_a_missing_binary_is_a_provider_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="cannot start ghost"):
        ManagedProcess("ghost", [str(tmp_path / "no-such-binary")], tmp_path / "ghost.log").start()


def test_children_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a SIGKILLed pytest leaves no component behind."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from pytest_kuberay._support.processes import ManagedProcess
        proc = ManagedProcess("orphan-to-be", ["sleep", "300"], Path({str(tmp_path)!r}) / "o.log").start()
        print(proc.pid, flush=True)
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert is_running(child)
    finally:
        parent.kill()
        parent.wait()
    _eventually(lambda: not is_running(child))


# ---------------------------------------------------------------------------------- wait_until


def test_wait_until_returns_the_value_once_it_holds(tmp_path: Path) -> None:
    calls = iter([0, 1, 2, 3])
    assert wait_until(lambda: next(calls), condition=lambda n: n >= 2, timeout=5, what="n", interval=0.01) == 2


def test_wait_until_stops_at_once_when_a_watched_process_exits(tmp_path: Path) -> None:
    proc = _bash("crasher", "echo 'bind: address already in use'; exit 3", tmp_path).start()
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        wait_until(lambda: False, timeout=30, what="the crasher to be ready", processes=[proc], interval=0.05)
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert "crasher" in message and "exited with status 3" in message
    assert "the crasher to be ready" in message
    assert "address already in use" in message
    proc.stop()


def test_wait_until_timeout_says_what_and_shows_the_log_tail(tmp_path: Path, supervisor: Supervisor) -> None:
    proc = supervisor.start(_bash("slowpoke", "echo still warming up; sleep 60", tmp_path))
    _eventually(lambda: _printed(proc, "still warming up"))
    with pytest.raises(ProviderError) as err:
        wait_until(
            lambda: "503",
            condition=lambda body: body == "ok",
            timeout=0.3,
            what="slowpoke /readyz",
            processes=[proc],
            interval=0.05,
        )
    message = str(err.value)
    assert "slowpoke /readyz" in message
    assert "'503'" in message  # the last value seen
    assert "still warming up" in message


# ---------------------------------------------------------------------------------- Supervisor


def test_supervisor_stops_in_reverse_start_order(tmp_path: Path) -> None:
    order = tmp_path / "order"
    started: list[ManagedProcess] = []
    sup = Supervisor(on_start=started.append)
    for name in ("first", "second", "third"):
        sup.start(
            _bash(
                name,
                f"""
                trap 'echo {name} >> {order}; exit 0' TERM
                echo up
                while true; do sleep 0.05; done
                """,
                tmp_path,
            )
        )
    for proc in started:
        _eventually(lambda p=proc: _printed(p, "up"))
    assert [p.name for p in started] == ["first", "second", "third"]
    sup.stop(grace=5)
    assert order.read_text().split() == ["third", "second", "first"]
    assert sup.processes == []
    assert not any(is_running(p.pid) for p in started)


# ---------------------------------------------------------------------------------- run registry reaper


def _detached(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A process of a 'crashed' run: own session, not tied to us by PDEATHSIG."""
    return subprocess.Popen(list(argv), start_new_session=True, env={**os.environ, **(env or {})})


def test_reaper_kills_recorded_processes_of_a_dead_owner_but_never_a_reused_pid(tmp_path: Path) -> None:
    ours = _detached("sleep", "300")
    stranger = _detached("sleep", "300")  # stands for a process that reused a recorded PID
    marked = _detached("sleep", "300", env=run_registry.marker_env("dead-run"))  # unrecorded, but carries the marker
    try:
        run_dir = tmp_path / "dead-run"
        run_dir.mkdir()
        state = RunState(
            run_id="dead-run",
            owner_pid=os.getpid(),
            owner_started_at=1,  # this PID belongs to someone else now: the owner is gone
            boot_id=run_registry.boot_id(),
            created=time.time(),
            processes=[
                RecordedProcess("ours", ours.pid, process_started_at(ours.pid)),
                RecordedProcess("reused", stranger.pid, (process_started_at(stranger.pid) or 0) - 1),
            ],
        )
        RunRecord(run_dir, state).save()
        live_dir = tmp_path / "live-run"
        live_dir.mkdir()
        live = RunState("live-run", os.getpid(), process_started_at(os.getpid()), run_registry.boot_id(), time.time())
        RunRecord(live_dir, live).save()

        reaped = run_registry.reap_stale_runs(tmp_path)

        assert [r.run_id for r in reaped] == ["dead-run"]
        assert f"process ours (pid {ours.pid})" in reaped[0].removed
        assert ours.wait(timeout=5) == -signal.SIGKILL
        assert marked.wait(timeout=5) == -signal.SIGKILL
        assert stranger.poll() is None, "a PID whose start time does not match must not be killed"
        assert not run_dir.exists()
        assert live_dir.exists() and json.loads((live_dir / "state.json").read_text())["run_id"] == "live-run"
    finally:
        for proc in (ours, stranger, marked):
            proc.kill()
            proc.wait()


def test_new_run_records_its_owner_and_processes(tmp_path: Path) -> None:
    run = run_registry.new_run(tmp_path)
    assert run.run_dir.parent == tmp_path
    assert run.state.owner_alive()
    proc = ManagedProcess("sleeper", ["sleep", "60"], run.run_dir / "s.log").start()
    try:
        run.add_process(proc)
        run.set_network("pkr-none")
        run.set_cgroup_root("/pytest-kuberay/none")
        saved = RunRecord.load(run.run_dir).state
        assert (saved.network, saved.cgroup_root) == ("pkr-none", "/pytest-kuberay/none")
        assert saved.processes == [RecordedProcess("sleeper", proc.pid, proc.started_at)]
        assert run_registry.reap_stale_runs(tmp_path) == []  # our own run is alive
    finally:
        proc.stop()
    run.forget_processes([proc.pid])
    assert RunRecord.load(run.run_dir).state.processes == []


def test_a_process_started_from_a_short_lived_thread_outlives_that_thread(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG is per thread: without the spawner thread, an operator restarted from a trigger
    thread died as soon as the trigger finished (seen in the operator-restart suite)."""
    import threading

    proc = ManagedProcess("sleeper", ["sleep", "30"], tmp_path / "sleep.log")
    starter = threading.Thread(target=proc.start)
    starter.start()
    starter.join()
    time.sleep(0.5)
    try:
        assert proc.alive(), "the child died with the thread that started it"
    finally:
        proc.stop(grace=2)
