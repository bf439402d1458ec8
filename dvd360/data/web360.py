"""The WEB360 layout: write clips into it, index and validate a folder of it, load what `prepare` wrote.

Layout (the 360DVD release's, plus numeric flows)::

    root/
      videos_{H}x{W}x{N}/{id}.mp4    the panorama clips (ERP, W = 2H)
      flows_{H}x{W}x{N}/{id}.mp4     their flow visualisation (`flow_encoding.encode_flow`)
      flows_{H}x{W}x{N}/{id}.npz     optional numeric flow, key `flow`, (N, H, W, 2) pixels
      *.csv                          captions: header `videoid,name` (name = caption), UTF-8
      metadata.json                  optional, free-form (the synthetic set's scene records)

`index_web360` checks the whole folder and reports every problem at once, each naming its
file. It decodes every frame of every video and flow video (what training will read) without
keeping them, and loads every numeric flow to check it is finite.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tokenize
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from dvd360.atomic import atomic_path, write_json, write_text
from dvd360.data.flow_encoding import encode_flow
from dvd360.data.video import VideoError, check_video, write_video
from dvd360.inputs import InputError, nonfinite_problem

CAPTION_COLUMNS = ("videoid", "name")
DEFAULT_CSV = "captions.csv"
RELEASE_CSV = "WEB360_360TF.csv"  # the release's caption file, preferred when several exist
INDEX_FILE = "index.json"
FLOW_KEY = "flow"
MAX_CSV_BYTES = 256 * 2**20  # the release's caption CSV is ~2 MiB
FOLDER_NAME = re.compile(r"^videos_(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a WEB360 folder: the file, the clip it concerns (if any), what."""

    path: Path
    message: str
    clip_id: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Web360ValidationError(Exception):
    """A WEB360 folder failed validation; `problems` lists every problem found, `passed` the ids
    of the clips that passed every check."""

    def __init__(self, root: Path, problems: list[Problem], passed: tuple[str, ...] = ()):
        self.root = Path(root)
        self.problems = problems
        self.passed = tuple(passed)
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{root}: {len(problems)} problem(s) in the WEB360 folder:\n{lines}")


@dataclass(frozen=True)
class Clip:
    """One validated clip. `flow_video_path` is None only for a root without flows, indexed
    with require_flows=False."""

    id: str
    caption: str
    video_path: Path
    flow_video_path: Path | None
    flow_npz_path: Path | None
    num_frames: int
    height: int
    width: int


@dataclass
class Web360Index:
    """The clips of a WEB360 folder that passed validation, and the problems of those skipped."""

    root: Path
    clips: list[Clip]
    skipped: list[Problem] = field(default_factory=list)
    csv_path: Path | None = None

    def by_id(self) -> dict[str, Clip]:
        return {clip.id: clip for clip in self.clips}

    def to_json(self) -> dict:
        """A JSON-ready record; file paths under `root` are relative to it, others absolute."""
        def rel(path: Path | None) -> str | None:
            if path is None:
                return None
            path = Path(path)
            return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path.resolve())

        return {
            "root": str(self.root),
            "csv": rel(self.csv_path),
            "clips": [{**asdict(clip), "video_path": rel(clip.video_path),
                       "flow_video_path": rel(clip.flow_video_path),
                       "flow_npz_path": rel(clip.flow_npz_path)} for clip in self.clips],
            "skipped": [{"path": str(p.path), "message": p.message, "clip_id": p.clip_id}
                        for p in self.skipped],
        }

    @classmethod
    def from_json(cls, record: Mapping, root: Path | None = None) -> "Web360Index":
        root = Path(root if root is not None else record["root"])

        def path(value: str | None) -> Path | None:
            return None if value is None else root / value

        clips = [Clip(**{**entry, "video_path": path(entry["video_path"]),
                         "flow_video_path": path(entry["flow_video_path"]),
                         "flow_npz_path": path(entry["flow_npz_path"])})
                 for entry in record["clips"]]
        skipped = [Problem(Path(p["path"]), p["message"], p.get("clip_id")) for p in record["skipped"]]
        return cls(root=root, clips=clips, skipped=skipped, csv_path=path(record.get("csv")))


def layout_folders(height: int, width: int, frames: int) -> tuple[str, str]:
    """Folder names of the videos and flows of clips of this size: `videos_HxWxN`, `flows_HxWxN`."""
    suffix = f"{height}x{width}x{frames}"
    return f"videos_{suffix}", f"flows_{suffix}"


# ----------------------------------------------------------------------------- writing

