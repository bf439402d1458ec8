"""The synthetic panorama world: exact flow against the rendered pixels, seamlessness, captions,
determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dvd360.data.synthetic import (
    COLOURS,
    LANDMARK_NOUNS,
    CameraMotion,
    Landmark,
    MovingObject,
    Scene,
    make_scene,
    render_clip,
    scene_caption,
    view_captions,
)
from dvd360.geometry import horizontal_views, rotation_flow

H, W, FRAMES = 64, 128, 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Render on one intra-op thread: on 2 shared, busy cores, OpenMP's spin-waiting makes two
    threads several times slower for these small renders. Results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips(one_thread):
    """Eight scenes from seeds 0..7, 64x128, 8 frames (shared by the tests below)."""
    return [render_clip(make_scene(seed), H, W, FRAMES) for seed in range(8)]


def _scene(landmarks=(), movers=(), camera=CameraMotion(0.0, 0.0, 30.0, 0.0, 30.0)) -> Scene:
    """A hand-made scene (background fields from seed 0)."""
    base = make_scene(0)
    return Scene(
        seed=0,
        sky="clear blue sky",
        ground="grassy meadow",
        landmarks=tuple(landmarks),
        movers=tuple(movers),
        camera=camera,
        cloud_waves=base.cloud_waves,
        ground_tile=base.ground_tile,
    )


def _colour_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    """Pixels whose RGB is a shade s * colour (s > 0.5) of the named colour."""
    pixel, rgb = frame.astype(np.float64) / 255, np.array(COLOURS[colour])
    shade = pixel @ rgb / (rgb @ rgb)
    return (np.linalg.norm(pixel - shade[..., None] * rgb, axis=-1) < 0.08) & (shade > 0.5)


def _backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image (H, W, C) sampled at (j + dx, i + dy), bilinear, columns wrapping, rows clamped
    (written here independently of dvd360.geometry)."""
    h, w = image.shape[:2]
    x = np.arange(w)[None, :] + flow[..., 0]
    y = np.clip(np.arange(h)[:, None] + flow[..., 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    y1 = np.minimum(y0 + 1, h - 1)
    return (
        (1 - fx) * (1 - fy) * image[y0, x0 % w]
        + fx * (1 - fy) * image[y0, (x0 + 1) % w]
        + (1 - fx) * fy * image[y1, x0 % w]
        + fx * fy * image[y1, (x0 + 1) % w]
    )


def test_scene_sampling_is_deterministic_and_well_formed():
    assert make_scene(5) == make_scene(5) and make_scene(5) != make_scene(6)
    for seed in range(20):
        scene = make_scene(seed)
        assert 3 <= len(scene.landmarks) <= 6 and 1 <= len(scene.movers) <= 2
        names = [lm.name for lm in scene.landmarks] + [m.name for m in scene.movers]
        assert len(set(names)) == len(names)
        assert len({lm.colour for lm in scene.landmarks} | {m.colour for m in scene.movers}) == len(names)
        for lm in scene.landmarks:
            assert lm.name.split()[0] == lm.colour and lm.name.split()[1] in LANDMARK_NOUNS[lm.shape]
        assert abs(scene.camera.yaw_rate_deg) >= 1.5  # mostly yaw


def test_render_is_deterministic(clips):
    again = render_clip(make_scene(0), H, W, FRAMES, rays_per_chunk=1)  # one frame at a time
    assert np.array_equal(again.frames, clips[0].frames) and np.array_equal(again.flow, clips[0].flow)
    assert not np.array_equal(clips[1].frames, clips[0].frames)


def test_clip_arrays_and_metadata(clips):
    clip = clips[2]
    assert clip.frames.shape == (FRAMES, H, W, 3) and clip.frames.dtype == np.uint8
    assert clip.flow.shape == (FRAMES, H, W, 2) and clip.flow.dtype == np.float32
    assert np.array_equal(clip.flow[-1], clip.flow[-2])
    assert (clip.flow[..., 0] >= -W / 2).all() and (clip.flow[..., 0] < W / 2).all()
    meta = json.loads(json.dumps(clip.metadata))
    scene = make_scene(2)
    assert meta["caption"] == scene_caption(scene) and meta["view_captions"] == view_captions(scene)
    assert [lm["name"] for lm in meta["scene"]["landmarks"]] == [lm.name for lm in scene.landmarks]
    first = scene.landmarks[0]
    assert meta["tracks_deg"][first.name][0] == pytest.approx([first.lon_deg, first.lat_deg], abs=1e-9)


def test_static_flow_is_the_camera_rotation_and_explains_the_pixels(clips):
    """Warping frame t+1 back by the flow reproduces frame t on static pixels far better than no
    flow, a scaled or shifted flow, or the flow without its vertical part (under pitch/roll); and
    static pixels carry exactly ``rotation_flow``."""
    for seed in (0, 1, 4):
        clip, scene = clips[seed], make_scene(seed)
        orientation = scene.camera.orientation(np.arange(FRAMES))
        frames = clip.frames.astype(np.float64) / 255
        errors = {"true": [], "zero": [], "scaled": [], "shifted": [], "no_dy": []}
        for t in range(FRAMES - 2):
            camera = rotation_flow(H, W, orientation[t].T @ orientation[t + 1]).float().numpy()
            static = np.abs(clip.flow[t] - camera).max(-1) < 1e-4
            assert static.mean() > 0.9
            # Drop pixels that land on or next to a moving object in frame t+1.
            camera_next = rotation_flow(H, W, orientation[t + 1].T @ orientation[t + 2]).float().numpy()
            moving_next = np.abs(clip.flow[t + 1] - camera_next).max(-1) > 1e-4
            land = _backward_warp(moving_next[..., None].astype(float), clip.flow[t])[..., 0] > 0
            keep = static & ~land
            keep[:6] = keep[-6:] = False  # rows near the poles: bilinear warping there is poor
            no_dy = clip.flow[t] * np.array([1.0, 0.0], dtype=np.float32)
            flow = clip.flow[t]
            flows = {"true": flow, "zero": 0 * flow, "scaled": 1.3 * flow, "shifted": flow + 0.5, "no_dy": no_dy}
            for name, flow in flows.items():
                errors[name].append(np.abs(_backward_warp(frames[t + 1], flow) - frames[t])[keep].mean())
        err = {k: float(np.mean(v)) for k, v in errors.items()}
        assert err["true"] < 0.4 * err["zero"], err
        assert err["true"] < 0.8 * min(err["scaled"], err["shifted"]), err
        if scene.camera.pitch_amp_deg > 0 or scene.camera.roll_amp_deg > 0:  # the vertical part matters too
            assert err["true"] < 0.8 * err["no_dy"], err


def test_moving_object_flow_tracks_its_centroid():
    """A landmark and a moving object, tracked by colour: the centroid displacement between
    frames matches the mean flow over the object (camera yaw + pitch + roll, object moving east)."""
    scene = _scene(
        landmarks=[Landmark("red tower", "square", "red", 20.0, 5.0, 12.0, 0.0)],
        movers=[MovingObject("magenta ball", "disc", "magenta", -60.0, 10.0, 10.0, 0.0, 8.0)],
        camera=CameraMotion(3.5, 3.0, 20.0, 2.0, 25.0),
    )
    clip = render_clip(scene, 128, 256, 4)
    for name, colour, tol in (("red tower", "red", 0.3), ("magenta ball", "magenta", 0.15)):
        moved, predicted = [], []
        for t in range(3):
            now, later = _colour_mask(clip.frames[t], colour), _colour_mask(clip.frames[t + 1], colour)
            assert now.sum() > 100, name
            centroid = [np.array([xs.mean(), ys.mean()]) for ys, xs in (np.nonzero(now), np.nonzero(later))]
            moved.append(centroid[1] - centroid[0])
            predicted.append(clip.flow[t][now].mean(0))
        assert np.abs(np.mean(moved, 0) - np.mean(predicted, 0)).max() < tol, (name, moved, predicted)
    # The ball's own motion shows: its flow differs from the camera's by about 8 deg east per frame.
    ball = _colour_mask(clip.frames[0], "magenta")
    camera = rotation_flow(128, 256, scene.camera.orientation(0).T @ scene.camera.orientation(1)).numpy()
    assert (clip.flow[0][ball] - camera[ball])[:, 0].mean() == pytest.approx(8.0 / 360 * 256, rel=0.1)


def test_seam_is_continuous(clips):
    """End continuity (mean |last column - first column|) within 25% of the mean difference of
    adjacent interior columns, pooled over the clips; and exactly: after a 180 degree yaw the frame
    equals frame 0 rolled by W/2, so the seam columns are neighbours like any others."""
    frames = [clip.frames.astype(np.float64) for clip in clips]
    seam = np.mean([np.abs(f[:, :, -1] - f[:, :, 0]).mean() for f in frames])
    interior = np.mean([np.abs(np.diff(f, axis=2)).mean() for f in frames])
    assert abs(seam / interior - 1) <= 0.25, seam / interior
    base = make_scene(3)
    spin = _scene(landmarks=base.landmarks, camera=CameraMotion(180.0 / 7, 0.0, 30.0, 0.0, 30.0))
    turned = render_clip(spin, 32, 64, 8).frames
    assert np.abs(turned[7].astype(int) - np.roll(turned[0], 32, axis=1).astype(int)).max() <= 1


def test_view_captions_follow_the_view_geometry():
    scene = _scene(
        landmarks=[
            Landmark("red tower", "square", "red", 90.0, 5.0, 12.0, 0.0),
            Landmark("yellow star", "star", "yellow", 180.0, 0.0, 12.0, 0.0),
            Landmark("black ring", "ring", "black", -90.0, 10.0, 12.0, 0.0),
        ],
        camera=CameraMotion(10.0, 0.0, 30.0, 0.0, 30.0),
    )
    captions = view_captions(scene)
    assert len(captions) == 4
    assert [("red tower" in c, "yellow star" in c, "black ring" in c) for c in captions] == [
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert all(c.startswith("a view of") and "grassy meadow" in c for c in captions)
    # The rendered pixels agree: the red landmark shows in horizontal view 1 only.
    frame = torch.from_numpy(render_clip(scene, H, W, 2).frames[0]).permute(2, 0, 1)
    views = horizontal_views(frame, 32).permute(0, 2, 3, 1).numpy()
    red = [_colour_mask(view, "red").sum() for view in views]
    assert red[1] > 10 and red[0] == red[2] == red[3] == 0
    # After 9 frames of 10 deg/frame yaw the red tower (lon 90) is straight ahead: view 0.
    assert "red tower" in view_captions(scene, frame=9)[0]
    caption = scene_caption(scene)
    assert caption.startswith("a panoramic view of a grassy meadow under a clear blue sky with a red tower")
