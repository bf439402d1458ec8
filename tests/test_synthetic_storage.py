"""The tiny dataset as stored: its mp4s decode to the rendered frames, so they carry no codec seam.

Checked on the files by an independent computation: PyAV decodes them directly (not through
`dvd360.data.video`) and numpy computes EC and the interior statistic (not `metrics.seam`).
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from dvd360.config import load_params, stage_params
from dvd360.data.synthetic import make_scene, render_clip
from dvd360.data.synthetic_dataset import METADATA_FILE, write_synthetic_web360


def _decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _seam_and_interior(frames: np.ndarray) -> tuple[float, float]:
    """(mean |column W-1 - column 0|, mean |column j+1 - column j| over j = 0 .. W-2), uint8 levels."""
    work = frames.astype(np.int64)
    return float(np.abs(work[:, :, -1] - work[:, :, 0]).mean()), float(np.abs(work[:, :, 1:] - work[:, :, :-1]).mean())


@pytest.mark.slow
def test_tiny_dataset_mp4s_are_the_rendered_frames(tmp_path):
    settings = stage_params("prepare", {**load_params(), "profile": "tiny"})
    root = write_synthetic_web360(tmp_path / "web360", clips=settings["clips"], height=settings["height"],
                                  width=settings["width"], frames=settings["frames"], fps=settings["fps"],
                                  seed=settings["seed"], progress=False)
    records = json.loads((root / METADATA_FILE).read_text())["clips"]
    folder = f"videos_{settings['height']}x{settings['width']}x{settings['frames']}"
    seams, interiors = [], []
    for clip_id, record in records.items():
        stored = _decode(root / folder / f"{clip_id}.mp4")
        rendered = render_clip(make_scene(record["scene_seed"]), settings["height"], settings["width"],
                               settings["frames"]).frames
        np.testing.assert_array_equal(stored, rendered)  # lossless: the codec adds nothing, seam included
        with av.open(str(root / folder / f"{clip_id}.mp4")) as container:
            assert container.streams.video[0].codec_context.pix_fmt == "gbrp"  # H.264 in RGB, 4:4:4
        seam, interior = _seam_and_interior(stored)
        seams.append(seam)
        interiors.append(interior)
    # Per clip the ratio is that of the render (0.75-1.75 for these 12 clips: one column pair is a
    # noisy sample of the content; the same clips rolled by 16-96 columns give 0.44-1.58). Over the
    # dataset (EC and interior pooled over the clips) it is the content's, near 1.
    pooled = np.mean(seams) / np.mean(interiors)
    assert 0.8 <= pooled <= 1.25
