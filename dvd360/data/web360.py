"""The WEB360 layout: write clips into it, index and validate a folder of it, load what `prepare` wrote.

Layout (the 360DVD release's, plus numeric flows)::

    root/
      videos_{H}x{W}x{N}/{id}.mp4    the panorama clips (ERP, W = 2H)
      flows_{H}x{W}x{N}/{id}.mp4     their flow visualisation (`flow_encoding.encode_flow`)
      flows_{H}x{W}x{N}/{id}.npz     optional numeric flow, key `flow`, (N, H, W, 2) pixels
      *.csv                          captions: header `videoid,name` (name = caption), UTF-8
      metadata.json                  optional, free-form (the synthetic set's scene records)

`index_web360` checks the whole folder before anything is decoded and reports every problem
at once, each naming its file. It reads headers and demuxes packets (no decoding), so a
folder of thousands of clips is checked at disk speed.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from dvd360.atomic import atomic_path, write_json, write_text
from dvd360.data.flow_encoding import encode_flow
from dvd360.data.video import VideoError, probe_video, write_video

CAPTION_COLUMNS = ("videoid", "name")
DEFAULT_CSV = "captions.csv"
RELEASE_CSV = "WEB360_360TF.csv"  # the release's caption file, preferred when several exist
INDEX_FILE = "index.json"
FLOW_KEY = "flow"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a WEB360 folder: the file, the clip it concerns (if any), what."""

    path: Path
    message: str
    clip_id: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Web360ValidationError(Exception):
    """A WEB360 folder failed validation; `problems` lists every problem found."""

    def __init__(self, root: Path, problems: list[Problem]):
        self.root = Path(root)
        self.problems = problems
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

def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed without the wall-clock timestamps zipfile stamps on each member.

    Hand-written because numpy offers no deterministic option: same arrays -> same bytes.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_clip(root: str | Path, clip_id: str, frames: np.ndarray, flow: np.ndarray, caption: str,
               fps: float = 8, crf: int = 18, numeric_flow: bool = True) -> Clip:
    """Write one clip in the layout: video mp4, flow-visualisation mp4 and (optionally) npz flow.

    `frames` uint8 (N, H, W, 3); `flow` float (N, H, W, 2) pixels. The npz stores float16
    (about 0.01 px resolution below 25 px). Captions go to the CSV via `write_captions`.
    """
    root = Path(root)
    frames, flow = np.asarray(frames), np.asarray(flow)
    if frames.shape[:3] != flow.shape[:3] or flow.shape[-1] != 2:
        raise ValueError(f"clip {clip_id}: frames {frames.shape} and flow {flow.shape} do not match")
    count, height, width = frames.shape[:3]
    videos, flows = layout_folders(height, width, count)
    video_path = write_video(root / videos / f"{clip_id}.mp4", frames, fps, crf=crf)
    flow_path = write_video(root / flows / f"{clip_id}.mp4", encode_flow(flow), fps, crf=crf)
    npz_path = None
    if numeric_flow:
        npz_path = root / flows / f"{clip_id}.npz"
        _write_npz(npz_path, **{FLOW_KEY: flow.astype(np.float16)})
    return Clip(clip_id, caption, video_path, flow_path, npz_path, count, height, width)


def write_captions(path: str | Path, captions: Mapping[str, str]) -> Path:
    """Write the caption CSV (`videoid,name`, UTF-8, rows in the mapping's order), atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CAPTION_COLUMNS)
    writer.writerows(captions.items())
    return write_text(path, buffer.getvalue())


# ----------------------------------------------------------------------------- reading

def _parse_captions(path: Path) -> tuple[dict[str, str], list[Problem], list[Problem]]:
    """({videoid: caption}, file-level problems, row-level problems); never raises on content."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        return {}, [Problem(path, f"unreadable ({error})")], []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        return {}, [Problem(path, f"not UTF-8 (line {line}, byte {error.start}: {error.reason})")], []
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(rows, [])]
    except csv.Error as error:
        return {}, [Problem(path, f"unparsable header ({error})")], []
    if not set(CAPTION_COLUMNS) <= set(header):
        return {}, [Problem(path, f"header must name the columns {','.join(CAPTION_COLUMNS)}, "
                                  f"got {header!r}")], []
    id_at, name_at = header.index("videoid"), header.index("name")
    captions: dict[str, str] = {}
    problems: list[Problem] = []
    try:
        for row in rows:
            line = rows.line_num
            if not row:
                continue
            if len(row) != len(header):
                problems.append(Problem(path, f"line {line}: malformed row, {len(row)} fields "
                                              f"where the header has {len(header)}: {row!r}"))
                continue
            clip_id, caption = row[id_at].strip(), row[name_at].strip()
            if not clip_id:
                problems.append(Problem(path, f"line {line}: empty videoid"))
            elif clip_id in captions:
                problems.append(Problem(path, f"line {line}: videoid {clip_id} repeated", clip_id))
            else:
                captions[clip_id] = caption
                if not caption:
                    problems.append(Problem(path, f"line {line}: empty caption for clip {clip_id}",
                                            clip_id))
    except csv.Error as error:
        problems.append(Problem(path, f"line {rows.line_num}: unparsable ({error}); rows after it "
                                      "were not read"))
    return captions, [], problems


