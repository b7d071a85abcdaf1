"""suites/pool.py: how many guests a run starts, the order their cases are handed out
and recorded in, and what happens when recording fails. The guests themselves are
real in test_e2e_x86_64.py (--guests 1 against --guests 2); here the runners are
stand-ins that only say which job they were given."""
import threading
import time

import pytest

from orchestrator.suites import pool
from orchestrator.suites.runner import CaseSpec


def test_memory_values_as_qemu_writes_them():
    assert pool.memory_mb("1G") == 1024
    assert pool.memory_mb("512M") == 512
    assert pool.memory_mb("2048") == 2048
    assert pool.memory_mb("1.5g") == 1536


def test_default_is_one_guest_per_core_and_never_more_than_cases():
    n, why = pool.default_guests("1G", cases=1000)
    import os
    assert 1 <= n <= min(len(os.sched_getaffinity(0)), pool.MAX_GUESTS)
    assert "cores" in why and "MiB per guest" in why
    assert pool.default_guests("1G", cases=1)[0] == 1
    # a guest bigger than the host's memory: still one, never zero
    assert pool.default_guests("100000G", cases=10)[0] == 1


class _Stub:
    def __init__(self, name):
        self.name = name
        self.killed = False

    def kill(self):
        self.killed = True


def _jobs(n):
    return [pool.Job(i, CaseSpec(f"s/{i}.tc", "s", f"/x/{i}.tc")) for i in range(1, n + 1)]


def test_every_job_runs_once_and_a_long_one_holds_only_its_guest():
    runners = [_Stub("a"), _Stub("b")]
    ran: list[tuple[str, int]] = []

    def run_one(runner, job):
        time.sleep(0.6 if job.index == 1 else 0.01)   # case 1 is the long one
        return [job.index]

    def record(runner, job, results):
        ran.append((runner.name, job.index))

    pool.run_pool(runners, _jobs(12), run_one, record)
    assert sorted(i for _, i in ran) == list(range(1, 13))
    long_guest = next(name for name, i in ran if i == 1)
    # while case 1 ran, the other guest took every other case
    assert [name for name, _ in ran].count(long_guest) == 1


def test_a_failing_record_stops_the_pool_and_is_raised_and_guests_are_killed():
    runners = [_Stub("a"), _Stub("b")]
    recorded = []

    def run_one(runner, job):
        time.sleep(0.02)
        return [job.index]

    def record(runner, job, results):
        if len(recorded) == 3:
            raise OSError(28, "No space left on device")
        recorded.append(job.index)

    with pytest.raises(OSError, match="No space left"):
        pool.run_pool(runners, _jobs(20), run_one, record)
    assert len(recorded) == 3 and all(r.killed for r in runners)
    assert not [t for t in threading.enumerate() if t.name.startswith("guest-")]


def test_an_exception_in_a_guest_thread_reaches_the_caller():
    def run_one(runner, job):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        pool.run_pool([_Stub("a")], _jobs(3), run_one, lambda *a: None)


def test_console_logs_of_further_guests_are_joined_under_a_header(tmp_path):
    (tmp_path / "console.log").write_bytes(b"first guest\n")
    (tmp_path / pool.console_name(2)).write_bytes(b"second guest\n")
    pool.join_console_logs(tmp_path, 2)
    text = (tmp_path / "console.log").read_text()
    assert text.startswith("first guest\n")
    assert "==== orchestrator: the console of guest g2 ====\nsecond guest\n" in text
    assert not (tmp_path / pool.console_name(2)).exists()
