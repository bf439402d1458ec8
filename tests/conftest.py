"""Shared fixtures: offline, an isolated MLflow store, and the tiny models and dataset built once."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One compute thread, and OpenMP threads that sleep rather than spin while they wait: the
# tests' models are tiny, and on 2 shared cores spinning threads made them 3-20x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Computed-once results (the flow estimator's self-check) go to a throw-away folder."""
    os.environ["DVD360_CACHE_DIR"] = str(tmp_path_factory.mktemp("dvd360-cache"))
    os.environ["DVD360_HOME"] = str(tmp_path_factory.mktemp("dvd360-home"))  # an empty model store


@pytest.fixture(autouse=True, scope="session")
def isolated_mlflow(tmp_path_factory):
    """Every test logs to a throw-away sqlite store, never to the repository's mlflow.db."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    yield store


@pytest.fixture(scope="session")
def tiny_web360(tmp_path_factory):
    """A small synthetic WEB360-layout dataset (4 clips, 64x128, 24 frames), built once."""
    from dvd360.data.synthetic_dataset import write_synthetic_web360

    root = tmp_path_factory.mktemp("web360")
    return write_synthetic_web360(root, clips=4, height=64, width=128, frames=24, fps=8, seed=0)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The tiny profile's models (random weights, fixed seed), materialised once."""
    from dvd360.models.materialize import build_tiny

    root = tmp_path_factory.mktemp("models")
    build_tiny(root, seed=0)
    return root


@pytest.fixture(scope="module")
def feature_dirs(tmp_path_factory):
    """Tiny random-weight I3D and Inception folders (the set metrics' feature nets)."""
    from dvd360.models.feature_nets import SET_KINDS, build_tiny_feature_net

    root = tmp_path_factory.mktemp("feature_nets")
    for kind in SET_KINDS:
        build_tiny_feature_net(root / kind, kind, seed=0)
    return root
