"""Catalog loading: libyaml's C parser against pure-Python PyYAML, on a large generated catalog.

A 50 MB catalog took over 400 s and 4 GB with the pure-Python loader (issue 12, item 10). Catalogs
are now capped at 5 MB (guards.MAX_CATALOG_BYTES) and parsed by libyaml where PyYAML was built with
it. This bench writes a catalog of N bytes (default: just under the cap) of realistic entries (Hub
sources, ~900 bytes each) and times `load_catalog` on it, in a fresh process per run, with each
loader: `libyaml` (what load_catalog uses) and `python` (PyYAML's pure-Python SafeLoader with the
same duplicate-key check, what it used before). Everything else (alias bound, names, schema, paths)
is the same code in both.

    python bench/catalog_load.py [--bytes 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENTRY = """\
  {key}:
    description: >-
      Instructions and answers from upstream set number {n}, regenerated from its published files
      with the field mapping below; kept here to measure how long a large catalog takes to load.
    homepage: https://huggingface.co/datasets/example-org/set-{n}
    license: cc-by-4.0
    languages: [en, zh]
    tags: {{lang: ML, task: MT, gen: SI, extra: [bench]}}
    source:
      kind: hf
      repo: example-org/set-{n}
      revision: 0123456789abcdef0123456789abcdef01234567
      files:
        - {{file: data/train-00000-of-00002.parquet, sha256: {sha}}}
        - {{file: data/train-00001-of-00002.parquet, sha256: {sha}}}
    format: parquet
    fields: {{instruction: instruction, input: input, output: output}}
    options: {{drop_empty: true, min_chars: 2}}
"""


def write_catalog(path: Path, size: int) -> int:
    """A valid catalog of about `size` bytes; returns its number of entries."""
    parts = ["version: 1\ndatasets:\n"]
    total, n = len(parts[0]), 0
    sha = "ab" * 32
    while True:
        block = ENTRY.format(key=f"set_{n:06d}", n=n, sha=sha)
        if total + len(block) > size:
            break
        parts.append(block)
        total += len(block)
        n += 1
    path.write_text("".join(parts), encoding="utf-8")
    return n


def _python_loader() -> type:
    """PyYAML's pure-Python SafeLoader with load_catalog's duplicate-key check (the old loader)."""
    import yaml

    from alpacacot.errors import CatalogError

    class PyUniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise CatalogError(f"line {key_node.start_mark.line + 1}: key {key!r} twice")
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return PyUniqueKeyLoader


def _one(loader: str, path: str) -> None:
    """Child process: load the catalog once with `loader`; print seconds and peak RSS as JSON."""
    from alpacacot import guards
    from alpacacot.catalog import load_catalog

    if loader == "python":
        guards.UniqueKeyLoader = _python_loader()
    start = time.perf_counter()
    catalog = load_catalog(path)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mib": rss, "entries": len(catalog.datasets)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.yaml"
        entries = write_catalog(path, args.bytes)
        size = path.stat().st_size
        print(
            f"catalog: {size:,} bytes, {entries:,} entries; libyaml built: {yaml.__with_libyaml__}"
        )
        print("| loader | runs | seconds (median) | peak RSS (MiB, median) |")
        print("|---|---:|---:|---:|")
        for loader in ("python", "libyaml"):
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, __file__, "_one", loader, str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                runs.append(json.loads(out))
            secs = statistics.median(r["seconds"] for r in runs)
            rss = statistics.median(r["rss_mib"] for r in runs)
            print(f"| {loader} | {len(runs)} | {secs:.2f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_one":
        _one(sys.argv[2], sys.argv[3])
    else:
        main()
