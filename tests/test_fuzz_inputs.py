"""Fuzzing the readers: every damaged input ends in a named error or a correct result, never a
traceback, never a partial output.

The corpus is built from tiny good files (a 6-frame 32x64 mp4, an npz flow, a prompts file, a
caption CSV, an answer file): truncations at many offsets, zeroed byte ranges, wrong sizes,
wrong dtypes, NaN/inf, deep nesting, wrong JSON shapes, odd encodings, huge sparse files. The
property tests (hypothesis) damage the same files at random offsets.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bad_inputs_support import flow_npz, good_video, index_end, sparse_file, truncated, zeroed
from dvd360.cli import main
from dvd360.cli.score_inputs import read_prompts
from dvd360.data.video import VideoError, check_video
from dvd360.data.web360 import load_flow_npz, parse_caption_csv
from dvd360.inputs import InputError, read_json
from dvd360.study.answers import AnswerFileError, read_answer_file

CUTS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
ZEROED = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.5), (0.45, 0.55), (0.6, 0.9), (0.9, 1.0))
HUGE = 300 * 2**20  # sparse: no disk space
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate, Phase.shrink),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def damaged(data: bytes) -> dict[str, bytes]:
    """Truncations at many offsets and zeroed ranges of `data`, by name."""
    variants = {f"cut{int(100 * f):02d}": truncated(data, f) for f in CUTS}
    variants |= {f"zero{int(100 * a):02d}-{int(100 * b):02d}": zeroed(data, a, b) for a, b in ZEROED}
    return variants


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    return good_video(tmp_path_factory.mktemp("good") / "good.mp4").read_bytes()


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> bytes:
    return flow_npz(tmp_path_factory.mktemp("good") / "good.npz").read_bytes()


@pytest.fixture(scope="module")
def video_corpus(tmp_path_factory, mp4) -> Path:
    """Damaged mp4s (and the index cut), wrong sizes, a huge sparse file: one folder of videos."""
    from dvd360.data.video import write_video

    folder = tmp_path_factory.mktemp("videos")
    for name, content in damaged(mp4).items():
        (folder / f"{name}.mp4").write_bytes(content)
    (folder / "index_only.mp4").write_bytes(mp4[:index_end(mp4)])
    write_video(folder / "square.mp4", np.zeros((4, 32, 32, 3), np.uint8))  # not 2:1
    write_video(folder / "one_frame.mp4", np.zeros((1, 32, 64, 3), np.uint8))  # too short
    sparse_file(folder / "huge.mp4", HUGE)
    (folder / "text.mp4").write_text("not a video")
    return folder


def _check_video_outcome(path: Path) -> None:
    """check_video either returns a consistent header or raises VideoError naming a file under `path`."""
    try:
        info = check_video(path)
    except VideoError as error:
        assert str(error).startswith(str(error.path)) and str(path.parent) in str(error.path)
    else:
        assert info.frames >= 1 and info.height > 0 and info.width > 0


def test_every_damaged_video_is_a_named_error_or_decodes_whole(video_corpus):
    outcomes = {}
    for path in sorted(video_corpus.iterdir()):
        _check_video_outcome(path)
        try:
            outcomes[path.stem] = check_video(path).frames
        except VideoError as error:
            outcomes[path.stem] = error.problem
    assert all(isinstance(outcomes[f"cut{int(100 * f):02d}"], str) for f in CUTS)  # every cut is caught
    assert "truncated" in outcomes["index_only"] and "unreadable" in outcomes["huge"]


def test_the_score_cli_lists_every_damaged_video_and_writes_nothing(video_corpus, tmp_path):
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["score", str(video_corpus), "--out", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert not out.exists()
    for name in [f"cut{int(100 * f):02d}" for f in CUTS] + ["index_only", "square", "one_frame", "huge", "text"]:
        assert f"{video_corpus / name}.mp4: " in result.output, name


def _flow_variants(npz: bytes) -> dict[str, bytes]:
    flow = np.zeros((6, 32, 64, 2), np.float32)

    def saved(**arrays) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    bad_values = flow.copy()
    bad_values[2:4, 0, 0, 1] = [np.nan, -np.inf]
    variants = damaged(npz) | {
        "nonfinite": saved(flow=bad_values), "half_precision_inf": saved(flow=bad_values.astype(np.float16)),
        "complex": saved(flow=flow.astype(np.complex64)), "strings": saved(flow=np.array(["a", "b"])),
        "bool": saved(flow=flow.astype(bool)), "three_channels": saved(flow=np.zeros((6, 32, 64, 3))),
        "scalar": saved(flow=np.float32(1)), "empty": saved(flow=np.zeros((0, 32, 64, 2))),
        "no_flow_key": saved(other=flow), "objects": saved(flow=np.array([{}, []], dtype=object)),
    }
    npy = io.BytesIO()
    np.save(npy, flow)
    variants["bare_npy"] = npy.getvalue()
    return variants


def test_every_damaged_flow_file_is_a_named_error(tmp_path, npz):
    for name, content in _flow_variants(npz).items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        try:
            flow = load_flow_npz(path)
        except InputError as error:
            assert str(error).startswith(f"{path}: "), name
        else:  # only a zeroed range inside the array data can still load; it must then be whole and finite
            assert name.startswith("zero") and flow.shape == (6, 32, 64, 2) and np.isfinite(flow).all(), name
    sparse = sparse_file(tmp_path / "huge.npz", HUGE)
    with pytest.raises(InputError, match="huge.npz: unreadable npz"):
        load_flow_npz(sparse)
    (tmp_path / "nonfinite2.npz").write_bytes(_flow_variants(npz)["nonfinite"])
    with pytest.raises(InputError, match=r"2 non-finite value\(s\) \(NaN 1, inf 1\) in frames 2-3"):
        load_flow_npz(tmp_path / "nonfinite2.npz")


JSON_SHAPES = {"null": "null", "number": "1", "string": '"x"', "list_of_strings": '["video", "prompt"]',
               "list_of_lists": "[[1, 2]]", "dict_of_numbers": '{"a": 1}', "dict_of_lists": '{"a": ["b"]}',
               "nan": '{"a": NaN}', "infinity": '[{"video": "a", "prompt": Infinity}]',
               "deep": "[" * 100_000 + "]" * 100_000, "unclosed": '{"a": "b"', "empty": "  \n"}
ENCODINGS = {"utf16": '{"a": "scène"}'.encode("utf-16"), "latin1": '{"a": "scène"}'.encode("latin-1"),
             "nul": b'{"a": "b\x00"}\x00', "bom": '{"a": "b"}'.encode("utf-8-sig")}


def test_every_odd_prompts_file_is_a_named_problem_or_read_right(tmp_path):
    for name, content in {**{k: v.encode() for k, v in JSON_SHAPES.items()}, **ENCODINGS}.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(content)
        problems: list[str] = []
        prompts = read_prompts(path, problems)
        if name == "bom":
            assert prompts == {"a": "b"} and problems == []
        else:
            assert problems and all(p.startswith(f"{path}: ") for p in problems), (name, problems)
    problems = []
    read_prompts(sparse_file(tmp_path / "huge.json", HUGE), problems)
    assert problems == [f"{tmp_path / 'huge.json'}: prompts file of 300.0 MiB, over the 64.0 MiB limit "
                        "(checked before reading)"]


def test_every_odd_answer_file_is_a_named_exclusion(tmp_path):
    answer = json.dumps({"schema": "dvd360-study-answers/2", "packet_id": "p", "answers": {}})
    variants = {**{k: v.encode() for k, v in JSON_SHAPES.items()}, **ENCODINGS,
                **damaged(answer.encode()), "wrong_types": b'{"schema": "dvd360-study-answers/2", "answers": 5}'}
    for name, content in variants.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(content)
        with pytest.raises(AnswerFileError) as error:
            read_answer_file(path)
        assert str(error.value).startswith(f"{path}: "), name


def test_the_aggregate_cli_excludes_every_odd_answer_file_without_a_traceback(tmp_path):
    from study_support import write_generations
    from dvd360.study.render import build_study

    key = build_study(write_generations(tmp_path / "gen", methods=("A", "B"), prompts={"p": "x"}),
                      tmp_path / "study", methods=("A", "B"), raters=1, seed=0, attention_check=False).key_path
    files = []
    for name, content in {**{k: v.encode() for k, v in JSON_SHAPES.items()}, **ENCODINGS}.items():
        files.append(tmp_path / f"{name}.json")
        files[-1].write_bytes(content)
    files.append(sparse_file(tmp_path / "huge.json", HUGE))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["study", "aggregate", *map(str, files), "--key", str(key), "--out", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert not out.exists() and all(f"{path}: " in result.output for path in files)


def test_caption_csv_syntax_errors_name_their_line(tmp_path):
    cases = {"open_quote.csv": ('videoid,name\n000,a\n001,"b\n002,c\n', 'line 3: a quote opened in this row'),
             "stray_quote.csv": ('videoid,name\n000,"a"b\n', "line 2: CSV syntax error"),
             "short_row.csv": ("videoid,name\n000\n", "line 2: malformed row, 1 fields"),
             "latin1.csv": ("videoid,name\n000,scène\n".encode("latin-1"), "not UTF-8 (line 2"),
             "no_header.csv": ("000,a\n", "header must name the columns videoid,name")}
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        _, file_problems, row_problems = parse_caption_csv(path)
        assert any(expected in str(p) and str(p).startswith(f"{path}: ") for p in file_problems + row_problems), name
    _, file_problems, _ = parse_caption_csv(sparse_file(tmp_path / "huge.csv", HUGE))
    assert "over the 256 MiB limit" in str(file_problems[0])


# ------------------------------------------------------------------------- property-based

@FUZZ
@given(data=st.data())
def test_check_video_on_randomly_damaged_mp4s(tmp_path, mp4, data):
    content = bytearray(mp4)
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(content) - 1))
        length = data.draw(st.integers(1, 64))
        content[start:start + length] = data.draw(st.binary(min_size=length, max_size=length))
    content = content[: data.draw(st.integers(1, len(content)))]
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(content))
    _check_video_outcome(path)


@pytest.mark.parametrize("reader, error, name", [(load_flow_npz, InputError, "random.npz"),
                                                 (read_answer_file, AnswerFileError, "answers.json")])
@FUZZ
@given(content=st.binary(max_size=1024))
def test_readers_on_random_bytes_name_the_file(tmp_path, reader, error, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=f"^{path}: "):
        reader(path)


@FUZZ
@given(data=st.data())
def test_flow_reader_on_randomly_damaged_npz(tmp_path, npz, data):
    content = bytearray(npz)
    start = data.draw(st.integers(0, len(content) - 1))
    length = data.draw(st.integers(1, 256))
    content[start:start + length] = data.draw(st.binary(min_size=length, max_size=length))
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(content))
    try:
        flow = load_flow_npz(path)
    except InputError as error:
        assert str(error).startswith(f"{path}: ")
    else:
        assert flow.ndim == 4 and flow.shape[-1] == 2 and np.isfinite(flow).all()


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) |
                           st.integers() | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=4) |
                           st.dictionaries(st.text(max_size=6), children, max_size=4), max_leaves=20)


@FUZZ
@given(value=JSON_VALUES)
def test_read_json_parses_what_it_accepts_and_names_what_it_refuses(tmp_path, value):
    path = tmp_path / "value.json"
    path.write_text(json.dumps(value), encoding="utf-8")  # Python writes NaN/Infinity, JSON does not allow them
    try:
        parsed = read_json(path, "test file", max_bytes=2**16, max_depth=3)
    except InputError as error:
        assert str(error).startswith(f"{path}: ")
        assert "NaN/Infinity" in error.problem or "levels deep" in error.problem or "empty" in error.problem
    else:
        assert json.dumps(parsed) == json.dumps(value)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from('ab,"\n\r\x00é'), max_size=200))
def test_caption_csv_reader_never_raises(tmp_path, text):
    path = tmp_path / "captions.csv"
    path.write_text("videoid,name\n" + text, encoding="utf-8")
    captions, file_problems, row_problems = parse_caption_csv(path)
    assert file_problems == [] and all(str(p).startswith(f"{path}: ") for p in row_problems)
    assert all(key and "\n" not in key or '"' in text for key in captions)
