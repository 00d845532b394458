"""Files at a URL: streamed into the cache with retries, a stall timeout and an overall deadline.

A download is written to `.<name>.<pid>.<random>.part` beside its cache path and renamed only when
complete and matching its sha256 pin, so the cache never holds a partial or wrong file under the
final name. The `.part` file is removed on every exit: exceptions (`finally`), SIGTERM (a handler
that removes the open `.part` files, then lets the signal kill the process), and SIGKILL or a power
cut (the next download into the same folder removes `.part` files of processes that are gone).

Two limits, both in seconds, configurable through the environment:
- ALPACACOT_DOWNLOAD_STALL (default 60): a download that receives fewer than 1 KiB over that long
  (including nothing at all) has stalled; it is retried, within the deadline.
- ALPACACOT_DOWNLOAD_DEADLINE (default 7200, two hours: a 3.5 GB file at 0.5 MB/s): the most one file
  may take, retries included.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from alpacacot.catalog import SourceFile
from alpacacot.collectors.pins import clear_failed_pin, failed_pin_note, record_failed_pin
from alpacacot.errors import CollectError
from alpacacot.lifeline import pid_alive

log = logging.getLogger(__name__)

MAX_RETRIES = 4
STALL_ENV, DEFAULT_STALL = "ALPACACOT_DOWNLOAD_STALL", 60.0
DEADLINE_ENV, DEFAULT_DEADLINE = "ALPACACOT_DOWNLOAD_DEADLINE", 7200.0
MIN_BYTES_PER_WINDOW = 1024  # under this many bytes in one stall window, the download stalled
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

_open_parts: set[str] = set()  # .part files this process is writing (removed on SIGTERM)
_parts_lock = threading.Lock()


class DownloadTooSlow(Exception):
    """The body stalled (`stalled=True`) or the deadline passed."""

    def __init__(self, message: str, stalled: bool):
        super().__init__(message)
        self.stalled = stalled


def _seconds(env: str, default: float) -> float:
    value = os.environ.get(env)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise CollectError(f"{env}={value!r} is not a positive number of seconds")
    return seconds


def cache_path(url: str, cache_dir: Path) -> Path:
    """Where the cache keeps `url`: a folder per URL, the URL's file name when it is a plain one."""
    name = PurePosixPath(urlparse(url).path).name
    if not SAFE_NAME.fullmatch(name):
        name = "file"  # `..`, an over-long or odd name never becomes a path
    return cache_dir / "url" / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def fetch_url(sf: SourceFile, key: str, *, cache_dir: Path, offline: bool) -> Path:
    """Return the cached copy of `sf.location`, downloading it when missing or stale."""
    from alpacacot.collectors import sha256_file

    target = cache_path(sf.location, cache_dir)
    if target.is_file() and (sf.sha256 is None or sha256_file(target) == sf.sha256):
        return target
    if offline:
        stale = " (the cached copy does not match the pinned sha256)" if target.is_file() else ""
        raise CollectError(
            f"dataset {key!r}: {sf.location} is not in the cache ({target}){stale}"
            f"{failed_pin_note(cache_dir, sf.location)} and --offline is set. "
            "Run once without --offline, or set ALPACACOT_CACHE to a cache that has it."
        )
    download(sf.location, target, key, sha256=sf.sha256, cache_dir=cache_dir)
    return target


def remove_stale_parts(folder: Path) -> None:
    """Remove `.part` files in `folder` left by processes that no longer run (killed mid-download)."""
    for part in folder.glob(".*.part"):
        fields = part.name.rsplit(".", 3)  # ['.<name>', '<pid>', '<random>', 'part']
        pid = int(fields[1]) if len(fields) == 4 and fields[1].isdigit() else None
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            continue
        if pid == os.getpid() and str(part) in _open_parts:
            continue
        part.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted download", part)


def _on_sigterm(signum, frame) -> None:  # noqa: ANN001 - a signal handler's signature
    # A forked worker inherits the handler and a copy of the set: the files are its parent's.
    if os.getpid() == _installed_by:
        for part in list(_open_parts):
            try:
                os.unlink(part)
            except OSError:
                pass
    previous = _previous_handler
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


_previous_handler: object = None
_installed_by = 0  # the pid that installed the handler


def install_sigterm_cleanup() -> None:
    """Remove this process's `.part` files on SIGTERM (then die of it, or run the previous handler).
    Only the main thread may install a handler; elsewhere this does nothing."""
    global _previous_handler, _installed_by
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm and _installed_by == os.getpid():
        return
    if current is not _on_sigterm:
        _previous_handler = current if callable(current) else None
    _installed_by = os.getpid()
    signal.signal(signal.SIGTERM, _on_sigterm)


