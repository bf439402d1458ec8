"""The user study: blinded per-rater HTML packets with a 360° viewer, and their analysis.

- `definition`: the study as data (`eval/study.yaml`: criteria, wording, the paper's Table 1).
- `packets`: prompt sets from the generations, per-rater packets, the label key.
- `render`: the static HTML packets and the key file (`build_study`).
- `answers`: answer-file and key schemas, checksums, every check before counting.
- `aggregate`: Table 1 (vote shares with rater-bootstrap CIs) and Bradley-Terry-Luce strengths.
"""
