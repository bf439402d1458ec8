"""The per-user model store: registry models' files, fetched or imported, each one checked.

Layout under the store root (`$DVD360_HOME`, default platformdirs' user cache dir for dvd360):

    models/<name>/<file path>   the files of registry model <name>, only once checked
    records/<name>.json         per file: its sha256, size, how it was checked, where it came from
                                (an unverified file's first copy's sha256 is its pin)
    partial/<name>/...          transfers in progress (resumed by the next fetch)
    converted/...               folders converted from the raw files (`dvd360.models.scoring_models`)

A file enters `models/` only by `os.replace` from `partial/` after its check passed (`check_file`):
the registry's published hash (sha256, sha256 prefix or git blob id), the hub's own hash, or the
record's pin; a file that fails is deleted with its partial folder and raises `HashMismatchError`.
Light on purpose (no torch).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dvd360.atomic import write_json
from dvd360.models.download import (
    FetchError,
    SourceNotFoundError,
    TransferError,
    digests,
    http_download,
    hub_download,
)
from dvd360.models.registry import ModelEntry, ModelFile, Registry, load_registry

HOME_ENV = "DVD360_HOME"
PINNED = "unverified: first copy's sha256 pinned"
PINNED_IMPORT = "unverified: imported by name, its sha256 pinned"
__all__ = [
    "FetchError",
    "HashMismatchError",
    "ManualSourceError",
    "SourceNotFoundError",
    "Store",
    "TransferError",
    "default_root",
    "fetch_command",
]


class HashMismatchError(FetchError):
    """A file's content does not match what the registry (or the store's pin) says it is."""


class ManualSourceError(FetchError):
    """A file has no automatic source: the message says how to get it."""


def default_root() -> Path:
    """$DVD360_HOME, else platformdirs' user cache dir for dvd360 (~/.cache/dvd360 on Linux)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("dvd360"))


def fetch_command(names: Iterable[str]) -> str:
    """The exact command that fetches `names` into the store."""
    return "dvd360-eval models fetch " + " ".join(names)


def check_file(spec: ModelFile, sha256: str, blob: str, size: int, pin: str | None = None,
               hub_hash: str | None = None) -> str:
    """How a copy with these digests passes `spec` (the strongest check available), or raise
    HashMismatchError naming what was expected and what was found."""
    def refuse(expected: str) -> None:
        raise HashMismatchError(f"{spec.path}: expected {expected}, got sha256 {sha256} ({size} bytes)")

    if spec.size is not None and size != spec.size:
        refuse(f"{spec.size} bytes")
    if spec.sha256 is not None:
        sha256 == spec.sha256 or refuse(f"sha256 {spec.sha256} (published)")
    if spec.sha256_prefix is not None:
        sha256.startswith(spec.sha256_prefix) or refuse(f"a sha256 starting {spec.sha256_prefix} (published)")
    if spec.git_blob_sha1 is not None:
        blob == spec.git_blob_sha1 or refuse(f"git blob {spec.git_blob_sha1} (published)")
    if pin is not None:
        sha256 == pin or refuse(f"sha256 {pin} (pinned in the store at its first copy)")
    if spec.check != "unverified" and spec.check != "hub_published":
        return spec.check
    if hub_hash is not None:
        if hub_hash not in (sha256, blob):
            refuse(f"the hub's hash {hub_hash}")
        return "hub sha256" if len(hub_hash) == 64 else "hub git blob"
    if spec.check == "hub_published" and pin is None:
        refuse("the hub's hash, which could not be read")
    return "pinned" if pin is not None else PINNED


@dataclass
class FileState:
    """One registry file in the store: `state` present | missing | partial | manual."""

    spec: ModelFile
    state: str
    record: dict | None = None


@dataclass
class ModelState:
    """A registry model in the store."""

    entry: ModelEntry
    files: list[FileState] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return all(f.state == "present" for f in self.files if not f.spec.optional)

    @property
    def state(self) -> str:
        if self.present:
            return "present"
        return "partial" if any(f.state in ("present", "partial") for f in self.files) else "missing"


