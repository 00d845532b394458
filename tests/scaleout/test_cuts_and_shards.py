"""How a large line-based file is cut (parts found as they are read), and the sha256 the manifest
gives each shard (computed while the shard is written)."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
from scaleout_helpers import run_build

from alpacacot.units import _spans


def test_spans_cover_the_file_at_line_ends_with_their_first_line_numbers(tmp_path):
    lines = [b'{"a": %d, "text": "%s"}\n' % (i, b"x" * (i % 37)) for i in range(500)]
    lines[123] = b'{"a": "a\\r\\"quoted\\" line"}\n'  # a quote and an escaped CR, inside a line
    data = b"".join(lines) + b'{"last": "line without its end"}'
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    for unit_bytes in (1, 100, 1_000, 4_096, len(data) - 1, len(data), 10 * len(data)):
        spans = list(_spans(path, len(data), unit_bytes, b'\r"'))
        assert spans[0][0] == 0 and spans[-1][1] == len(data)
        for (_, end, _, _), (start, _, _, _) in zip(spans, spans[1:], strict=False):
            assert end == start and data[end - 1 : end] == b"\n"  # cut just after a line end
        for start, end, first, odd in spans:
            assert first == data[:start].count(b"\n")  # the number of the part's first line
            assert odd == any(c in data[start:end] for c in (b"\r", b'"'))
            if end < len(data):  # a part is at least unit_bytes long, ending at the next line end
                assert end - start >= min(unit_bytes, len(data) - start)
                assert b"\n" not in data[start + unit_bytes - 1 : end - 1]
    assert [s[3] for s in _spans(path, len(data), 10 * len(data), b"")] == [False]


def test_the_manifest_gives_each_shard_its_own_sha256_and_size(catalog, tmp_path, monkeypatch):
    """Shards are hashed while they are written: the manifest's digests are those of the files."""
    monkeypatch.setattr("alpacacot.units.ROW_GROUP", 40)  # shards close between row groups
    manifest = run_build(catalog, tmp_path / "out", workers=2, max_shard_bytes=20_000)
    shards = [s for src in manifest["sources"].values() for s in src["shards"]]
    assert len(shards) > len(manifest["sources"])  # several shards for some sources
    for shard in shards:
        path = tmp_path / "out" / shard["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        assert path.stat().st_size == shard["bytes"]
        assert pq.ParquetFile(path).metadata.num_rows == shard["records"]
