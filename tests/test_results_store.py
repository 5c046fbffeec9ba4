"""The results store on real Parquet files: damaged files skipped and listed, stale temporary files
removed, the compacted copy kept exact as files are added, rewritten, removed or damaged, and an
unwritable results folder refused by every command before anything starts."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from svconv.results import check_writable, damaged_files, read_table, read_table_checked, write_rows
from svconv.results import compact
from svconv.results.schema import schema_for
from svconv.results.store import STALE_TMP_S
from svconv_cli.main import main as svconv_main


def _trial(results: Path, tid: str, acc: float = 90.0) -> Path:
    return write_rows(results, "trials", tid, [{"trial_id": tid, "sweep": "s", "status": "ok", "clean_acc": acc}])


def _damage(results: Path) -> tuple[Path, Path]:
    """A zero-byte trials file and a truncated one (the first 100 bytes of a good file)."""
    empty = results / "trials" / "empty.parquet"
    empty.write_bytes(b"")
    truncated = results / "trials" / "cut.parquet"
    truncated.write_bytes(_trial(results, "cut").read_bytes()[:100])
    return empty, truncated


def test_damaged_files_are_skipped_and_listed(tmp_path):
    for i in range(3):
        _trial(tmp_path, f"t{i}", 80.0 + i)
    empty, truncated = _damage(tmp_path)

    frame, damaged = read_table_checked(tmp_path, "trials")
    assert sorted(frame["trial_id"]) == ["t0", "t1", "t2"] and list(frame.columns) == schema_for("trials").names
    assert {(d.table, d.file_id, d.path) for d in damaged} == {("trials", "empty", empty), ("trials", "cut", truncated)}
    reasons = {d.file_id: d.reason for d in damaged}
    assert "0 bytes" in reasons["empty"] and "Parquet" in reasons["cut"]

    with pytest.warns(UserWarning, match="2 damaged results file"):
        assert len(read_table(tmp_path, "trials")) == 3
    assert {d.file_id for d in damaged_files(tmp_path)} == {"empty", "cut"}

    _trial(tmp_path, "cut")  # the trial ran again: its new file replaces the damaged one
    assert {d.file_id for d in damaged_files(tmp_path)} == {"empty"}


def test_a_file_whose_columns_do_not_match_is_damaged_not_fatal(tmp_path):
    _trial(tmp_path, "good")
    bad = tmp_path / "trials" / "bad.parquet"
    pq.write_table(pa.table({"trial_id": ["bad"], "clean_acc": ["not a number"]}), bad)
    frame, damaged = read_table_checked(tmp_path, "trials")
    assert list(frame["trial_id"]) == ["good"]
    assert [d.path for d in damaged] == [bad] and "schema" in damaged[0].reason


def test_a_file_of_an_older_version_reads_with_new_columns_null(tmp_path):
    (tmp_path / "trials").mkdir()
    pq.write_table(pa.table({"trial_id": ["old"], "status": ["ok"]}), tmp_path / "trials" / "old.parquet")
    frame, damaged = read_table_checked(tmp_path, "trials")
    assert damaged == [] and frame.loc[0, "trial_id"] == "old" and pd.isna(frame.loc[0, "clean_acc"])


def test_stale_temporary_files_of_killed_writers_are_removed(tmp_path):
    _trial(tmp_path, "a")
    folder = tmp_path / "trials"
    old = time.time() - STALE_TMP_S - 60
    stale_a = folder / ".a.0123.tmp"  # a killed writer of trial a
    stale_b = folder / ".b.4567.tmp"  # a killed writer of trial b
    live = folder / ".c.89ab.tmp"  # a writer at work right now
    for p in (stale_a, stale_b, live):
        p.write_bytes(b"PAR1 partial")
    for p in (stale_a, stale_b):
        os.utime(p, (old, old))

    _trial(tmp_path, "a")  # a writer removes its own id's leftovers
    assert not stale_a.exists() and stale_b.exists() and live.exists()
    frame, damaged = read_table_checked(tmp_path, "trials")  # a reader removes every stale one, never a live one
    assert not stale_b.exists() and live.exists()
    assert list(frame["trial_id"]) == ["a"] and damaged == []


def test_writes_leave_only_the_final_file(tmp_path):
    path = _trial(tmp_path, "x")
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.parquet"]
    with pytest.raises(ValueError, match="not in the results schema"):
        write_rows(tmp_path, "trials", "x", [{"trial_id": "x", "no_such_column": 1}])
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.parquet"]


def _rows(results: Path) -> pd.DataFrame:
    frame, _ = read_table_checked(results, "trials")
    return frame[["trial_id", "clean_acc"]].sort_values("trial_id").reset_index(drop=True)


def _direct(results: Path) -> pd.DataFrame:
    """The same rows read file by file, without the store."""
    frames = []
    for p in sorted((results / "trials").glob("*.parquet")):
        try:
            frames.append(pq.read_table(p).to_pandas()[["trial_id", "clean_acc"]])
        except (pa.ArrowException, OSError):
            pass
    return pd.concat(frames).sort_values("trial_id").reset_index(drop=True)


def test_compacted_copy_follows_every_change_of_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(compact, "COMPACT_MIN", 4)
    cache = tmp_path / "trials" / compact.CACHE_DIR / "rows.parquet"
    for i in range(6):
        _trial(tmp_path, f"t{i}", float(i))
    pd.testing.assert_frame_equal(_rows(tmp_path), _direct(tmp_path))
    assert cache.is_file()  # six files read one by one: compacted

    _trial(tmp_path, "t2", 42.0)  # rewritten (a re-run trial)
    (tmp_path / "trials" / "t4.parquet").unlink()  # removed
    _trial(tmp_path, "t9", 9.0)  # added
    (tmp_path / "trials" / "zero.parquet").write_bytes(b"")  # damaged: never compacted, listed every time
    for _ in range(2):
        pd.testing.assert_frame_equal(_rows(tmp_path), _direct(tmp_path))
        assert _rows(tmp_path).set_index("trial_id")["clean_acc"].to_dict() == {
            "t0": 0.0, "t1": 1.0, "t2": 42.0, "t3": 3.0, "t5": 5.0, "t9": 9.0}  # fmt: skip
        assert [d.file_id for d in read_table_checked(tmp_path, "trials")[1]] == ["zero"]

    cache.write_bytes(b"garbage")  # the copy is a cache: a damaged one is ignored and rebuilt
    pd.testing.assert_frame_equal(_rows(tmp_path), _direct(tmp_path))
    assert pq.read_table(cache).num_rows == 6


def test_a_read_only_results_folder_is_read_without_its_compacted_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(compact, "COMPACT_MIN", 1)
    _trial(tmp_path, "a")
    monkeypatch.setattr(compact, "CACHE_DIR", "no/such/folder")  # the copy cannot be written there
    assert list(_rows(tmp_path)["trial_id"]) == ["a"]


# -- an unwritable results folder is refused before anything starts --------------------------------


def _unwritable_cases(tmp_path: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [(a_file, "is an existing file"), (a_file / "sub", "Not a directory")]
    if sys.platform == "linux" and Path("/sys/kernel").is_dir():
        cases.append((Path("/sys/kernel/svconv-results"), "not writable"))  # sysfs: refused even to root
    return cases


def test_check_writable_creates_the_folder_and_names_the_reason(tmp_path):
    assert check_writable(tmp_path / "new" / "results") == tmp_path / "new" / "results"
    assert list((tmp_path / "new" / "results").iterdir()) == []  # the probe file is gone
    for path, why in _unwritable_cases(tmp_path):
        with pytest.raises(ValueError, match="is not writable") as exc:
            check_writable(path)
        assert str(path) in str(exc.value) and why in str(exc.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a read-only folder")
def test_check_writable_refuses_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="Permission denied"):
            check_writable(ro)
    finally:
        ro.chmod(0o700)


def test_train_refuses_an_unwritable_results_folder_before_training(tmp_path, capsys):
    for path, why in _unwritable_cases(tmp_path):
        # epochs 1000 on a CPU: the test would time out if training started before the check
        code = svconv_main(["train", "--dataset", "synthetic", "--device", "cpu", "--epochs", "1000", "--results", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and "is not writable" in err and why in err and "Traceback" not in err


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "w.yaml"
    spec.write_text(textwrap.dedent("""\
        name: writable-check
        fixed: {arch: small-cnn, dataset: synthetic, n_train: 64, n_test: 32, epochs: 1, device: cpu}
        grid:
          seed: [0, 1]
        resources: {cpus: 1, gpus: 0}
        """))  # fmt: skip
    return spec


def test_sweep_run_and_resume_refuse_an_unwritable_results_folder_before_ray_starts(tmp_path, capsys):
    from sweeps.spec import load_spec
    from sweeps.state import SweepState

    storage = tmp_path / "storage"
    for path, why in _unwritable_cases(tmp_path):
        code = svconv_main(["sweep", "run", str(_spec(tmp_path)), "--results", str(path), "--storage", str(storage),
                            "--no-progress"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "is not writable" in err and why in err
        assert not (storage / "writable-check" / "tune").exists()  # nothing started
        # a saved sweep whose results folder became unwritable
        SweepState.from_spec(load_spec(_spec(tmp_path)), path, storage).save()
        code = svconv_main(["sweep", "resume", "writable-check", "--storage", str(storage), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "is not writable" in err and why in err
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()


def test_sweep_status_counts_a_damaged_trials_file_as_unreadable(tmp_path, capsys):
    from sweeps.spec import load_spec
    from sweeps.state import SweepState
    from sweeps.status import sweep_status

    storage, results = tmp_path / "storage", tmp_path / "results"
    state = SweepState.from_spec(load_spec(_spec(tmp_path)), results, storage)
    state.save()
    good, bad = (t["trial_id"] for t in state.trials)
    write_rows(results, "trials", good, [{"trial_id": good, "sweep": state.name, "status": "ok"}])
    (results / "trials" / f"{bad}.parquet").write_bytes(b"")  # its writer was killed mid-write

    status = sweep_status(state.name, storage)
    assert status.counts["ok"] == 1 and status.counts["unreadable"] == 1 and not status.complete
    assert svconv_main(["sweep", "status", state.name, "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "unreadable: 1" in out and bad in out and "0 bytes" in out
