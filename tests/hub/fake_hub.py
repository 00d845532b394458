"""A tiny in-memory Hub on 127.0.0.1 answering the endpoints huggingface_hub's upload path calls,
and the `resolve` downloads of `hf_hub_download`.

It keeps repos, branches and commits (each commit a full snapshot of files), records every request
(method, path, query, JSON or NDJSON body, headers), and can be told to fail a request with a given
status so the client's real error handling runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".parquet", ".png")  # served as LFS files, like the real Hub's .gitattributes


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    prs: list[str] = field(default_factory=list)

    def files(self, rev: str) -> dict[str, bytes] | None:
        sha = self.branches.get(rev, rev if rev in self.commits else None)
        return None if sha is None else self.commits[sha]["files"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any


@dataclass
class Failure:
    method: str
    pattern: str
    status: int
    error_code: str | None = None
    message: str = "injected failure"


class FakeHub:
    """Start with `FakeHub().start()`; `endpoint` is its base URL."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self.lock = threading.Lock()
        self._counter = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # header and body are two writes: no 40 ms stalls

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:
                hub._handle(self, "HEAD")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeHub:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- helpers for tests -------------------------------------------------------------------
    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        error_code: str | None = None,
        message: str = "injected failure",
    ) -> None:
        """Answer requests whose path matches `pattern` (regex) with `status` from now on."""
        self.failures.append(Failure(method, pattern, status, error_code, message))

    def commits(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and "/commit/" in r.path]

    def head_files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].files(rev) or {})

    # --- HTTP -----------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        path = unquote(url.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: Any = raw
        ctype = h.headers.get("Content-Type", "")
        if raw and "ndjson" in ctype:
            body = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        elif raw and "json" in ctype:
            body = json.loads(raw)
        with self.lock:
            headers = {k.lower(): v for k, v in h.headers.items()}
            self.requests.append(Request(method, path, parse_qs(url.query), headers, body))
            for f in self.failures:
                if f.method == method and re.search(f.pattern, path):
                    headers = {"X-Error-Code": f.error_code} if f.error_code else {}
                    if f.status == 429:
                        headers["Retry-After"] = "0"
                    return self._send(h, f.status, {"error": f.message}, headers)
            try:
                status, payload, headers = self._route(method, path, url.query, body)
            except Exception as err:  # noqa: BLE001 - a bug here should show as a 500, not a hang
                status, payload, headers = 500, {"error": repr(err)}, {}
        self._send(h, status, payload, headers, head=method == "HEAD")

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        raw = isinstance(payload, bytes)
        data = payload if raw else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            h.wfile.write(data)

    def _route(self, method: str, path: str, query: str, body: Any):
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if method in ("GET", "HEAD") and m:
            return self._resolve(*m.groups())
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(body)
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(body)
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if method == "GET" and m:
            return self._info(m.group(1), m.group(2) or "main")
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)", path)
        if method == "POST" and m:
            repo_id, action, rev = m.groups()
            repo = self.repos.get(repo_id)
            if repo is None:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            if action == "preupload":
                return self._preupload(repo, rev, body)
            if action == "branch":
                return self._branch(repo, rev, body)
            return self._commit(repo_id, repo, rev, body, "create_pr=1" in query)
        return 404, {"error": f"no route {method} {path}"}, {}

    def _sha(self, *parts: Any) -> str:
        self._counter += 1
        return hashlib.sha1(f"{self._counter}{parts}".encode()).hexdigest()

    def _create_repo(self, body: dict):
        repo_id = f"{body['organization']}/{body['name']}"
        url = f"{self.endpoint}/datasets/{repo_id}"
        if repo_id in self.repos:
            return 409, {"error": "You already created this dataset repo", "url": url}, {}
        sha = self._sha(repo_id)
        repo = Repo(private=body.get("visibility") == "private")
        repo.commits[sha] = {
            "files": {".gitattributes": b"*.parquet filter=lfs\n"},
            "parent": None,
            "summary": "initial commit",
        }
        repo.branches["main"] = sha
        self.repos[repo_id] = repo
        return 200, {"url": url, "name": repo_id}, {}

    def _validate_yaml(self, body: dict):
        content = body["content"]
        try:
            front = content.split("---\n")[1]
            meta = yaml.safe_load(front)
            assert isinstance(meta, dict)
        except Exception as err:  # noqa: BLE001
            return 400, {"errors": [{"message": f"invalid YAML: {err}"}]}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def _resolve(self, repo_id: str, rev: str, name: str):
        """A file's bytes, with the headers hf_hub_download reads (commit, etag, size)."""
        repo = self.repos.get(repo_id)
        files = repo.files(unquote(rev)) if repo else None
        if files is None:
            return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        if name not in files:
            return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
        data = files[name]
        commit = repo.branches.get(unquote(rev), unquote(rev))
        etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else _git_sha1(data)
        return 200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}

    def _info(self, repo_id: str, rev: str):
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        files = repo.files(rev)
        if files is None:
            return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
        sha = repo.branches.get(rev, rev)
        siblings = []
        for name, data in sorted(files.items()):
            entry: dict[str, Any] = {
                "rfilename": name,
                "size": len(data),
                "blobId": _git_sha1(data),
            }
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
                entry["blobId"] = hashlib.sha1(b"pointer" + data).hexdigest()
            siblings.append(entry)
        return 200, {"id": repo_id, "sha": sha, "private": repo.private, "siblings": siblings}, {}

    def _preupload(self, repo: Repo, rev: str, body: dict):
        files = repo.files(rev) or {}
        out = []
        for f in body["files"]:
            existing = files.get(f["path"])
            out.append(
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": _git_sha1(existing) if existing is not None else None,
                }
            )
        return 200, {"files": out}, {}

    def _branch(self, repo: Repo, branch: str, body: Any):
        if branch in repo.branches:
            return 409, {"error": "Reference already exists"}, {}
        start = (body or {}).get("startingPoint") if isinstance(body, dict) else None
        repo.branches[branch] = repo.branches.get(start or "main", start or repo.branches["main"])
        return 200, {}, {}

    def _commit(self, repo_id: str, repo: Repo, rev: str, lines: list[dict], create_pr: bool):
        if rev not in repo.branches:
            return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
        header = lines[0]["value"]
        head = repo.branches[rev]
        parent = header.get("parentCommit")
        if parent and parent != head and not create_pr:
            return 412, {"error": "A commit has happened since. Please refresh and try again."}, {}
        files = dict(repo.commits[parent or head]["files"])
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "deletedFile":
                if value["path"] not in files:
                    return (
                        404,
                        {"error": "A file with this name doesn't exist"},
                        {"X-Error-Code": "EntryNotFound"},
                    )
                del files[value["path"]]
            else:
                return 400, {"error": f"unsupported operation {line['key']}"}, {}
        sha = self._sha(repo_id, header["summary"])
        repo.commits[sha] = {
            "files": files,
            "parent": parent or head,
            "summary": header["summary"],
            "description": header["description"],
        }
        pr_url = None
        if create_pr:
            number = len(repo.prs) + 1
            repo.branches[f"refs/pr/{number}"] = sha
            repo.prs.append(sha)
            pr_url = f"{self.endpoint}/datasets/{repo_id}/discussions/{number}"
        else:
            repo.branches[rev] = sha
        return (
            200,
            {
                "commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/{sha}",
                "commitOid": sha,
                "pullRequestUrl": pr_url,
            },
            {},
        )


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
