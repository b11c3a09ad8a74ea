"""The store's identity and integrity: a resume never mislabels or silently reads damaged
results. Reordered estimators are matched by name and reordered grids refused; an interrupted
growth or attribute change is completed; damaged chunks are named and recomputed to their
original bits; tampered metadata is refused; clustersim-check and clustersim-collect refuse a
damaged store in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from analysis.cli import check_main
from analysis.integrity import DamagedStore, verify_run
from estimators.presets import ConfigError
from estimators.result import Status
from helpers.cli import ALLOW_HELPERS
from sims.run.dataset import quiet_consolidated_metadata
from sims.run.lock import run_directory_lock
from sims.run.rundir import run_in_directory
from sims.run.store import RunStore

FAST = ("runner.n_jobs=1", "runner.chunk_size=5", "runner.progress=false")
TWO = "estimators={ols: ols, cr1: ols_cr1}"
TWO_REVERSED = "estimators={cr1: ols_cr1, ols: ols}"
FLAKY = "estimators={ols: ols, flaky: {_target_: helpers.misbehaving.FlakyOLS, threshold: 20.0}}"


def values(run_dir) -> xr.Dataset:
    """Everything but the timings and the attributes, loaded."""
    return xr.open_zarr(Path(run_dir) / "results.zarr").load().drop_vars("elapsed_s").drop_attrs()


def run(small_study, run_dir, *overrides) -> xr.Dataset:
    return run_in_directory(small_study(*FAST, *overrides), run_dir)


@pytest.fixture
def reference(small_study, tmp_path):
    """An uninterrupted run of 20 replicates of the two-estimator study."""
    run(small_study, tmp_path / "reference", "n_reps=20", TWO)
    return values(tmp_path / "reference")


def test_estimators_in_another_order_are_matched_by_name(small_study, tmp_path, reference):
    run(small_study, tmp_path / "run", "n_reps=10", TWO)
    run(small_study, tmp_path / "run", "n_reps=20", TWO_REVERSED)
    assert list(values(tmp_path / "run")["estimator"].values) == ["ols", "cr1"]
    xr.testing.assert_identical(values(tmp_path / "run"), reference)


@pytest.mark.parametrize("second, message", [
    (["grid.dgp.var_slope=[5,15.3]", "grid.dgp.n_subjects=[6,12]"], r"^grid: factors are \(var_slope, n_subjects\)"),
    (["grid.dgp.n_subjects=[12,6]", "grid.dgp.var_slope=[5,15.3]"], r"^grid.dgp.n_subjects: differs"),
])
def test_a_grid_in_another_order_is_refused(small_study, tmp_path, second, message):
    run(small_study, tmp_path, "n_reps=5", TWO, "grid.dgp.n_subjects=[6,12]", "grid.dgp.var_slope=[5,15.3]")
    with pytest.raises(ConfigError, match=message):
        run(small_study, tmp_path, "n_reps=10", TWO, *second)


def test_an_interrupted_growth_is_completed_on_resume(small_study, tmp_path, reference, monkeypatch):
    run(small_study, tmp_path, "n_reps=10", TWO)
    # kill the growth to 20 replicates after the first array is resized
    resize = zarr.Array.resize
    calls = []

    def resize_then_die(self, shape):
        resize(self, shape)
        calls.append(shape)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(zarr.Array, "resize", resize_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(small_study, tmp_path, "n_reps=20", TWO)
    monkeypatch.setattr(zarr.Array, "resize", resize)
    assert (tmp_path / "results.journal").exists()
    run(small_study, tmp_path, "n_reps=20", TWO)
    assert not (tmp_path / "results.journal").exists()
    xr.testing.assert_identical(values(tmp_path), reference)


def test_a_store_whose_creation_was_cut_short_is_created_anew(small_study, tmp_path, reference):
    run(small_study, tmp_path, "n_reps=20", TWO)
    (tmp_path / "results.progress").unlink()  # as if killed before the ledger's first line
    run(small_study, tmp_path, "n_reps=20", TWO)
    xr.testing.assert_identical(values(tmp_path), reference)


def chunk_file(run_dir: Path, variable: str, rep_chunk_index: int) -> Path:
    array = zarr.open_group(run_dir / "results.zarr", mode="r")[variable]
    coords = tuple(rep_chunk_index if d == "rep" else 0 for d in array.metadata.dimension_names)
    return run_dir / "results.zarr" / variable / array.metadata.encode_chunk_key(coords)


def delete(path: Path) -> None:
    path.unlink()


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:10])


def edit_value(run_dir: Path) -> None:
    group = zarr.open_group(run_dir / "results.zarr", mode="r+", use_consolidated=False)
    group["estimate"][0, 7, 1] = 99.0


@pytest.mark.parametrize("damage", ["delete", "truncate", "edit"])
def test_damaged_chunks_are_named_and_recomputed_to_their_original_bits(small_study, tmp_path, reference, damage,
                                                                         caplog):
    run(small_study, tmp_path, "n_reps=20", TWO)
    if damage == "edit":
        edit_value(tmp_path)
    else:
        {"delete": delete, "truncate": truncate}[damage](chunk_file(tmp_path, "estimate", 1))
    with pytest.raises(DamagedStore, match="1 damaged chunk.*cell 0 replicates 5-9"):
        verify_run(tmp_path)
    assert check_main([str(tmp_path)]) == 2
    with caplog.at_level("WARNING", logger="clustersim"):
        run(small_study, tmp_path, "n_reps=20", TWO)
    assert "1 damaged chunk(s)" in caplog.text and "cell 0 replicates 5-9" in caplog.text
    verify_run(tmp_path)
    xr.testing.assert_identical(values(tmp_path), reference)


def test_a_deleted_status_chunk_does_not_turn_failures_into_ok(small_study, tmp_path):
    run(small_study, tmp_path, "n_reps=20", FLAKY, ALLOW_HELPERS)
    before = values(tmp_path)
    flaky = before["status"].sel(estimator="flaky").values
    assert (flaky != Status.ok).any()
    chunk = int(np.flatnonzero(flaky != Status.ok)[0]) // 5
    delete(chunk_file(tmp_path, "status", chunk))
    with pytest.raises(DamagedStore, match="damaged chunk"):
        verify_run(tmp_path)
    run(small_study, tmp_path, "n_reps=20", FLAKY, ALLOW_HELPERS)
    xr.testing.assert_identical(values(tmp_path), before)


@pytest.mark.parametrize("what", ["truth", "config", "provenance"])
def test_tampered_metadata_is_refused(small_study, tmp_path, what):
    run(small_study, tmp_path, "n_reps=10", TWO)
    group = zarr.open_group(tmp_path / "results.zarr", mode="r+")
    if what == "truth":
        group["truth"][0] = 123.0
    else:
        group.attrs[what] = group.attrs[what].replace("24", "25")
    with quiet_consolidated_metadata():
        zarr.consolidate_metadata(tmp_path / "results.zarr")
    with pytest.raises(DamagedStore, match="attributes, coordinates or truth differ"):
        verify_run(tmp_path)
    with pytest.raises(DamagedStore, match="attributes, coordinates or truth differ"):
        run(small_study, tmp_path, "n_reps=10", TWO)


def test_a_ledger_with_a_torn_or_undecodable_line_resumes(small_study, tmp_path, reference):
    run(small_study, tmp_path, "n_reps=20", TWO)
    ledger = tmp_path / "results.progress"
    lines = ledger.read_bytes().splitlines(keepends=True)
    # the last chunk's line torn mid-digest, and a stray non-UTF-8 byte on a line of its own
    ledger.write_bytes(b"".join(lines[:-1]) + b"\xff\xfe\n" + lines[-1][:30])
    assert RunStore(tmp_path).done() == {(0, start, start + 5) for start in (0, 5, 10)}
    run(small_study, tmp_path, "n_reps=20", TWO)
    verify_run(tmp_path)
    xr.testing.assert_identical(values(tmp_path), reference)


def test_collect_refuses_a_damaged_run(small_study, tmp_path):
    for n in (6, 12):
        run(small_study, tmp_path / f"n{n}", "n_reps=10", TWO, f"dgp.n_subjects={n}")
    delete(chunk_file(tmp_path / "n6", "p_value", 0))
    done = subprocess.run([sys.executable, "-m", "sims.run.collect", str(tmp_path / "n6"), str(tmp_path / "n12"),
                           "--out", str(tmp_path / "merged")], capture_output=True, text=True)
    assert done.returncode == 2 and "damaged chunk" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    with run_directory_lock(tmp_path):
        with pytest.raises(ConfigError, match=r"^hydra.run.dir: .* in use by another clustersim run \(pid \d+"):
            with run_directory_lock(tmp_path):
                pass
    with run_directory_lock(tmp_path):  # released on leaving the block
        pass


def test_a_store_without_checksums_is_refused_for_another_config_and_never_wiped(small_study, tmp_path):
    run(small_study, tmp_path, "n_reps=10", TWO)
    ledger = tmp_path / "results.progress"
    # a ledger as earlier versions wrote it: "cell start stop" lines, no checksums
    ledger.write_text("".join(" ".join(line.split()[:3]) + "\n" for line in ledger.read_text().splitlines()[1:]))
    with pytest.raises(ConfigError, match="^dgp.slope: differs"):
        run(small_study, tmp_path, "n_reps=10", TWO, "dgp.slope=0")
    assert (tmp_path / "results.zarr").is_dir()
