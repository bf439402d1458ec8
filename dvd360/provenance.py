"""What produced an output: library versions, git commit, device. Recorded with every result."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from dvd360.atomic import write_json

TRACKED_PACKAGES = (
    "dvd360", "torch", "torchvision", "diffusers", "transformers", "peft", "accelerate",
    "open-clip-torch", "torchmetrics", "cd-fvd", "torch-fidelity", "scikit-image", "numpy", "av", "mlflow", "dvc",
)


# The packages whose versions decide the bytes of the models stage's files: its manifest
# records only these, so a newcomer with another mlflow or dvc gets the same folder.
MODEL_FILE_PACKAGES = ("torch", "diffusers", "transformers", "open-clip-torch", "safetensors", "numpy")


# What a run measured rather than what it made (wall times, peak memory, the resume point, the
# commit checked out): written beside a record as `{stem}{RUN_SUFFIX}`, which .dvcignore keeps out
# of DVC's hashes, so a result made again writes the same record bytes and reruns nothing after it.
RUN_SUFFIX = ".run.json"


def write_record(path: str | Path, record: dict, measured: tuple[str, ...]) -> Path:
    """Write `record` to `path` (JSON, atomically) without its `measured` keys, which go to
    `path.with_suffix(RUN_SUFFIX)`, first: the record, written last, marks a finished result."""
    write_json(Path(path).with_suffix(RUN_SUFFIX), {key: record[key] for key in measured})
    return write_json(path, {key: value for key, value in record.items() if key not in measured})


def versions(packages: tuple[str, ...] = TRACKED_PACKAGES, python: bool = True) -> dict[str, str]:
    """Installed versions of `packages` (default: those that shape our numbers), plus Python's."""
    found = {"python": platform.python_version()} if python else {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit(folder: str | Path = ".") -> str | None:
    """The commit of the checkout at `folder` (with '-dirty' if it has changes), or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def device_name() -> str:
    """'cuda:<name>' when a GPU is visible to torch, else 'cpu:<processor>'."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def sha256_of(path: str | Path) -> str:
    """sha256 of a file; for a folder, of the sorted lines `<sha256 of file>  <relative path>`."""
    path = Path(path)
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    lines = [f"{sha256_of(f)}  {f.relative_to(path).as_posix()}\n"
             for f in sorted(path.rglob("*")) if f.is_file()]
    return hashlib.sha256("".join(lines).encode()).hexdigest()
