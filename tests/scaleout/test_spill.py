"""Where a unit leaves its records: in the staging folder when it may (local workers always, Ray
workers only where they find the build's token in that folder), else with its result."""

from __future__ import annotations

import pyarrow as pa
from scaleout_helpers import UNIT_BYTES, UNIT_ROWS

from alpacacot.build import BuildRequest
from alpacacot.catalog import load_catalog
from alpacacot.collectors import collect_files
from alpacacot.pipeline import run_unit
from alpacacot.units import cut_source, prepare_staging, spill_reachable


def _units(catalog, key):
    cat = load_catalog(catalog)
    entry = cat.datasets[key]
    files = [cf for sf in entry.files() for cf in collect_files(sf, cat, key)]
    return list(cut_source(entry, files, BuildRequest(keys=[], out_dir=catalog.parent).options,
                           UNIT_BYTES, UNIT_ROWS))  # fmt: skip


def test_a_unit_spills_only_where_it_finds_the_builds_token(catalog, tmp_path):
    unit = _units(catalog, "sharegpt_zh")[1]
    reference = run_unit(unit)
    assert reference.table is not None and reference.table.num_rows > 0

    folder = prepare_staging(tmp_path / "out", "sharegpt_zh", token="t0ken")
    unit.spill, unit.spill_token = str(folder), "t0ken"
    assert spill_reachable(unit)
    here = run_unit(unit)
    assert here.table is None and here.table_file
    assert here.records().equals(reference.table)

    unit.spill_token = "another build's token"  # a worker that sees another folder of that name
    assert not spill_reachable(unit)
    before = sorted(p.name for p in folder.iterdir())
    there = run_unit(unit)
    assert there.table_file is None and there.table.equals(reference.table)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written there

    unit.spill = str(tmp_path / "missing")  # a machine without the folder at all
    assert not spill_reachable(unit)
    assert run_unit(unit).table.equals(reference.table)


def test_local_workers_spill_without_a_token(catalog, tmp_path):
    unit = _units(catalog, "cot")[0]
    folder = prepare_staging(tmp_path / "out", "cot")
    unit.spill = str(folder)
    assert spill_reachable(unit)
    out = run_unit(unit)
    assert out.table_file and isinstance(out.records(), pa.Table)
