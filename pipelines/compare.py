"""DVC stage `compare`: the comparison table (means, 95% CIs, paired deltas vs the reference) and
one plot per metric, from the score stage's `data/scores/{method}.json`, into `reports/compare/`;
the ablations (paper Fig. 8) against the same reference into `reports/compare/ablations/`."""

from __future__ import annotations

from dvd360.compare import build_comparison, load_scores, render, write_reports
from dvd360.config import load_params, stage_params
from dvd360.tracking import log_artifact, stage_run


def main() -> None:
    all_params = load_params()
    profile, params = all_params["profile"], stage_params("compare", all_params)
    score_params = stage_params("score", all_params)
    methods = list(params["methods"])
    reference = params.get("reference")
    with stage_run("compare", profile=profile, params=params):
        comparison = build_comparison(load_scores(params["scores"], methods), reference,
                                      seed=int(score_params["seed"]),
                                      n_resamples=int(score_params["bootstrap_resamples"]))
        for path in write_reports(comparison, params["out_dir"]):
            log_artifact(path, "compare")
        if params.get("ablations"):
            ablations = build_comparison(load_scores(params["scores"], list(params["ablations"])), reference,
                                         seed=int(score_params["seed"]),
                                         n_resamples=int(score_params["bootstrap_resamples"]))
            for path in write_reports(ablations, f"{params['out_dir']}/ablations"):
                log_artifact(path, "compare/ablations")
    print(render(comparison, "table"), end="")


if __name__ == "__main__":
    main()
