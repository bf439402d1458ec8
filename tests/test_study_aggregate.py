"""Answer validation and Table 1: known winners, exclusions with reasons, the CLI, the reports."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dvd360.cli import main
from dvd360.study.aggregate import NoValidAnswers, aggregate, render_markdown, write_reports
from dvd360.study.answers import answers_digest, load_key, StudyKeyError
from dvd360.study.render import build_study
from study_support import answer_document, sign_answers, write_generations

METHODS = ("A", "B", "C", "D")
RESAMPLES = 500


@pytest.fixture(scope="module")
def key_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("aggregate")
    generations = write_generations(root / "gen", prompts={f"p{i:02d}": f"scene {i}" for i in range(4)})
    return build_study(generations, root / "study", methods=METHODS, raters=12, sets_per_packet=3,
                       seed=5, profile="tiny").key_path


@pytest.fixture(scope="module")
def key(key_path) -> dict:
    return json.loads(key_path.read_text())


def write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def noisy_rater(seed: int, winner: str = "D", p_winner: float = 0.7):
    """Picks `winner` with probability p_winner, else a uniform other method; consistent on repeats."""
    rng = random.Random(seed)
    memo = {}

    def choose(set_id, criterion):
        if (set_id, criterion) not in memo:
            memo[(set_id, criterion)] = winner if rng.random() < p_winner else rng.choice(
                [m for m in METHODS if m != winner])
        return memo[(set_id, criterion)]
    return choose


def consistent(key: dict, packet_id: str, choose):
    """Answer a repeated set exactly as its original (passes the attention check)."""
    sets = key["packets"][packet_id]["sets"]
    return lambda set_id, criterion: choose(sets[set_id]["repeat_of"] or set_id, criterion)


def test_answers_digest_is_sha256_of_sorted_compact_json():
    answers = {"set-02": {"x": {"label": "1", "answered_at": "t"}}, "set-01": {}}
    text = '{"set-01":{},"set-02":{"x":{"answered_at":"t","label":"1"}}}'
    assert answers_digest(answers) == hashlib.sha256(text.encode()).hexdigest()


def test_aggregation_recovers_the_known_winner(tmp_path, key, key_path):
    files, expected = [], np.zeros((len(key["criteria"]), len(METHODS)))
    for r, packet_id in enumerate(key["packets"]):
        choose = consistent(key, packet_id, noisy_rater(r))
        files.append(write(tmp_path / f"{packet_id}.json", answer_document(key, packet_id, choose)))
        for set_id, key_set in key["packets"][packet_id]["sets"].items():
            if not key_set["repeat_of"]:
                for c, criterion in enumerate(key["criteria"]):
                    expected[c, METHODS.index(choose(set_id, criterion))] += 1
    result = aggregate(files, key_path, n_resamples=RESAMPLES)
    assert result["raters"] == 12 and result["excluded"] == [] and result["sets_per_rater"] == [3]
    assert result["votes_per_criterion"] == 36
    strengths = result["bradley_terry"]["strength"]
    for c, criterion in enumerate(key["criteria"]):
        row = result["share_pct"][criterion]
        for m, method in enumerate(METHODS):
            assert row[method]["votes"] == expected[c, m]
            assert row[method]["pct"] == pytest.approx(100 * expected[c, m] / 36)
            assert row[method]["ci_low"] <= row[method]["pct"] <= row[method]["ci_high"]
        assert max(row, key=lambda m: row[m]["pct"]) == "D"
        assert row["D"]["ci_low"] > 25  # above chance (1 in 4)
        assert max(strengths[criterion], key=lambda m: strengths[criterion][m]["theta"]) == "D"
    assert sum(v["p_first"] for v in strengths["all"].values()) == pytest.approx(1)


def test_unanimous_raters_give_100_percent_and_a_zero_width_interval(tmp_path, key, key_path):
    files = [write(tmp_path / f"{p}.json", answer_document(key, p, lambda s, c: "B")) for p in list(key["packets"])[:3]]
    result = aggregate(files, key_path, n_resamples=RESAMPLES)
    for criterion in key["criteria"]:
        assert result["share_pct"][criterion]["B"] == {"pct": 100.0, "ci_low": 100.0, "ci_high": 100.0, "votes": 9}
        assert result["share_pct"][criterion]["A"]["pct"] == 0.0


def test_tampered_truncated_and_invalid_files_are_excluded_with_reasons(tmp_path, key, key_path):
    packets = list(key["packets"])
    good = answer_document(key, packets[0], lambda s, c: "D")
    files = {"good": write(tmp_path / "good.json", good)}

    tampered = json.loads(json.dumps(good))
    first_set = next(iter(tampered["answers"]))
    tampered["answers"][first_set]["graphics_quality"]["label"] = next(
        label for label in "1234" if label != good["answers"][first_set]["graphics_quality"]["label"])
    files["tampered"] = write(tmp_path / "tampered.json", tampered)
    text = json.dumps(answer_document(key, packets[1], lambda s, c: "D"), indent=2)
    files["truncated"] = tmp_path / "truncated.json"
    files["truncated"].write_text(text[: len(text) // 2])
    wrong_packet = answer_document(key, packets[2], lambda s, c: "D")
    wrong_packet["mapping_checksum"] = key["packets"][packets[3]]["mapping_checksum"]
    files["checksum"] = write(tmp_path / "checksum.json", wrong_packet)
    incomplete = answer_document(key, packets[4], lambda s, c: "D")
    last_set = list(incomplete["answers"])[-1]
    del incomplete["answers"][last_set]["motion_pattern"]
    incomplete = sign_answers(key, incomplete)
    files["incomplete"] = write(tmp_path / "incomplete.json", incomplete)
    sets5 = key["packets"][packets[5]]["sets"]
    inattentive = answer_document(key, packets[5], lambda s, c: "A" if sets5[s]["repeat_of"] else "D")
    files["attention"] = write(tmp_path / "attention.json", inattentive)
    schema = answer_document(key, packets[6], lambda s, c: "D")
    schema["exported_at"] = "yesterday"
    files["schema"] = write(tmp_path / "schema.json", schema)
    foreign = answer_document(key, packets[7], lambda s, c: "D")
    foreign["packet_id"] = "rater-01-ffffff"
    files["foreign"] = write(tmp_path / "foreign.json", foreign)
    earlier = answer_document(key, packets[0], lambda s, c: "A", exported_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    files["duplicate"] = write(tmp_path / "duplicate.json", earlier)

    result = aggregate(list(files.values()), key_path, n_resamples=RESAMPLES)
    reasons = {Path(e["file"]).stem: e["reason"] for e in result["excluded"]}
    assert result["raters"] == 1 and [e["file"] for e in result["included"]] == [str(files["good"])]
    assert "answers_sha256 does not match the answers" in reasons["tampered"]
    assert reasons["truncated"].startswith("not valid JSON, truncated or damaged?")
    assert "mapping checksum differs from the key's" in reasons["checksum"]
    assert f"incomplete: 1 of 20 answers missing ({last_set}/motion_pattern)" in reasons["incomplete"]
    assert "failed the attention check" in reasons["attention"] and "for 0 of 5 criteria, at least 3" in reasons["attention"]
    assert "exported_at" in reasons["schema"] and "schema" in reasons["schema"]
    assert "'rater-01-ffffff' is not in the key" in reasons["foreign"]
    assert reasons["duplicate"].startswith(f"duplicate: packet {packets[0]} is also answered in")
    markdown = render_markdown(result)
    assert "## Excluded answer files" in markdown and "tampered.json" in markdown


def test_no_valid_file_is_an_error_listing_every_reason(tmp_path, key_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(NoValidAnswers, match=r"(?s)empty\.json: empty answer file.*missing\.json: no such answer file"):
        aggregate([empty, tmp_path / "missing.json"], key_path, n_resamples=RESAMPLES)


def test_an_edited_key_is_refused(tmp_path, key):
    edited = json.loads(json.dumps(key))
    packet = next(iter(edited["packets"].values()))
    labels = next(iter(packet["sets"].values()))["labels"]
    labels["1"], labels["2"] = labels["2"], labels["1"]
    path = write(tmp_path / "key.json", edited)
    with pytest.raises(StudyKeyError, match=r"key\.json: packet .* does not match its checksum"):
        load_key(path)


def test_cli_prints_table1_with_the_paper_beside_it_and_writes_reports(tmp_path, key, key_path):
    files = [str(write(tmp_path / f"{p}.json", answer_document(key, p, consistent(key, p, noisy_rater(i)))))
             for i, p in enumerate(list(key["packets"])[:4])]
    (tmp_path / "bad.json").write_text("{")
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["study", "aggregate", *files, str(tmp_path / "bad.json"), "--key", str(key_path),
                                       "--paper", "--resamples", str(RESAMPLES), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| Method | Graphics quality | Frame consistency | End continuity | Content distribution | Motion pattern |" \
        in result.stdout
    assert "paper 51.6" in result.stdout and "paper 74.6" in result.stdout
    assert "Profile tiny" in result.stdout
    assert "bad.json: not valid JSON" in result.stderr
    report = json.loads((out / "table1.json").read_text())
    assert report["raters"] == 4 and report["paper_table1"]["share_pct"]["end_continuity"]["D"] == 71.8
    assert (out / "table1.md").read_text() == render_markdown(report)
    html = (out / "table1.html").read_text()
    assert "<th>Graphics quality</th>" in html and "paper 51.6" in html
    assert write_reports(report, out)["json"] == out / "table1.json"


def test_cli_build_reports_bad_input_by_file(tmp_path):
    generations = write_generations(tmp_path / "gen", methods=("A", "B"), prompts={"p00": "x"})
    (generations / "B" / "p00-s0.json").write_text("{not json")
    result = CliRunner().invoke(main, ["study", "build", "--generations", str(generations), "--methods", "A,B",
                                       "--raters", "2", "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "B/p00-s0.json: unreadable generation record" in result.output


def test_a_file_relabelled_as_another_packet_is_refused(tmp_path, key, key_path):
    own, other = list(key["packets"])[:2]
    relabelled = answer_document(key, own, lambda s, c: "D")
    relabelled.update(packet_id=other, rater_id=key["packets"][other]["rater_id"],
                      mapping_checksum=key["packets"][other]["mapping_checksum"])
    path = write(tmp_path / "relabelled.json", sign_answers(key, relabelled, token_of=own))
    with pytest.raises(NoValidAnswers, match=f"answers_mac does not verify with packet {other}'s token"):
        aggregate([path], key_path, n_resamples=RESAMPLES)


def test_the_answer_token_is_only_in_its_own_packet_pages_and_never_exported(key, key_path):
    from dvd360.study.packets import answer_token

    packets = key_path.parent / "packets"
    tokens = {p: answer_token(p, packet["secret"]) for p, packet in key["packets"].items()}
    for packet_id, packet in key["packets"].items():
        pages = "".join(page.read_text() for page in (packets / packet["rater_id"]).glob("*.html"))
        assert {p for p, token in tokens.items() if token in pages} == {packet_id}
        assert tokens[packet_id] not in json.dumps(answer_document(key, packet_id, lambda s, c: "A"))


@pytest.mark.parametrize("case, content, reason", [
    ("nested", "[" * 200_000 + "]" * 200_000, "nests 200000 levels deep, more than the 16 allowed (checked before parsing)"),
    ("nan", '{"schema": NaN,\n "x": [Infinity, -Infinity]}', "3 non-finite number(s) (NaN/Infinity) on line(s) 1, 2"),
    ("latin1", '{"schema": "sc\xe8ne"}'.encode("latin-1"), "not UTF-8 text (line 1, byte 14"),
    ("list", "[1, 2]", "not a dvd360 answer file (schema 'list'"),
])
def test_hostile_answer_files_are_refused_before_parsing(tmp_path, key_path, case, content, reason):
    path = tmp_path / f"{case}.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(NoValidAnswers) as error:
        aggregate([path], key_path, n_resamples=RESAMPLES)
    assert f"{path}: " in str(error.value) and reason in str(error.value)


def test_a_huge_answer_file_is_refused_by_its_size_without_reading_it(tmp_path, key_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:  # sparse: 55 MiB on paper, nothing on disk
        handle.truncate(55 * 2**20)
    with pytest.raises(NoValidAnswers, match=r"huge\.json: answer file of 55\.0 MiB, over the 1\.0 MiB limit \(checked before reading\)"):
        aggregate([path], key_path, n_resamples=RESAMPLES)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run study.js's HMAC")
def test_study_js_signs_answers_exactly_as_python_checks_them(tmp_path):
    from dvd360.study.answers import answers_mac

    source = (Path(__file__).parents[1] / "dvd360/study/static/study.js").read_text()

    def function(name: str) -> str:
        start = source.index(f"  function {name}(")
        return source[start:source.index("\n  }\n", start) + 4]

    answers = {"set-01": {"q": {"label": "2", "answered_at": "2026-01-01T00:00:00Z"}}, "scène 雪": {}}
    token, checksum = "ab" * 32, "cd" * 32
    script = ("var window = globalThis;\n" + "".join(map(function, ("canonical", "hex", "hmacSha256Hex"))) +
              f"hmacSha256Hex({json.dumps(token)}, canonical({{packet_id: 'p', rater_id: 'r', "
              f"mapping_checksum: {json.dumps(checksum)}, answers: {json.dumps(answers)}}})).then(console.log);")
    (tmp_path / "sign.js").write_text(script, encoding="utf-8")
    output = subprocess.run(["node", str(tmp_path / "sign.js")], capture_output=True, text=True, check=True).stdout
    assert output.strip() == answers_mac(token, "p", "r", checksum, answers)


def test_cli_counts_the_good_file_and_names_each_hostile_one(tmp_path, key, key_path):
    own, other = list(key["packets"])[:2]
    good = write(tmp_path / "good.json", answer_document(key, other, lambda s, c: "D"))
    relabelled = answer_document(key, own, lambda s, c: "A")
    relabelled.update(packet_id=other, rater_id=key["packets"][other]["rater_id"],
                      mapping_checksum=key["packets"][other]["mapping_checksum"])
    relabelled = write(tmp_path / "relabelled.json", sign_answers(key, relabelled, token_of=own))
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 200_000 + "]" * 200_000)
    with open(tmp_path / "huge.json", "wb") as handle:
        handle.truncate(55 * 2**20)
    hostile = [relabelled, nested, tmp_path / "huge.json"]
    out = tmp_path / "report"
    alone = CliRunner().invoke(main, ["study", "aggregate", *map(str, hostile), "--key", str(key_path),
                                      "--out", str(out)])
    assert alone.exit_code == 1 and isinstance(alone.exception, SystemExit) and not out.exists()
    assert "relabelled.json: answers_mac does not verify" in alone.output
    assert "nested.json: answer file nests 200000 levels deep" in alone.output
    assert "huge.json: answer file of 55.0 MiB, over the 1.0 MiB limit" in alone.output
    beside = CliRunner().invoke(main, ["study", "aggregate", str(good), *map(str, hostile), "--key", str(key_path),
                                       "--resamples", str(RESAMPLES), "--out", str(out)])
    assert beside.exit_code == 0, beside.output
    report = json.loads((out / "table1.json").read_text())
    assert [entry["file"] for entry in report["included"]] == [str(good)] and len(report["excluded"]) == 3
