"""How well each flow encoding's colour test fits flow videos as published, and photos: the
measurements behind `data.flow_encoding.choose_encoding`'s rule.

    python -m dvd360.benchmarks.flow_encodings          # prints one row per case (2 cores: ~2 minutes)

Flow videos (128x256, 6 frames): a synthetic world (camera motion and moving objects,
`synthetic.render_clip`), a camera turning rigidly, small moving objects on a still background,
and a half-still camera turn; each in the released encoding, in flow_vis colours normalised per
frame (`flow_to_color`), and in flow_vis colours against a fixed scale that 5%, 20% or 40% of the
pixels exceed (flow_vis darkens those by 0.75, so they fit the released test: how videos
normalised once for a whole clip look); each H.264 yuv420p at crf 18, 23, 28 and 35, at full,
half and quarter size (INTER_AREA before encoding). Photos: scikit-image's bundled test images
and synthetic panoramas (`render_clip` frames), which must be refused. A row: the share of pixels
that fit the released test (min channel <= CHANNEL_TOLERANCE) and the flow_vis one (max channel
>= 255 - CHANNEL_TOLERANCE), and what `choose_encoding` decides.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

CRFS = (18, 23, 28, 35)
SCALES = (1, 2, 4)
SATURATED = (0.05, 0.2, 0.4)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "camera", "moon", "page",
          "text")


def flows(height: int = 128, width: int = 256, frames: int = 6) -> dict[str, np.ndarray]:
    """Flow fields (F, H, W, 2) of the measured kinds of content."""
    from dvd360.data.synthetic import make_scene, render_clip
    from dvd360.metrics.flow_agreement import rigid_rotation_clip

    y, x = np.mgrid[0:height, 0:width]
    objects = np.zeros((frames, height, width, 2), np.float32)
    for t in range(frames):
        for k in range(4):  # four discs of radius 6-12 px, each with its own velocity
            inside = (y - 30 - 20 * k) ** 2 + (x - (40 + 50 * k + 3 * t) % width) ** 2 < (6 + 2 * k) ** 2
            objects[t][inside] = [3 + k, k - 1]
    half = rigid_rotation_clip(height, width, frames, yaw_deg=4, pitch_deg=0, roll_deg=0, seed=1)[1].copy()
    half[:, : height // 2] = 0
    return {"world": render_clip(make_scene(0), height, width, frames).flow,
            "camera": rigid_rotation_clip(height, width, frames, yaw_deg=4, pitch_deg=2, roll_deg=1, seed=0)[1],
            "small objects": objects, "half still": half}


def encodings(flow: np.ndarray) -> dict[str, np.ndarray]:
    """The flow's colour videos: released, flow_vis per frame, flow_vis against fixed scales."""
    import flow_vis

    from dvd360.data.flow_encoding import encode_flow

    radius = np.linalg.norm(flow, axis=-1)
    out = {"released": encode_flow(flow), "flowvis": np.stack([flow_vis.flow_to_color(f) for f in flow])}
    for share in SATURATED:
        scale = max(float(np.quantile(radius, 1 - share)), 1e-3)
        out[f"flowvis {share:.0%} saturated"] = np.stack(
            [flow_vis.flow_uv_to_colors(f[..., 0] / scale, f[..., 1] / scale) for f in flow])
    return out


def decision(votes: np.ndarray) -> str:
    from dvd360.data.flow_encoding import choose_encoding

    try:
        return choose_encoding(votes)
    except ValueError:
        return "refused"


def row(label: str, votes: np.ndarray) -> str:
    total = max(int(votes[0]), 1)
    return f"{label:48} released {votes[1] / total:5.2f}  flowvis {votes[2] / total:5.2f}  -> {decision(votes)}"


def main() -> None:
    import skimage.data

    from dvd360.data.flow_encoding import encoding_votes
    from dvd360.data.synthetic import make_scene, render_clip
    from dvd360.data.video import read_frames, write_video

    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "flow.mp4"
        for kind, flow in flows().items():
            for name, images in encodings(flow).items():
                for scale in SCALES:
                    small = np.stack([cv2.resize(image, (image.shape[1] // scale, image.shape[0] // scale),
                                                 interpolation=cv2.INTER_AREA) for image in images])
                    for crf in CRFS:
                        votes = encoding_votes(read_frames(write_video(video, small, crf=crf)))
                        print(row(f"{kind}, {name}, 1/{scale} size, crf {crf}", votes), flush=True)
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]
        print(row(f"photo {name}", encoding_votes(image.astype(np.uint8))))
    for seed in range(10):
        print(row(f"synthetic panorama {seed}", encoding_votes(render_clip(make_scene(seed), 64, 128, 2).frames)))


if __name__ == "__main__":
    main()
