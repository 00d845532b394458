"""Errors a user can act on. Each message names the file, the row or entry, and the fix."""


class AlpacacotError(Exception):
    """Base class: the CLI prints the message and exits non-zero, without a traceback."""


class CatalogError(AlpacacotError):
    """The catalog file is unreadable, invalid, or names an unknown key."""


class CollectError(AlpacacotError):
    """An upstream file could not be fetched, or its checksum changed."""


class MalformedFileError(AlpacacotError):
    """A source file cannot be parsed past some line; names the file and the line."""

    def __init__(self, file: str, line: int | None, reason: str):
        self.file, self.line, self.reason = file, line, reason
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        # Rebuild from the three fields: a worker process of `build -j N` sends it back pickled.
        return type(self), (self.file, self.line, self.reason)


class SourceFailed(AlpacacotError):
    """A source failed in a worker: its message and the worker's traceback, as plain text (any
    exception, even one that cannot be pickled, reaches the parent this way)."""

    def __init__(self, message: str, trace: str = ""):
        super().__init__(message)
        self.trace = trace

    def __reduce__(self):
        return type(self), (str(self), self.trace)


def describe_failure(exc: BaseException) -> str:
    """The message a failed source is reported with: ours as they are, any other exception with
    its type (a RecursionError, an OSError, a library's ValueError...)."""
    if isinstance(exc, AlpacacotError):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (run with -v for the traceback)"


class WorkerLost(AlpacacotError):
    """A work unit's worker process died on every try (see `executors/`)."""

    def __init__(self, index: int, tries: int, detail: str = ""):
        self.index, self.tries, self.detail = index, tries, detail
        super().__init__(
            f"the worker process building it died (killed, or out of memory) on each of {tries} "
            f"tries of work unit {index}{' (' + detail + ')' if detail else ''}; look for what "
            "kills it (the OOM killer?) and run the build again"
        )

    def __reduce__(self):
        return type(self), (self.index, self.tries, self.detail)
