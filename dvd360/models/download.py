"""Downloading and checking model files: HTTP with resume, the Hugging Face hub, digests.

`http_download(url, part)` appends to `part` from where an earlier, interrupted transfer stopped
(an HTTP Range request; a server that ignores it starts the file again) and retries a cut
transfer; `hub_download(hub, folder)` goes through huggingface_hub and returns the hub's own hash
of the file (its LFS SHA-256, or the git blob id of a small file). `digests(path)` gives a file's
SHA-256 and git blob id in one read. Every failure is a `FetchError` naming the URL and what
went wrong. Light on purpose (no torch): `dvd360-eval models` imports it.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

from dvd360.hub import offline

CHUNK = 1 << 20
USER_AGENT = "dvd360-models-fetch"


class FetchError(RuntimeError):
    """A model file could not be fetched; the message names the source and the problem."""


class SourceNotFoundError(FetchError):
    """The source answered 404 (or the hub: no such repo or file)."""


class TransferError(FetchError):
    """The transfer was cut more often than the retries allow; what arrived is kept for a resume."""


def digests(path: str | Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, in one read. The git blob id is
    sha1(b"blob <size>\\0" + content), what a git tree (and the hub, for small files) publishes."""
    path = Path(path)
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    sha1.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest()


def _progress(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=False)


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def http_download(url: str, part: str | Path, size: int | None = None, attempts: int = 3,
                  timeout: float = 60.0, progress: bool = True) -> Path:
    """Download `url` into `part`, resuming what `part` already holds; retried `attempts` times when
    the transfer is cut. Raises SourceNotFoundError (404), TransferError (still cut after the
    retries; `part` kept for the next resume) or FetchError (any other failure)."""
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    problem = ""
    for _ in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have == size:
            return part
        if size is not None and have > size:
            part.unlink()
            have = 0
        try:
            with _open(url, have, timeout) as response:
                resumed = response.status == 206
                if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                    raise FetchError(f"{url}: the server resumed at another offset "
                                     f"({response.headers.get('Content-Range')!r}, asked {have})")
                start = have if resumed else 0  # a 200 answer to a Range request is the whole file
                length = response.headers.get("Content-Length")
                total = start + int(length) if length is not None else size
                written = start
                with part.open("ab" if resumed else "wb") as out, \
                        _progress(total, start, Path(part.name).stem, progress) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        written += len(block)
                        bar.update(len(block))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise SourceNotFoundError(f"{url}: 404 Not Found") from None
            if error.code == 416 and have:  # nothing left past what we hold, or a stale part: start again
                part.unlink()
                problem = "HTTP 416 (range not satisfiable)"
                continue
            raise FetchError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            problem = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            continue
        if total is None or written == total:
            return part
        problem = f"connection closed after {written} of {total} bytes"
    held = part.stat().st_size if part.exists() else 0
    raise TransferError(f"{url}: transfer cut {attempts} times ({problem}); {held} bytes kept, "
                        "the same fetch resumes from there")


def hub_download(repo: str, filename: str, revision: str, folder: str | Path) -> tuple[Path, str | None, int | None]:
    """Download a hub file into `folder` (huggingface_hub resumes its own partial downloads);
    returns (path, the hub's hash of the file (64 hex: LFS sha256; 40 hex: git blob id), size)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    where = f"hf://{repo}/{filename}@{revision}"
    if offline():
        raise FetchError(f"{where}: HF_HUB_OFFLINE is set")
    try:
        meta = get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision))
        path = Path(hf_hub_download(repo, filename, revision=revision, local_dir=str(folder)))
    except Exception as error:  # the hub's errors differ by version; all name what failed
        name = type(error).__name__
        if "NotFound" in name or "404" in str(error):
            raise SourceNotFoundError(f"{where}: not found ({name})") from None
        raise FetchError(f"{where}: {name}: {error}") from None
    etag = (meta.etag or "").strip('"').lower() or None
    return path, etag, meta.size
