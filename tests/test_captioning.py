"""360 Text Fusion: views look the right way, template and chat fusion, the resumable caption run."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from dvd360.captioning import (ChatFuser, LandmarkCaptioner, caption_clips, first_frame_views, make_fuser,
                               template_fuse, write_caption_csvs)
from dvd360.captioning.fusion import EXAMPLES, TASK


def test_landmark_at_longitude_90_is_seen_in_the_second_view_only(tmp_path):
    """A synthetic scene with one landmark at lon 90: the right-hand view (lon 90) names it,
    the left-hand view (lon 270) does not; the captions agree with the scene's geometric truth."""
    from dvd360.data.synthetic import Landmark, make_scene, render_clip, view_captions

    scene = dataclasses.replace(make_scene(0), movers=(), landmarks=(
        Landmark(name="red tower", shape="square", colour="red", lon_deg=90.0, lat_deg=5.0,
                 radius_deg=12.0, spin_deg=0.0),))
    clip = render_clip(scene, 64, 128, 2)
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"clips": {"c": clip.metadata}}))
    captioner = LandmarkCaptioner.from_metadata(metadata)
    captions = captioner.caption(first_frame_views(clip.frames[0], size=64), "c")
    assert "red tower" in captions[1]
    assert "red tower" not in captions[3]
    assert ["red tower" in c for c in captions] == ["red tower" in c for c in view_captions(scene, 0)]


def test_views_face_their_longitudes():
    """Hand-made ERP: a green patch centred on lon 90 appears in view 1 only; lon 270 in view 3 only."""
    erp = np.zeros((64, 128, 3), dtype=np.uint8)
    column = lambda lon: int((lon + 180) / 360 * 128)  # noqa: E731  (pixel column of a longitude)
    erp[28:36, column(90) - 4:column(90) + 4] = (0, 255, 0)
    erp[28:36, column(-90) - 4:column(-90) + 4] = (0, 0, 255)
    views = first_frame_views(erp, size=32)
    green = [int((v[..., 1] > 128).sum()) for v in views]
    blue = [int((v[..., 2] > 128).sum()) for v in views]
    assert green[1] > 0 and green[0] == green[2] == green[3] == 0
    assert blue[3] > 0 and blue[0] == blue[1] == blue[2] == 0


def test_template_fusion_mentions_every_view():
    captions = ["A red tower on a meadow.", "a blue ball", "an empty desert", "two green kites"]
    fused = template_fuse(captions)
    for caption, direction in zip(["a red tower on a meadow", "a blue ball", "an empty desert", "two green kites"],
                                  ["in front", "to the right", "behind", "to the left"]):
        assert f"{direction}, {caption}" in fused
    assert template_fuse(captions) == fused  # deterministic
    with pytest.raises(ValueError, match="4 view captions"):
        template_fuse(captions[:3])


class _ChatServer(BaseHTTPRequestHandler):
    requests: list = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        reply = json.dumps({"choices": [{"message": {"content": "  A meadow with a tower.\n"}}]}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    server = HTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _ChatServer.requests, _ChatServer.status = [], 200
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_chat_fuser_sends_task_examples_and_views(chat_server, monkeypatch):
    monkeypatch.setenv("DVD360_LLM_URL", chat_server)
    monkeypatch.setenv("DVD360_LLM_MODEL", "some-model")
    monkeypatch.setenv("DVD360_LLM_API_KEY", "secret")
    name, fuse = make_fuser()
    assert name == "chat:some-model"
    assert fuse(["v0", "v1", "v2", "v3"]) == "A meadow with a tower."
    sent = _ChatServer.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer secret"
    messages = sent["body"]["messages"]
    assert sent["body"]["model"] == "some-model" and sent["body"]["temperature"] == 0
    assert messages[0] == {"role": "system", "content": TASK}
    assert len(messages) == 2 + 2 * len(EXAMPLES)
    assert messages[-1]["content"] == "front: v0\nright: v1\nback: v2\nleft: v3"
    _ChatServer.status = 400
    with pytest.raises(RuntimeError, match="HTTP 400"):
        ChatFuser(chat_server, "some-model")(["v0", "v1", "v2", "v3"])


def test_without_endpoint_the_template_fuses(monkeypatch):
    monkeypatch.delenv("DVD360_LLM_URL", raising=False)
    monkeypatch.delenv("DVD360_LLM_MODEL", raising=False)
    assert make_fuser()[0] == "template"
    monkeypatch.setenv("DVD360_LLM_URL", "http://localhost:1")
    with pytest.raises(ValueError, match="DVD360_LLM_MODEL"):
        make_fuser()


def test_caption_run_reports_failures_and_resumes(tiny_web360, tmp_path):
    from dvd360.data.web360 import index_web360, read_captions

    index = index_web360(tiny_web360)
    broken = dataclasses.replace(index.clips[0], id="broken", video_path=tmp_path / "missing.mp4")
    captioner = LandmarkCaptioner.from_metadata(tiny_web360 / "metadata.json")
    calls = []

    class Counting:
        name = captioner.name

        def caption(self, images, clip_id):
            calls.append(clip_id)
            return captioner.caption(images, clip_id)

    progress = tmp_path / "progress.jsonl"
    settings = {"captioner": "landmarks", "fuser": "template", "view_size": 64}
    first = caption_clips([*index.clips[:2], broken, *index.clips[2:]], Counting(), template_fuse, progress,
                          settings, view_size=64)
    assert [f["videoid"] for f in first.failures] == ["broken"]
    assert "missing.mp4" in first.failures[0]["video"]
    assert [r["videoid"] for r in first.records] == [c.id for c in index.clips]
    record = first.records[0]
    assert len(record["views"]) == 4 and record["fused"] == template_fuse(record["views"])

    calls.clear()
    again = caption_clips(index.clips, Counting(), template_fuse, progress, settings, view_size=64)
    assert again.resumed == len(index.clips) and calls == [] and again.records == first.records
    changed = caption_clips(index.clips[:1], Counting(), template_fuse, progress, {**settings, "view_size": 32},
                            view_size=32)
    assert changed.resumed == 0 and calls == [index.clips[0].id] * 2  # views + ERP: captioned again
    assert len(progress.read_text().splitlines()) == 1  # entries of other fingerprints are dropped, not mixed
    calls.clear()
    other_bytes = dataclasses.replace(index.clips[0], video_path=index.clips[1].video_path)  # same id and path
    recaptioned = caption_clips([other_bytes], Counting(), template_fuse, progress, settings, view_size=64,
                                inputs={"scene_metadata": tiny_web360 / "metadata.json"})
    assert recaptioned.resumed == 0 and calls == [index.clips[0].id] * 2

    paths = write_caption_csvs(first.records, tmp_path / "captions")
    fused, erp = read_captions(paths["fused"]), read_captions(paths["erp"])
    assert list(fused) == list(erp) == [c.id for c in index.clips]
    assert fused[index.clips[0].id] == record["fused"] and erp[index.clips[0].id] == record["erp"]
