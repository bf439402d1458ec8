"""Study packets: assignment and shuffles, the key, rendering from tiny videos, escaping, no leaks."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from dvd360.study.packets import (PromptSet, StudyInputError, canonical_json, find_prompt_sets,
                                  plan_packets)
from dvd360.study.render import build_study
from study_support import HOSTILE_PROMPT, write_generations

METHODS = ("A", "B", "C", "D")
SECRET = "5e" * 32  # a fixed study secret: the shuffles are reproducible from it


@pytest.fixture(scope="module")
def generations(tmp_path_factory) -> Path:
    return write_generations(tmp_path_factory.mktemp("generations"))


@pytest.fixture(scope="module")
def study(generations, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "study"
    return build_study(generations, out, methods=METHODS, raters=3, seed=7, profile="tiny")


def fake_sets(count: int) -> list[PromptSet]:
    return [PromptSet(f"p{i:02d}", 0, f"prompt {i}", {m: Path(f"{m}/p{i:02d}-s0.mp4") for m in METHODS})
            for i in range(count)]


def test_assignment_is_balanced_shuffled_and_seeded():
    sets = fake_sets(6)
    packets = plan_packets(sets, METHODS, raters=6, sets_per_packet=3, seed=1, attention_check=False, study_secret=SECRET)
    assert [p.rater_id for p in packets] == [f"rater-{i:02d}" for i in range(1, 7)]
    seen = Counter(s.prompt_set.prompt_id for p in packets for s in p.sets)
    assert set(seen.values()) == {3}  # 6 raters x 3 sets over 6 prompt sets: each seen 3 times
    for packet in packets:
        assert len({s.prompt_set.prompt_id for s in packet.sets}) == 3
        for packet_set in packet.sets:
            assert sorted(packet_set.order) == sorted(METHODS)
            assert list(packet_set.labels) == ["1", "2", "3", "4"]
    orders = {s.order for p in packets for s in p.sets}
    assert len(orders) > 3  # label orders really vary
    again = plan_packets(sets, METHODS, raters=6, sets_per_packet=3, seed=1, attention_check=False, study_secret=SECRET)
    assert [p.mapping() for p in again] == [p.mapping() for p in packets]
    other = plan_packets(sets, METHODS, raters=6, sets_per_packet=3, seed=2, attention_check=False, study_secret=SECRET)
    assert [p.mapping() for p in other] != [p.mapping() for p in packets]


def test_attention_check_repeats_one_set_later_in_another_order():
    packets = plan_packets(fake_sets(5), METHODS, raters=4, seed=3, attention_check=True, study_secret=SECRET)
    for packet in packets:
        assert len(packet.sets) == 6
        repeats = [(i, s) for i, s in enumerate(packet.sets) if s.repeat_of]
        assert len(repeats) == 1
        index, repeat = repeats[0]
        original_index = [s.set_id for s in packet.sets].index(repeat.repeat_of)
        original = packet.sets[original_index]
        assert index - original_index >= 2
        assert repeat.prompt_set == original.prompt_set and repeat.order != original.order


def test_mapping_checksum_is_an_hmac_of_the_canonical_mapping():
    packet = plan_packets(fake_sets(2), METHODS, raters=1, seed=0, study_secret=SECRET)[0]
    message = json.dumps({"packet_id": packet.packet_id, "sets": packet.mapping()}, sort_keys=True,
                         separators=(",", ":")).encode()
    assert packet.mapping_checksum == hmac.new(bytes.fromhex(packet.secret), message, hashlib.sha256).hexdigest()
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_find_prompt_sets_skips_incomplete_sets_and_names_bad_files(tmp_path):
    root = write_generations(tmp_path / "gen", prompts={"p00": "one", "p01": "two"})
    (root / "C" / "p01-s0.mp4").unlink()
    with pytest.raises(StudyInputError, match=r"p01-s0\.json: its video p01-s0\.mp4 is missing"):
        find_prompt_sets(root, METHODS)
    (root / "C" / "p01-s0.json").unlink()
    sets, skipped = find_prompt_sets(root, METHODS)
    assert [s.name for s in sets] == ["p00-s0"] and skipped == ["p01-s0: no video from C"]
    (root / "B" / "p00-s0.json").write_text(json.dumps({"method": "X", "prompt": "one", "prompt_id": "p00", "seed": 0}))
    with pytest.raises(StudyInputError, match=r"B/p00-s0\.json: record says method 'X'"):
        find_prompt_sets(root, METHODS)
    with pytest.raises(StudyInputError, match=r"no generations for method 'E'"):
        find_prompt_sets(root, ("A", "E"))


def test_truncated_video_is_refused_before_building(tmp_path):
    root = write_generations(tmp_path / "gen", prompts={"p00": "one"})
    video = root / "D" / "p00-s0.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(StudyInputError, match=r"D/p00-s0\.mp4"):
        build_study(root, tmp_path / "out", methods=METHODS, raters=1)
    assert not (tmp_path / "out").exists()


def test_packet_renders_from_tiny_videos(study):
    out = study.out_dir
    key = json.loads((out / "key.json").read_text())
    assert len(key["packets"]) == 3 and key["methods"] == list(METHODS)
    for packet in study.packets:
        folder = out / "packets" / packet.rater_id
        assert {"index.html", "finish.html", "static", "media"} <= {p.name for p in folder.iterdir()}
        for packet_set in packet.sets:
            page = (folder / f"{packet_set.set_id}.html").read_text()
            for label in packet_set.labels:
                media = folder / "media" / f"{packet_set.set_id}-v{label}.js"
                assert f'src="media/{media.name}"' in page
                assert media.stat().st_size > 500
                assert f'name="end_continuity" value="{label}"' in page
            assert page.count('class="view360"') == 4
            assert packet.mapping_checksum in page
        assert key["packets"][packet.packet_id]["mapping_checksum"] == packet.mapping_checksum


def test_prompt_with_script_quotes_and_non_ascii_renders_as_text(study):
    packet = study.packets[0]
    hostile = [s for s in packet.sets if s.prompt_set.prompt == HOSTILE_PROMPT][0]
    page = (study.out_dir / "packets" / packet.rater_id / f"{hostile.set_id}.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert ("<q>a &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &#39;quoted&#39; &amp; &#34;double&#34; "
            "scène — 雪山 &lt;/q&gt;</q>") in page


def test_packets_hold_no_paths_and_no_methods(study, generations):
    folder = study.out_dir / "packets"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    sources = {str(generations), str(study.out_dir), str(Path.home()), "/tmp", "file:"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for source in sources:
            assert source not in text, f"{path} holds {source}"
        if path.suffix == ".html":
            for link in re.findall(r'(?:src|href)="([^"]*)"', text):
                assert not link.startswith(("/", "\\")) and ":" not in link.split("/")[0], (path, link)
            packet_json = re.search(r'id="dvd360-packet">(.*?)</script>', text, re.S).group(1)
            assert set(json.loads(packet_json)) == {"answers_schema", "packet_id", "rater_id",
                                                    "mapping_checksum", "answer_token", "criteria", "sets"}
            for source_name in ("A/", "B/", "C/", "D/", "-s0.mp4"):
                assert source_name not in text


def test_pages_never_name_the_methods(tmp_path):
    methods = ("animatediffxyz", "dvd360xyz")
    generations = write_generations(tmp_path / "gen", methods=methods, prompts={"p00": "a forest"})
    built = build_study(generations, tmp_path / "study", methods=methods, raters=2, seed=0)
    assert methods[0] in (built.key_path).read_text()
    for path in (tmp_path / "study" / "packets").rglob("*"):
        if path.is_file():
            name_and_text = path.name + path.read_text(encoding="utf-8")
            assert not any(method in name_and_text for method in methods), path


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_study_secret_is_random_kept_in_the_key_only_and_reused_from_it(study, generations, tmp_path):
    key = json.loads(study.key_path.read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", key["study_secret"]) and key["built_by"] == "cli"
    fresh = build_study(generations, tmp_path / "fresh", methods=METHODS, raters=3, seed=7, profile="tiny")
    other = json.loads(fresh.key_path.read_text())
    assert other["study_secret"] != key["study_secret"]  # same seed, another secret: other mappings
    assert [p["mapping_checksum"] for p in other["packets"].values()] != [
        p["mapping_checksum"] for p in key["packets"].values()]
    secrets_in_key = [key["study_secret"], *(p["secret"] for p in key["packets"].values())]
    for path in (study.out_dir / "packets").rglob("*"):
        if path.is_file():
            assert not any(secret.encode() in path.read_bytes() for secret in secrets_in_key), path
    # a re-build in place reuses the key's secret: byte-identical packets and key
    before = _digests(study.out_dir)
    build_study(generations, study.out_dir, methods=METHODS, raters=3, seed=7, profile="tiny")
    assert _digests(study.out_dir) == before
    # and a given secret (another key's) reproduces that study elsewhere
    again = build_study(generations, tmp_path / "again", methods=METHODS, raters=3, seed=7, profile="tiny",
                        study_secret=key["study_secret"])
    assert _digests(again.out_dir) == before


def test_a_key_of_another_builder_is_never_replaced(generations, tmp_path):
    built = build_study(generations, tmp_path / "hand", methods=METHODS, raters=2, seed=7, profile="tiny")
    before = built.key_path.read_bytes()
    with pytest.raises(StudyInputError, match="written by cli, not by this pipeline build; refusing"):
        build_study(generations, tmp_path / "hand", methods=METHODS, raters=3, profile="tiny", built_by="pipeline")
    assert built.key_path.read_bytes() == before
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "key.json").write_text("{not json")
    with pytest.raises(StudyInputError, match="not a readable study key"):
        build_study(generations, tmp_path / "junk", methods=METHODS, raters=2, profile="tiny")


def test_cli_builds_away_from_the_pipeline_and_reuses_a_given_key(generations, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dvd360.cli.study import study as study_cli

    definition = str(Path(__file__).resolve().parents[1] / "eval" / "study.yaml")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(study_cli, ["build", "--generations", str(generations), "--profile", "tiny",
                                      "--raters", "3", "--definition", definition])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "studies" / "study" / "key.json").is_file() and not (tmp_path / "reports").exists()
    copy = runner.invoke(study_cli, ["build", "--generations", str(generations), "--profile", "tiny", "--raters", "3",
                                     "--out", "copy", "--secret-from", "studies/study/key.json",
                                     "--definition", definition])
    assert copy.exit_code == 0, copy.output
    assert _digests(tmp_path / "copy" / "packets") == _digests(tmp_path / "studies" / "study" / "packets")