class Store:
    """The model store at `root` (see module doc)."""

    def __init__(self, root: str | Path | None = None, registry: Registry | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.registry = registry or load_registry()

    # -- layout -----------------------------------------------------------------------------
    def model_dir(self, name: str) -> Path:
        return self.root / "models" / name

    def path(self, name: str, file: str | None = None) -> Path:
        """A model's file (default: its first file) in the store; it may not exist."""
        entry = self.registry[name]
        return self.model_dir(name) / (file or entry.files[0].path)

    def _record_path(self, name: str) -> Path:
        return self.root / "records" / f"{name}.json"

    def _partial(self, name: str) -> Path:
        return self.root / "partial" / name

    def record(self, name: str) -> dict[str, dict]:
        """{file path: {sha256, size, checked, source, time}} of a model's checked files."""
        path = self._record_path(name)
        return json.loads(path.read_text(encoding="utf-8"))["files"] if path.is_file() else {}

    def _write_record(self, name: str, files: dict[str, dict]) -> None:
        write_json(self._record_path(name), {"name": name, "files": files})

    # -- state ------------------------------------------------------------------------------
    def state(self, name: str) -> ModelState:
        entry, record = self.registry[name], self.record(name)
        result = ModelState(entry)
        for spec in entry.files:
            target = self.model_dir(name) / spec.path
            if target.is_file() and spec.path in record:
                state = "present"
            elif (self._partial(name) / f"{spec.path}.part").is_file():
                state = "partial"
            else:
                state = "missing" if spec.automatic else "manual"
            result.files.append(FileState(spec, state, record.get(spec.path)))
        return result

    def present(self, name: str) -> bool:
        return self.state(name).present

    def sha256(self, name: str) -> str | None:
        """A present model's sha256 (what score records name it by): its file's, or for several files
        that of their sorted `<sha256>  <path>` lines; None when it is not present."""
        state = self.state(name)
        if not state.present:
            return None
        record = self.record(name)
        shas = [record[f.path]["sha256"] for f in state.entry.required_files]
        return shas[0] if len(shas) == 1 else _combined(record)

    # -- fetch ------------------------------------------------------------------------------
    def fetch(self, name: str, progress: bool = True, log: Callable[[str], None] = lambda _: None,
              attempts: int = 3) -> list[str]:
        """Fetch every missing file of `name`; returns the paths fetched ([] when all were present:
        nothing is downloaded then); `attempts`: tries per cut transfer. Raises FetchError (its
        subclasses name the problem)."""
        entry = self.registry[name]
        record, fetched = self.record(name), []
        for spec in entry.files:
            target = self.model_dir(name) / spec.path
            if target.is_file() and spec.path in record:
                continue
            if not spec.automatic:
                raise ManualSourceError(f"{name}: {spec.path} has no automatic source; get {spec.manual}, then "
                                        f"`dvd360-eval models import DIR`")
            try:
                part, hub_hash, where = self._download(name, spec, progress, attempts)
            except SourceNotFoundError:
                if spec.optional:
                    continue
                raise
            try:
                sha256, blob = digests(part)
                checked = check_file(spec, sha256, blob, part.stat().st_size, _pin(record, spec), hub_hash)
            except HashMismatchError as error:
                self._discard(name)
                raise HashMismatchError(f"{name}: {error} from {where}; nothing kept") from None
            self._place(part, target)
            record[spec.path] = {"sha256": sha256, "size": target.stat().st_size, "checked": checked,
                                 "source": where, "time": _now()}
            self._write_record(name, record)
            fetched.append(spec.path)
            log(f"{name}: {spec.path} fetched ({checked})")
        self._discard(name)
        return fetched

    def _download(self, name: str, spec: ModelFile, progress: bool, attempts: int) -> tuple[Path, str | None, str]:
        """The file in partial/ from its first source that answers: (path, hub hash or None, source)."""
        problems = []
        for url in spec.urls:
            part = self._partial(name) / f"{spec.path}.part"
            try:
                return http_download(url, part, spec.size, attempts=attempts, progress=progress), None, url
            except SourceNotFoundError as error:
                problems.append(error)
                if part.exists():
                    part.unlink()
            except TransferError:
                raise
            except FetchError as error:
                problems.append(error)
        if spec.hub is not None:
            hub = spec.hub
            try:
                path, etag, _ = hub_download(hub.repo, hub.file, hub.revision, self._partial(name) / "hub")
                return path, etag, f"hf://{hub.repo}/{hub.file}@{hub.revision}"
            except FetchError as error:
                problems.append(error)
        kind = SourceNotFoundError if problems and all(isinstance(p, SourceNotFoundError) for p in problems) else FetchError
        raise kind(f"{name}: {spec.path}: " + "; ".join(str(p) for p in problems))

    def _place(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def _discard(self, name: str) -> None:
        """Remove a model's partial folder, and store folders left empty."""
        shutil.rmtree(self._partial(name), ignore_errors=True)
        for folder in (self.root / "partial", self.model_dir(name), self.root / "models", self.root):
            try:
                folder.rmdir()
            except OSError:
                pass

    # -- verify -----------------------------------------------------------------------------
    def verify(self, name: str) -> list[tuple[str, bool, str]]:
        """Rehash every recorded file of `name`: [(path, ok, what)]."""
        record, results = self.record(name), []
        for spec in self.registry[name].files:
            target = self.model_dir(name) / spec.path
            if spec.path not in record:
                continue
            if not target.is_file():
                results.append((spec.path, False, "missing (recorded, but the file is gone)"))
                continue
            sha256, blob = digests(target)
            try:
                check_file(spec, sha256, blob, target.stat().st_size, record[spec.path]["sha256"])
                results.append((spec.path, True, f"sha256 {sha256[:12]}… ({record[spec.path]['checked']})"))
            except HashMismatchError as error:
                results.append((spec.path, False, f"CHANGED: {error}"))
        return results

    # -- import -----------------------------------------------------------------------------
    def import_dir(self, folder: str | Path, progress: bool = True) -> list[tuple[str, str, Path, str]]:
        """Take the registry files found under `folder` (a VBench or torch-hub cache, a hub cache
        or snapshot, a download folder) by content: [(model, file, source, how checked)].

        A file matches a registry file by its published sha256, sha256 prefix or git blob id, or by
        the store's pin; a hub file by the Hugging Face cache's blob name (its LFS sha256) under
        that repo's cache folder; a file with nothing published and nothing pinned by its name
        (then its sha256 is pinned)."""
        from tqdm.auto import tqdm

        wanted = [(entry, spec) for entry in self.registry.models.values() for spec in entry.files
                  if not (self.model_dir(entry.name) / spec.path).is_file()]
        seen, taken, known = set(), [], {}

        def hashes(real: Path) -> tuple[str, str]:
            if real not in known:
                known[real] = digests(real)
            return known[real]

        for path in tqdm(list(_walk(Path(folder))), desc="import", unit="file", disable=not progress, leave=False):
            real = path.resolve()
            if real in seen or not wanted:
                continue
            size = real.stat().st_size
            for entry, spec in [(e, s) for e, s in wanted if s.size is None or s.size == size]:
                how = self._matches(entry, spec, path, size, lambda real=real: hashes(real))
                if how is None:
                    continue
                seen.add(real)
                sha256 = hashes(real)[0]
                part = self._partial(entry.name) / f"{spec.path}.import"
                part.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(real, part)  # a copy, never a link: the user's file may change later
                if digests(part)[0] != sha256:  # copied wrong: never place it
                    self._discard(entry.name)
                    raise HashMismatchError(f"{path}: the copy in the store differs from the file")
                target = self.model_dir(entry.name) / spec.path
                self._place(part, target)
                record = self.record(entry.name)
                record[spec.path] = {"sha256": sha256, "size": size, "checked": how, "source": f"import: {path.name}",
                                     "time": _now()}
                self._write_record(entry.name, record)
                self._discard(entry.name)
                wanted.remove((entry, spec))
                taken.append((entry.name, spec.path, path, how))
                break
        return taken

    def _matches(self, entry: ModelEntry, spec: ModelFile, path: Path, size: int,
                 hashes: Callable[[], tuple[str, str]]) -> str | None:
        """How `path` passes as `spec` (see `import_dir`), or None."""
        pin = _pin(self.record(entry.name), spec)
        if spec.check in ("sha256", "sha256_prefix", "git_blob_sha1") or pin is not None:
            sha256, blob = hashes()
            try:
                return check_file(spec, sha256, blob, size, pin)
            except HashMismatchError:
                return None
        if not path.as_posix().endswith("/" + spec.path) and path.name != spec.path:
            return None
        if spec.check == "hub_published":
            cache_folder = "models--" + spec.hub.repo.replace("/", "--")
            sha256, blob = hashes()
            blob_name = path.resolve().name
            if cache_folder in path.as_posix() and blob_name in (sha256, blob):
                return "hub sha256 (the Hugging Face cache's blob name)" if blob_name == sha256 else "hub git blob"
            return None
        return PINNED_IMPORT


def _walk(folder: Path) -> Iterable[Path]:
    if folder.is_file():
        yield folder
        return
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    for parent, _, names in os.walk(folder, followlinks=True):
        for name in sorted(names):
            path = Path(parent) / name
            if path.is_file():
                yield path


def _pin(record: dict, spec: ModelFile) -> str | None:
    """The recorded sha256 that a new copy of an unverified or hub file must equal."""
    entry = record.get(spec.path)
    return entry["sha256"] if entry and spec.check in ("unverified", "hub_published") else None


def _combined(record: dict) -> str:
    """One sha256 for a multi-file model (as provenance.sha256_of does for a folder)."""
    import hashlib

    lines = "".join(f"{record[p]['sha256']}  {p}\n" for p in sorted(record))
    return hashlib.sha256(lines.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