def write_clip(root: str | Path, clip_id: str, frames: np.ndarray, flow: np.ndarray, caption: str,
               fps: float = 8, crf: int = 18, numeric_flow: bool = True, lossless: bool = False) -> Clip:
    """Write one clip in the layout: video mp4, flow-visualisation mp4 and (optionally) npz flow.

    `frames` uint8 (N, H, W, 3); `flow` float (N, H, W, 2) pixels. The npz stores float16
    (about 0.01 px resolution below 25 px). Captions go to the CSV via `write_captions`.
    `lossless` stores both videos bit-exact (`write_video`), else browser yuv420p at `crf`.
    """
    root = Path(root)
    frames, flow = np.asarray(frames), np.asarray(flow)
    if frames.shape[:3] != flow.shape[:3] or flow.shape[-1] != 2:
        raise ValueError(f"clip {clip_id}: frames {frames.shape} and flow {flow.shape} do not match")
    count, height, width = frames.shape[:3]
    videos, flows = layout_folders(height, width, count)
    video_path = write_video(root / videos / f"{clip_id}.mp4", frames, fps, crf=crf, lossless=lossless)
    flow_path = write_video(root / flows / f"{clip_id}.mp4", encode_flow(flow), fps, crf=crf, lossless=lossless)
    npz_path = None
    if numeric_flow:
        npz_path = root / flows / f"{clip_id}.npz"
        with atomic_path(npz_path) as tmp, tmp.open("wb") as handle:  # deterministic: members dated 1980
            np.savez_compressed(handle, **{FLOW_KEY: flow.astype(np.float16)})
    return Clip(clip_id, caption, video_path, flow_path, npz_path, count, height, width)


def write_captions(path: str | Path, captions: Mapping[str, str]) -> Path:
    """Write the caption CSV (`videoid,name`, UTF-8, rows in the mapping's order), atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CAPTION_COLUMNS)
    writer.writerows(captions.items())
    return write_text(path, buffer.getvalue())


# ----------------------------------------------------------------------------- reading

def parse_caption_csv(path: Path, column_pairs: tuple[tuple[str, str], ...] = (CAPTION_COLUMNS,)
                      ) -> tuple[dict[str, str], list[Problem], list[Problem]]:
    """({key: text}, file-level problems, row-level problems); never raises on content.

    The first (key, text) column pair of `column_pairs` the header names is read. Checked:
    at most `MAX_CSV_BYTES` (from the size on disk, before reading), UTF-8, CSV syntax in
    strict mode (a stray or unterminated quote is reported on the line where its row starts),
    every row as long as the header, keys present and unique, texts present.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CSV_BYTES:
            return {}, [Problem(path, f"{size / 2**20:.1f} MiB, over the {MAX_CSV_BYTES // 2**20} MiB limit for a "
                                      "caption CSV (checked before reading)")], []
        raw = path.read_bytes()
    except OSError as error:
        return {}, [Problem(path, f"unreadable ({error})")], []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        return {}, [Problem(path, f"not UTF-8 (line {line}, byte {error.start}: {error.reason})")], []
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip() for name in next(rows, [])]
    except csv.Error as error:
        return {}, [Problem(path, f"line 1: unparsable header ({error})")], []
    columns = next((pair for pair in column_pairs if set(pair) <= set(header)), None)
    if columns is None:
        wanted = " or ".join(",".join(pair) for pair in column_pairs)
        return {}, [Problem(path, f"header must name the columns {wanted}, got {header!r}")], []
    id_at, name_at = header.index(columns[0]), header.index(columns[1])
    captions: dict[str, str] = {}
    problems: list[Problem] = []
    line = 1
    try:
        while True:
            line = rows.line_num + 1  # where the next row starts
            row = next(rows, None)
            if row is None:
                break
            if not row:
                continue
            if len(row) != len(header):
                problems.append(Problem(path, f"line {line}: malformed row, {len(row)} fields "
                                              f"where the header has {len(header)}: {row!r}"))
                continue
            clip_id, caption = row[id_at].strip(), row[name_at].strip()
            if not clip_id:
                problems.append(Problem(path, f"line {line}: empty {columns[0]}"))
            elif clip_id in captions:
                problems.append(Problem(path, f"line {line}: {columns[0]} {clip_id} repeated", clip_id))
            else:
                captions[clip_id] = caption
                if not caption:
                    problems.append(Problem(path, f"line {line}: empty caption for clip {clip_id}", clip_id))
    except csv.Error as error:
        reason = ("a quote opened in this row is never closed" if "unexpected end of data" in str(error)
                  else f"CSV syntax error: {error}")
        problems.append(Problem(path, f"line {line}: {reason}; this row and the rows after it were not read"))
    return captions, [], problems


