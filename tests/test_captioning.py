"""360 Text Fusion: views look the right way, template and chat fusion, the resumable caption run."""

from __future__ import annotations

import dataclasses
import json
import shutil
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


def _tiny_blip(folder, seed: int) -> None:
    """A BLIP-architecture captioning folder as save_pretrained writes it: a small config, a
    six-word tokenizer and random weights drawn from `seed` (nothing else depends on the seed)."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "view", "of", "the", "sea"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    layers = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = BlipConfig(projection_dim=16,
                        text_config={**layers, "vocab_size": len(words), "max_position_embeddings": 16,
                                     "bos_token_id": 2, "sep_token_id": 3, "pad_token_id": 0},
                        vision_config={**layers, "image_size": 32, "patch_size": 8})
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=BertTokenizer(str(folder / "vocab.txt"))).save_pretrained(folder)


def test_blip_captions_are_keyed_on_the_weights_not_the_name(tiny_web360, tmp_path, monkeypatch):
    """Two BLIP folders under one name that differ only in their weights never share captions;
    a hub id is resolved offline to its cache snapshot, whose content keys the captions."""
    import huggingface_hub

    from dvd360.captioning import BlipCaptioner, caption_settings
    from dvd360.captioning.stage import clip_fingerprint
    from dvd360.data.web360 import index_web360
    from dvd360.provenance import sha256_of

    clip = index_web360(tiny_web360).clips[0]
    folder, other = tmp_path / "blip", tmp_path / "blip-seed1"
    _tiny_blip(folder, seed=0)
    _tiny_blip(other, seed=1)
    files = {path.name: sha256_of(path) for path in folder.iterdir()}
    assert [name for name, sha in files.items() if sha != sha256_of(other / name)] == ["model.safetensors"]

    first = BlipCaptioner(str(folder), max_new_tokens=3, num_beams=1)
    progress = tmp_path / "progress.jsonl"
    run = lambda captioner: caption_clips([clip], captioner, template_fuse, progress,  # noqa: E731
                                          caption_settings(captioner, "template", 32), view_size=32)
    made = run(first)
    assert made.resumed == 0 and len(made.records[0]["views"]) == 4 and run(first).resumed == 1

    shutil.rmtree(folder)
    shutil.copytree(other, folder)  # the same name (and folder), other weights
    second = BlipCaptioner(str(folder), max_new_tokens=3, num_beams=1)
    assert second.name == first.name and second.weights_sha256 != first.weights_sha256
    keys = {clip_fingerprint(caption_settings(c, "template", 32), {}, clip) for c in (first, second)}
    assert len(keys) == 2 and run(second).resumed == 0

    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-blip"  # the Hugging Face cache layout of hub id someone/tiny-blip
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(other, snapshot)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    hub = BlipCaptioner("someone/tiny-blip", max_new_tokens=3, num_beams=1)
    assert hub.weights == snapshot and hub.weights_sha256 == second.weights_sha256
    with pytest.raises(FileNotFoundError, match="someone/absent: `someone/absent` is not in the Hugging Face cache"):
        BlipCaptioner("someone/absent")
