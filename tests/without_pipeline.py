"""Run `dvd360-eval ARGS...` as if the reproduction pipeline's packages were not installed.

`pip install dvd360` (without the `pipeline` extra) has no DVC, MLflow, peft, accelerate or
diffusers: every import finder here answers "no such module" for them, and importlib.metadata
finds no distribution of them, exactly as when they are absent. Used by tests/test_score_models.py.
"""

from __future__ import annotations

import sys

PIPELINE_ONLY = ("dvc", "mlflow", "peft", "accelerate", "diffusers")


def _blocked(name: str | None) -> bool:
    return bool(name) and name.partition(".")[0].replace("-", "_").lower() in PIPELINE_ONLY


class _Hiding:
    """A meta path finder that hides the pipeline-only packages from the finder it wraps."""

    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if _blocked(name) or not hasattr(self.inner, "find_spec"):
            return None
        return self.inner.find_spec(name, path, target)

    def find_distributions(self, *args, **kwargs):
        found = getattr(self.inner, "find_distributions", None)
        return [] if found is None else [d for d in found(*args, **kwargs) if not _blocked(d.metadata["Name"])]

    def invalidate_caches(self):
        if hasattr(self.inner, "invalidate_caches"):
            self.inner.invalidate_caches()


def hide_pipeline_packages() -> None:
    sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]


if __name__ == "__main__":
    hide_pipeline_packages()
    try:
        import dvc  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the pipeline packages are still importable")
    from dvd360.cli import main

    main(args=sys.argv[1:], prog_name="dvd360-eval")