def read_captions(path: str | Path) -> dict[str, str]:
    """Read a caption CSV (`videoid,name`, UTF-8) to {videoid: caption}.

    Raises `Web360ValidationError` listing every problem: not UTF-8, no `videoid`/`name`
    header, malformed rows, empty ids or captions, repeated ids.
    """
    path = Path(path)
    captions, file_problems, row_problems = _parse_captions(path)
    if file_problems or row_problems:
        raise Web360ValidationError(path, file_problems + row_problems)
    return captions


def _npz_shape(path: Path) -> tuple[int, ...]:
    """Shape of the `flow` array of an npz, read from its header without loading the data."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{FLOW_KEY}.npy") as member:
        major, _ = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                       else np.lib.format.read_array_header_2_0)
        shape, _, _ = read_header(member)
    return tuple(shape)


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
    flows = root / ("flows_" + videos[0].name[len("videos_"):])
    if not flows.is_dir():
        if require_flows:
            return videos[0], None, [Problem(flows, "missing flow folder for " + videos[0].name)]
        flows = None
    return videos[0], flows, []


def _probe(path: Path, clip_id: str, problems: list[Problem]):
    """probe_video(verify=True), or None with the problem recorded."""
    try:
        return probe_video(path, verify=True)
    except VideoError as error:
        problems.append(Problem(error.path, error.problem, clip_id))
        return None


def _check_clip(clip_id: str, caption: str, video: Path,
                flows: Path | None) -> tuple[Clip | None, list[Problem]]:
    """Every problem of one clip's files (each checked even when another is bad)."""
    problems: list[Problem] = []
    info = _probe(video, clip_id, problems)
    if info is not None and info.width != 2 * info.height:
        problems.append(Problem(video, f"not a 2:1 equirectangular frame: {info.width}x{info.height} "
                                       "(W x H)", clip_id))
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
            shape = _npz_shape(npz)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            problems.append(Problem(npz, f"unreadable numeric flow ({error})", clip_id))
        else:
            if info is not None and shape != (info.frames, info.height, info.width, 2):
                problems.append(Problem(npz, f"flow array {shape} does not match the video "
                                             f"({info.frames}, {info.height}, {info.width}, 2)", clip_id))
    else:
        npz = None
    if problems:
        return None, problems
    return Clip(clip_id, caption, video, flow_video, npz, info.frames, info.height, info.width), []


def index_web360(root: str | Path, csv: str | Path | None = None, lenient: bool = False,
                 require_flows: bool = True, progress: bool = False) -> Web360Index:
    """Validate a WEB360 folder and index its clips, reporting every problem at once.

    Checked: the folders and caption CSV exist; the CSV is UTF-8 with a `videoid,name`
    header and well-formed rows; every video has a caption and every caption a video;
    captions are non-empty and unique (whitespace and case aside; the first clip by id
    keeps a repeated caption); every video is readable, complete (all the packets its
    header lists are present) and 2:1; every video has a flow video with the same frame
    count and size (`require_flows=False` accepts a root without any flows folder, e.g. a
    download whose flows are made later; a flows folder, once there, must be complete);
    a numeric npz flow, if
    present, has shape (N, H, W, 2). Folder-level problems (no folders, an unreadable CSV)
    always raise `Web360ValidationError`; clip-level ones raise by default, or with
    `lenient=True` the bad clips are skipped and listed in `Web360Index.skipped`.
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
        captions, file_problems, row_problems = _parse_captions(csv_path)
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
    for clip_id, video in tqdm(sorted(video_files.items()), desc="check WEB360", unit="clip",
                               disable=not progress):
        caption = captions.get(clip_id, "")
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
        clip, file_problems = _check_clip(clip_id, caption, video, flows)
        found += file_problems
        problems += found
        flagged = any(p.clip_id == clip_id for p in row_problems)
        if clip is not None and not found and not flagged and captions_known:
            clips.append(clip)
    if fatal or (problems and not lenient) or not clips:
        raise Web360ValidationError(root, fatal + problems or [Problem(root, "no valid clips")])
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