def read_captions(path: str | Path) -> dict[str, str]:
    """Read a caption CSV (`videoid,name`, UTF-8) to {videoid: caption}.

    Raises `Web360ValidationError` listing every problem: not UTF-8, no `videoid`/`name`
    header, malformed rows, empty ids or captions, repeated ids.
    """
    path = Path(path)
    captions, file_problems, row_problems = parse_caption_csv(path)
    if file_problems or row_problems:
        raise Web360ValidationError(path, file_problems + row_problems)
    return captions


def load_flow_npz(path: str | Path) -> np.ndarray:
    """The `flow` array of a numeric flow file, float32 (F, H, W, 2) pixels, every value finite.

    Raises InputError naming the file: not an npz archive, damaged (every member is
    decompressed, so a truncated or zeroed archive shows), no `flow` array, not real numbers,
    not (F, H, W, 2), NaN/inf (how many, in which frames).
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise InputError(path, "a bare .npy array, not an npz archive holding a 'flow' array")
        with archive:
            if FLOW_KEY not in archive.files:
                raise InputError(path, f"no '{FLOW_KEY}' array (has {', '.join(archive.files) or 'nothing'})")
            flow = archive[FLOW_KEY]
    except InputError:
        raise
    # numpy parses a damaged array header with Python's tokenizer: SyntaxError, TokenError
    except (OSError, ValueError, EOFError, KeyError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile,
            zlib.error) as error:
        raise InputError(path, f"unreadable npz, truncated or damaged? ({error or type(error).__name__})") from None
    except MemoryError:
        raise InputError(path, "its array header declares more data than fits in memory (damaged?)") from None
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise InputError(path, f"flow values are {flow.dtype}, not real numbers (pixels)")
    if flow.ndim != 4 or flow.shape[-1] != 2 or 0 in flow.shape:
        raise InputError(path, f"flow array must be (F, H, W, 2) with F, H, W > 0, got {flow.shape}")
    flow = flow.astype(np.float32)
    problem = nonfinite_problem(flow)
    if problem:
        raise InputError(path, problem)
    return flow


def _find_csv(root: Path, csv_path: str | Path | None) -> tuple[Path | None, list[Problem]]:
    if csv_path is not None:
        csv_path = Path(csv_path)
        return (csv_path, []) if csv_path.is_file() else (None, [Problem(csv_path, "no such caption CSV")])
    found = sorted(root.glob("*.csv"))
    if len(found) == 1:
        return found[0], []
    if (root / RELEASE_CSV).is_file():
        return root / RELEASE_CSV, []
    if not found:
        return None, [Problem(root, "no caption CSV (videoid,name) in the folder")]
    return None, [Problem(root, f"several caption CSVs ({', '.join(p.name for p in found)}): "
                                "name one with --csv")]


def _find_folders(root: Path, require_flows: bool) -> tuple[Path | None, Path | None, list[Problem]]:
    videos = sorted(p for p in root.glob("videos_*") if p.is_dir())
    if not videos:
        return None, None, [Problem(root, "no videos_{H}x{W}x{N} folder")]
    if len(videos) > 1:
        return None, None, [Problem(root, f"several video folders ({', '.join(p.name for p in videos)}); "
                                          "keep one per WEB360 root")]
    if not FOLDER_NAME.match(videos[0].name):
        return None, None, [Problem(videos[0], "folder name must be videos_{H}x{W}x{N} (height, width, frames)")]
    flows = root / ("flows_" + videos[0].name[len("videos_"):])
    if not flows.is_dir():
        if require_flows:
            return videos[0], None, [Problem(flows, "missing flow folder for " + videos[0].name)]
        flows = None
    return videos[0], flows, []


def _probe(path: Path, clip_id: str, problems: list[Problem]):
    """check_video (every frame decoded), or None with the problem recorded."""
    try:
        return check_video(path)
    except VideoError as error:
        problems.append(Problem(error.path, error.problem, clip_id))
        return None


def _check_clip(clip_id: str, caption: str, video: Path,
                flows: Path | None) -> tuple[Clip | None, list[Problem]]:
    """Every problem of one clip's files (each checked even when another is bad), against the
    size and frame count its folder's name `videos_{H}x{W}x{N}` declares."""
    problems: list[Problem] = []
    height, width, frames = map(int, FOLDER_NAME.match(video.parent.name).groups())
    info = _probe(video, clip_id, problems)
    if info is not None and info.width != 2 * info.height:
        problems.append(Problem(video, f"not a 2:1 equirectangular frame: {info.width}x{info.height} "
                                       "(W x H)", clip_id))
    if info is not None and (info.frames, info.height, info.width) != (frames, height, width):
        problems.append(Problem(video, f"{info.frames} frame(s) of {info.height}x{info.width} (HxW), its folder "
                                       f"{video.parent.name} declares {frames} of {height}x{width}", clip_id))
    flow_video = flows / f"{clip_id}.mp4" if flows is not None else None
    if flow_video is not None and not flow_video.is_file():
        problems.append(Problem(flow_video, f"missing flow for video {video.name}", clip_id))
    elif flow_video is not None:
        flow_info = _probe(flow_video, clip_id, problems)
        if info is not None and flow_info is not None:
            if flow_info.frames != info.frames:
                problems.append(Problem(flow_video, f"{flow_info.frames} flow frames for "
                                                    f"{info.frames} video frames", clip_id))
            if (flow_info.height, flow_info.width) != (info.height, info.width):
                problems.append(Problem(flow_video, f"flow size {flow_info.width}x{flow_info.height} "
                                                    f"differs from the video's {info.width}x{info.height}",
                                        clip_id))
    npz = flows / f"{clip_id}.npz" if flows is not None else None
    if npz is not None and npz.is_file():
        try:
            shape = load_flow_npz(npz).shape
        except InputError as error:
            problems.append(Problem(npz, f"numeric flow: {error.problem}", clip_id))
        else:
            if info is not None and shape != (info.frames, info.height, info.width, 2):
                problems.append(Problem(npz, f"flow array {shape} does not match the video "
                                             f"({info.frames}, {info.height}, {info.width}, 2)", clip_id))
    else:
        npz = None
    if problems:
        return None, problems
    return Clip(clip_id, caption, video, flow_video, npz, info.frames, info.height, info.width), []


