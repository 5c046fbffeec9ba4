"""One run per sweep: the lock in the sweep's state folder, with real processes holding it and dying."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sweeps.lock import LOCK_FILE, STALE_AFTER_S, UNREADABLE_STALE_S, SweepLock, SweepLocked
from sweeps.spec import parse_spec
from sweeps.state import SweepState
from svconv.cli_logging import configure_logging

ROOT = Path(__file__).resolve().parent.parent
SPEC = textwrap.dedent(
    """\
    name: locked
    fixed: {arch: small-cnn, dataset: synthetic, epochs: 1, n_train: 64, n_test: 32, emp_lip_n: 8}
    grid:
      seed: [0, 1]
    """
)
#: A process that takes the sweep's lock as a run does, says so, and waits to be killed.
HOLDER = textwrap.dedent(
    """\
    import sys, time
    from sweeps.lock import SweepLock
    lock = SweepLock(sys.argv[1], "locked", "svconv sweep run").acquire()
    print("locked", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def sweep(tmp_path):
    """A saved sweep (sweep.json) with Tune state to lose, and its spec file."""
    spec_file = tmp_path / "locked.yaml"
    spec_file.write_text(SPEC)
    storage = tmp_path / "state"
    state = SweepState.from_spec(parse_spec(SPEC, str(spec_file)), tmp_path / "results", storage)
    state.save()
    (state.tune_dir).mkdir()
    (state.tune_dir / "experiment_state.json").write_text("{}")  # what a second run used to delete
    return spec_file, storage, state


def _hold(root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _svconv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svconv_cli.main", "sweep", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_second_run_or_resume_is_refused_while_a_live_run_holds_the_sweep(sweep):
    spec_file, storage, state = sweep
    holder = _hold(state.root)
    try:
        for args in (["run", str(spec_file)], ["resume", "locked"]):
            done = _svconv(*args, "--storage", str(storage), "--no-progress")
            assert done.returncode == 2, done.stderr
            assert "sweep 'locked' is already running" in done.stderr
            assert f"pid {holder.pid} on host {socket.gethostname()}" in done.stderr and "svconv sweep run" in done.stderr
            assert "Traceback" not in done.stderr
        assert (state.tune_dir / "experiment_state.json").is_file()  # the live run's state is untouched
        assert json.loads((state.root / LOCK_FILE).read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_recovered_with_a_warning(sweep, capsys):
    _, _, state = sweep
    configure_logging()  # as the CLI does: the lock's warning on stderr
    holder = _hold(state.root)
    holder.send_signal(signal.SIGKILL)  # kill -9: no chance to release
    holder.wait()
    assert (state.root / LOCK_FILE).is_file()
    with SweepLock(state.root, "locked", "test") as lock:
        assert json.loads((state.root / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(SweepLocked, match=f"pid {os.getpid()}"):  # held now, by a live process
            SweepLock(state.root, "locked", "again").acquire()
        assert lock.holder is not None
    err = capsys.readouterr().err
    assert f"warning: recovered the lock of sweep 'locked' left by pid {holder.pid}" in err
    assert f"its process {holder.pid} no longer exists" in err
    assert not (state.root / LOCK_FILE).exists()  # released on exit


def test_a_lock_from_another_host_is_stale_only_once_its_heartbeat_stops(tmp_path, capsys):
    configure_logging()
    lock_file = tmp_path / LOCK_FILE
    other = {"host": "node-b", "pid": 4242, "started": "2026-01-01T00:00:00+00:00", "command": "svconv sweep run",
             "proc_start": None}
    lock_file.write_text(json.dumps(other))  # just written: its heartbeat is fresh
    with pytest.raises(SweepLocked, match="pid 4242 on host node-b"):
        SweepLock(tmp_path, "x", "test").acquire()
    old = time.time() - STALE_AFTER_S - 60
    os.utime(lock_file, (old, old))
    lock = SweepLock(tmp_path, "x", "test").acquire()
    lock.release()
    assert "its heartbeat is 11 min old" in capsys.readouterr().err


def test_release_leaves_a_lock_that_is_not_ours(tmp_path):
    lock = SweepLock(tmp_path, "x", "test").acquire()
    theirs = {"host": "node-b", "pid": 7, "started": "now", "command": "svconv sweep resume", "proc_start": None}
    (tmp_path / LOCK_FILE).write_text(json.dumps(theirs))  # e.g. recovered by another host meanwhile
    lock.release()
    assert json.loads((tmp_path / LOCK_FILE).read_text()) == theirs


@pytest.mark.parametrize("content", ["", '{"host": "node-b", "pi'])
def test_an_unreadable_lock_blocks_only_for_a_few_seconds(tmp_path, capsys, content):
    # A writer killed between creating and writing the lock (older code) left it empty or cut short.
    lock_file = tmp_path / LOCK_FILE
    lock_file.write_text(content)
    with pytest.raises(SweepLocked, match="unreadable lock file"):  # fresh: it may be being written
        SweepLock(tmp_path, "x", "test").acquire()
    old = time.time() - UNREADABLE_STALE_S - 1
    os.utime(lock_file, (old, old))
    lock = SweepLock(tmp_path, "x", "test").acquire()
    assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    lock.release()
    assert "cannot be read (empty or damaged)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no temporary file left beside it


def test_the_lock_file_is_never_seen_empty(tmp_path):
    # Written whole under a temporary name, then linked: a reader sees no file or the whole holder.
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """\
            import json, sys, time
            from pathlib import Path
            p = Path(sys.argv[1]) / "lock.json"
            seen = 0
            end = time.time() + 60
            while seen < 100 and time.time() < end:
                try:
                    text = p.read_text()
                except FileNotFoundError:
                    continue
                json.loads(text)  # an empty or half-written lock raises here
                seen += 1
            print(seen)
            """), str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    while reader.poll() is None:
        SweepLock(tmp_path, "x", "test").acquire().release()
    assert reader.returncode == 0 and int(reader.stdout.read()) > 0
