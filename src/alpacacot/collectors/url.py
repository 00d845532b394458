"""Files at a URL: streamed into the cache with retries and exponential backoff."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from alpacacot.catalog import SourceFile
from alpacacot.errors import CollectError

log = logging.getLogger(__name__)

MAX_RETRIES = 4
TIMEOUT = 60.0  # seconds without progress (connect, or between bytes) before a retry


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
    """Stream `url` to `target` atomically: a temp file in the same folder, renamed when complete.

    http_stream_backoff retries 429/5xx answers; a connection that drops or stalls while the body
    is streaming is retried here, from the start of the file (the backoff helper cannot retry a
    response it has already handed out).
    """
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import http_stream_backoff

    transient = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for attempt in range(MAX_RETRIES + 1):
                out.seek(0)
                out.truncate()
                try:
                    with http_stream_backoff(
                        "GET",
                        url,
                        max_retries=MAX_RETRIES,
                        base_wait_time=0.5,
                        max_wait_time=8,
                        retry_on_exceptions=(),
                        follow_redirects=True,
                        timeout=TIMEOUT,
                    ) as resp:
                        resp.raise_for_status()
                        for chunk in resp.iter_bytes(1 << 20):
                            out.write(chunk)
                    break
                except transient as exc:
                    if attempt == MAX_RETRIES:
                        raise
                    wait = min(8.0, 0.5 * 2**attempt)
                    log.warning("%s: %s; retrying in %.1fs", url, exc, wait)
                    time.sleep(wait)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except (httpx2.HTTPStatusError, HfHubHTTPError) as exc:
        # HfHubHTTPError: a 429/5xx answer still failing after MAX_RETRIES retries.
        status = getattr(exc.response, "status_code", "error")
        raise CollectError(
            f"dataset {key!r}: downloading {url} failed with HTTP {status}. "
            "Check the URL in the catalog entry (429 and 5xx answers were retried "
            f"{MAX_RETRIES} times)."
        ) from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise CollectError(
            f"dataset {key!r}: downloading {url} failed ({type(exc).__name__}: {exc}). "
            "Check the network, or use --offline with a filled cache."
        ) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