def _check_clip_job(job: tuple) -> tuple[Clip | None, list[Problem]]:
    return _check_clip(*job)


def _map_clip_checks(jobs: list[tuple], workers: int):
    """`_check_clip` over the jobs, in order: in this process, or on `workers` spawned processes
    (decoding is single-threaded per video, so clips are checked side by side)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_check_clip_job, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_check_clip_job, jobs, chunksize=4)


def index_web360(root: str | Path, csv: str | Path | None = None, lenient: bool = False,
                 require_flows: bool = True, progress: bool = False, workers: int = 1) -> Web360Index:
    """Validate a WEB360 folder and index its clips, reporting every problem at once.

    Checked: the folders and caption CSV exist; the CSV is UTF-8 with a `videoid,name`
    header and well-formed rows; every video has a caption and every caption a video;
    captions are non-empty and unique (whitespace and case aside; the first clip by id
    keeps a repeated caption); every video is complete (all the packets its header lists
    are present), decodes frame by frame, is 2:1 and has the frame count and size its folder
    name `videos_{H}x{W}x{N}` declares; every video has a flow video that decodes, with the
    same frame count and size (`require_flows=False` accepts a root without any flows
    folder, e.g. a download whose flows are made later; a flows folder, once there, must be
    complete); a numeric npz flow, if present, is (N, H, W, 2) real and finite. Folder-level
    problems (no folders, an unreadable CSV) always raise `Web360ValidationError`; clip-level
    ones raise by default, or with
    `lenient=True` the bad clips are skipped and listed in `Web360Index.skipped`. `workers` > 1
    checks that many clips at a time in spawned processes (same result).
    """
    from tqdm.auto import tqdm

    root = Path(root)
    if not root.is_dir():
        raise Web360ValidationError(root, [Problem(root, "no such folder")])
    csv_path, fatal = _find_csv(root, csv)
    videos, flows, folder_problems = _find_folders(root, require_flows)
    fatal += folder_problems
    captions, row_problems = {}, []
    if csv_path is not None:
        captions, file_problems, row_problems = parse_caption_csv(csv_path)
        fatal += file_problems
    captions_known = csv_path is not None and not fatal
    problems = list(row_problems)
    video_files = {p.stem: p for p in sorted(videos.glob("*.mp4"))} if videos is not None else {}
    if videos is not None and not video_files:
        fatal.append(Problem(videos, "holds no .mp4 videos"))
    if captions_known:
        problems += [Problem(videos / f"{clip_id}.mp4", f"missing video for caption row {clip_id}", clip_id)
                     for clip_id in sorted(captions.keys() - video_files.keys())]
    first_with_caption: dict[str, str] = {}
    clips: list[Clip] = []
    jobs = [(clip_id, captions.get(clip_id, ""), video, flows) for clip_id, video in sorted(video_files.items())]
    checked = _map_clip_checks(jobs, workers)
    for (clip_id, caption, video, _), (clip, file_problems) in tqdm(zip(jobs, checked), total=len(jobs),
                                                                     desc="check WEB360", unit="clip",
                                                                     disable=not progress):
        found = []
        if captions_known and clip_id not in captions:
            found.append(Problem(csv_path, f"no caption row for video {video.name}", clip_id))
        elif caption:
            key = " ".join(caption.lower().split())
            if key in first_with_caption:
                found.append(Problem(csv_path, f"clip {clip_id} repeats the caption of clip "
                                               f"{first_with_caption[key]}: {caption!r}", clip_id))
            else:
                first_with_caption[key] = clip_id
        found += file_problems
        problems += found
        flagged = any(p.clip_id == clip_id for p in row_problems)
        if clip is not None and not found and not flagged and captions_known:
            clips.append(clip)
    if fatal or (problems and not lenient) or not clips:
        raise Web360ValidationError(root, fatal + problems or [Problem(root, "no valid clips")],
                                    passed=tuple(clip.id for clip in clips))
    return Web360Index(root=root, clips=clips, skipped=problems, csv_path=csv_path)


def save_index(index: Web360Index, path: str | Path, **extra) -> Path:
    """Write an index (and extra JSON-ready fields, e.g. statistics) as JSON, atomically."""
    return write_json(path, {**index.to_json(), **extra})


def load_prepared(prepared_dir: str | Path = "data/web360") -> Web360Index:
    """The index the `prepare` stage wrote (`{prepared_dir}/index.json`).

    A relative `root` in it is resolved against `prepared_dir`; missing files raise
    `Web360ValidationError` (run `dvc repro prepare`).
    """
    prepared_dir = Path(prepared_dir).resolve()
    index_file = prepared_dir / INDEX_FILE
    if not index_file.is_file():
        raise Web360ValidationError(prepared_dir, [Problem(index_file, "no index; run `dvc repro prepare`")])
    record = json.loads(index_file.read_text(encoding="utf-8"))
    root = Path(record["root"])
    index = Web360Index.from_json(record, root if root.is_absolute() else prepared_dir / root)
    missing = [Problem(path, "listed in the index but missing", clip.id) for clip in index.clips
               for path in (clip.video_path, clip.flow_video_path) if path is not None and not path.is_file()]
    if missing:
        raise Web360ValidationError(prepared_dir, missing)
    return index


def dataset_statistics(index: Web360Index, flow_clips: int | None = None) -> dict:
    """Counts and flow statistics of an index.

    `mean_flow_px`: mean end-point magnitude |f| in pixels over every pixel of every frame,
    from the numeric npz flows, or (without them) decoded from the flow videos
    (`decode_flow`, about 0.25 px error); over the first `flow_clips` clips if given.
    `moving_fraction`: share of pixels with |f| > 0.5 px.
    """
    from dvd360.data.flow_encoding import decode_flow
    from dvd360.data.video import read_frames

    clips = index.clips
    frames = [clip.num_frames for clip in clips]
    magnitudes, moving, pixels = 0.0, 0, 0
    for clip in clips[:flow_clips]:
        if clip.flow_npz_path is not None:
            with np.load(clip.flow_npz_path) as archive:
                flow = archive[FLOW_KEY].astype(np.float32)
        elif clip.flow_video_path is not None:
            flow = decode_flow(read_frames(clip.flow_video_path))
        else:
            continue
        norm = np.linalg.norm(flow, axis=-1)
        magnitudes += float(norm.sum())
        moving += int((norm > 0.5).sum())
        pixels += norm.size
    words = [len(clip.caption.split()) for clip in clips]
    return {
        "clips": len(clips),
        "skipped_problems": len(index.skipped),
        "frames_total": int(sum(frames)),
        "frames_min": int(min(frames)),
        "frames_max": int(max(frames)),
        "height": int(clips[0].height),
        "width": int(clips[0].width),
        "numeric_flows": sum(clip.flow_npz_path is not None for clip in clips),
        "mean_flow_px": magnitudes / pixels if pixels else float("nan"),
        "moving_fraction": moving / pixels if pixels else float("nan"),
        "caption_words_mean": float(np.mean(words)),
    }
