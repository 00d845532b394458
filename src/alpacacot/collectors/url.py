"""Files at a URL: streamed into the cache with retries and exponential backoff."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from alpacacot.catalog import SourceFile
from alpacacot.errors import CollectError

MAX_RETRIES = 4


def cache_path(url: str, cache_dir: Path) -> Path:
    name = PurePosixPath(urlparse(url).path).name or "file"
    return cache_dir / "url" / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def fetch_url(sf: SourceFile, key: str, *, cache_dir: Path, offline: bool) -> Path:
    """Return the cached copy of `sf.location`, downloading it when missing or stale."""
    from alpacacot.collectors import sha256_file

    target = cache_path(sf.location, cache_dir)
    if target.is_file() and (sf.sha256 is None or sha256_file(target) == sf.sha256):
        return target
    if offline:
        raise CollectError(
            f"dataset {key!r}: {sf.location} is not in the cache ({target}) and --offline is set. "
            "Run once without --offline, or set ALPACACOT_CACHE to a cache that has it."
        )
    download(sf.location, target, key)
    return target


def download(url: str, target: Path, key: str) -> None:
    """Stream `url` to `target` atomically: a temp file in the same folder, renamed when complete."""
    import httpx2
    from huggingface_hub.utils import http_stream_backoff

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            with http_stream_backoff(
                "GET", url, max_retries=MAX_RETRIES, base_wait_time=0.5, max_wait_time=8,
                follow_redirects=True,
            ) as resp:
                resp.raise_for_status()
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except httpx2.HTTPStatusError as exc:
        raise CollectError(
            f"dataset {key!r}: downloading {url} failed with HTTP {exc.response.status_code}"
            f" after {MAX_RETRIES} retries. Check the URL in the catalog entry."
        ) from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise CollectError(
            f"dataset {key!r}: downloading {url} failed ({type(exc).__name__}: {exc}). "
            "Check the network, or use --offline with a filled cache."
        ) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