def download(
    url: str,
    target: Path,
    key: str,
    *,
    sha256: str | None = None,
    cache_dir: Path | None = None,
) -> None:
    """Stream `url` to `target` atomically: a `.part` file in the same folder, renamed when complete
    and matching `sha256` (when given). Stalls and dropped connections are retried from the start
    of the file, within the deadline; 429/5xx answers are retried by http_stream_backoff."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    stall = _seconds(STALL_ENV, DEFAULT_STALL)
    deadline_s = _seconds(DEADLINE_ENV, DEFAULT_DEADLINE)
    deadline = time.monotonic() + deadline_s
    install_sigterm_cleanup()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target.parent)
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".part"
    )
    with _parts_lock:
        _open_parts.add(tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch_with_retries(url, out, stall, deadline, deadline_s)
            out.flush()
            os.fsync(out.fileno())
        if sha256 and digest != sha256:
            if cache_dir is not None:
                record_failed_pin(cache_dir, url, digest, sha256)
            raise CollectError(
                f"dataset {key!r}: {url} changed upstream: the download's sha256 is {digest}, the "
                f"catalog pins {sha256}. The download was removed, not kept in the cache. Check "
                "what changed, then update `sha256` in the catalog entry."
            )
        os.replace(tmp, target)
        if cache_dir is not None:
            clear_failed_pin(cache_dir, url)
    except DownloadTooSlow as exc:
        raise CollectError(
            f"dataset {key!r}: downloading {url} {exc}; the partial download was removed."
        ) from exc
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
        with _parts_lock:
            _open_parts.discard(tmp)
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fetch_with_retries(url: str, out, stall: float, deadline: float, deadline_s: float) -> str:
    """Write the body of `url` to `out`; return its sha256. Retries dropped or stalled transfers."""
    import httpx2
    from huggingface_hub.utils import http_stream_backoff

    transient = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
    for attempt in range(MAX_RETRIES + 1):
        out.seek(0)
        out.truncate()
        h = hashlib.sha256()
        try:
            with http_stream_backoff(
                "GET",
                url,
                max_retries=MAX_RETRIES,
                base_wait_time=0.5,
                max_wait_time=8,
                retry_on_exceptions=(),
                follow_redirects=True,
                timeout=min(stall, max(0.1, deadline - time.monotonic())),
            ) as resp:
                resp.raise_for_status()
                _stream(resp, out, h, stall, deadline, deadline_s)
            return h.hexdigest()
        except (*transient, DownloadTooSlow) as exc:
            if isinstance(exc, DownloadTooSlow) and not exc.stalled:
                raise
            wait = min(8.0, 0.5 * 2**attempt)
            if time.monotonic() + wait >= deadline:
                raise DownloadTooSlow(
                    f"did not finish within the deadline of {deadline_s:g} s "
                    f"({DEADLINE_ENV}); last attempt: {_reason(exc, stall)}",
                    stalled=False,
                ) from exc
            if attempt == MAX_RETRIES:
                if isinstance(exc, httpx2.TimeoutException):
                    raise DownloadTooSlow(
                        f"{_reason(exc, stall)}, {MAX_RETRIES + 1} times", stalled=True
                    ) from exc
                raise
            log.warning("%s: %s; retrying in %.1fs", url, _reason(exc, stall), wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _reason(exc: BaseException, stall: float) -> str:
    if isinstance(exc, DownloadTooSlow):
        return str(exc)
    import httpx2

    if isinstance(exc, httpx2.TimeoutException):
        return f"stalled: nothing received for {stall:g} s ({STALL_ENV})"
    return f"{type(exc).__name__}: {exc}"


def _stream(resp, out, h, stall: float, deadline: float, deadline_s: float) -> None:
    """Copy the body as it arrives (not in 1 MB blocks: a trickle must be seen), checking the
    stall window and the deadline at each piece."""
    window_start, window_bytes = time.monotonic(), 0
    for chunk in resp.iter_bytes():
        out.write(chunk)
        h.update(chunk)
        now = time.monotonic()
        window_bytes += len(chunk)
        if now >= deadline:
            raise DownloadTooSlow(
                f"did not finish within the deadline of {deadline_s:g} s ({DEADLINE_ENV})",
                stalled=False,
            )
        if now - window_start >= stall:
            if window_bytes < MIN_BYTES_PER_WINDOW:
                raise DownloadTooSlow(
                    f"stalled: {window_bytes} bytes in {now - window_start:.0f} s, under "
                    f"{MIN_BYTES_PER_WINDOW} bytes per {stall:g} s ({STALL_ENV})",
                    stalled=True,
                )
            window_start, window_bytes = now, 0
