"""A copy of the repository to run DVC or the stage scripts in (tracked and new files, no outputs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dvd360.code_deps import package_root

ROOT = package_root().parent


def copy_repository(target: Path) -> None:
    """The work tree's files (tracked and untracked, not ignored) without data/, reports/ and
    dvc.lock, into `target`, made a git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for name in files:
        if name.startswith(("data/", "reports/")) or name == "dvc.lock" or not (ROOT / name).is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
