"""eval/methods.yaml, eval/prompts.yaml, eval/study.yaml: the shipped files are valid, bad ones are
refused with the file, the key and what is allowed."""

from __future__ import annotations

import copy

import pytest
import yaml

from dvd360.config import repo_root
from dvd360.methods import BenchmarkFileError, get_method, load_methods, load_prompts

PAPER_TOPICS = ("volcano", "mountain lake", "snowy mountains", "island", "fireworks", "balloons",
                "sea", "desert", "car", "aurora")


def test_shipped_methods_compose_the_paper_table():
    methods = load_methods()
    assert list(methods) == ["A", "B", "C", "D", "D_no_360tf", "D_no_pseudo3d", "D_no_latloss"]
    a, b, c, d = (methods[k] for k in "ABCD")
    assert (a.lora_weight, a.latent_rotation, a.circular_padding, a.adapter) == (None, False, False, None)
    assert b.lora_weight == 1.0 and not b.latent_rotation and b.adapter is None
    assert c.lora_weight == 1.0 and c.latent_rotation and c.circular_padding and c.adapter is None
    assert d.lora_weight is None and d.latent_rotation and d.circular_padding
    assert (d.adapter, d.condition) == ("full", "clip")
    for variant in ("no_360tf", "no_pseudo3d", "no_latloss"):
        ablation = methods[f"D_{variant}"]
        assert ablation.adapter == variant
        assert (ablation.latent_rotation, ablation.circular_padding, ablation.condition) == (True, True, "clip")
    assert str(d.adapter_path("data/adapters")) == "data/adapters/full/adapter.safetensors"


def test_shipped_prompt_suites():
    paper = load_prompts("paper")
    assert len(paper) == 10
    for topic, prompt in zip(PAPER_TOPICS, paper):
        assert prompt.text.startswith("a panoramic view of ") and topic in prompt.text
    tiny = load_prompts("tiny")
    assert 3 <= len(tiny) <= 4 and all(p.condition != "zero" for p in tiny)


def test_tiny_prompt_words_are_whole_tokens_of_the_tiny_tokenizer():
    from dvd360.models.tiny_configs import tokenizer_words

    words = set(tokenizer_words())
    for prompt in load_prompts("tiny") + load_prompts("paper"):
        missing = {w for w in prompt.text.replace("-", " ").split() if w not in words}
        assert not missing, f"{prompt.id}: {missing}"


def _write(tmp_path, data, name="methods.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _methods_data():
    return yaml.safe_load((repo_root() / "eval" / "methods.yaml").read_text())


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: A, B, C, D, D_no_360tf"):
        get_method("E")


@pytest.mark.parametrize("change, message", [
    (lambda m: m["A"].update(colour="red"),
     r"methods\.A\.colour: unknown key \(allowed: label, description, lora, latent_rotation, circular_padding, "),
    (lambda m: m["B"].pop("condition"), r"methods\.B\.condition: missing"),
    (lambda m: m["D"].update(adapter="bigger"),
     r"methods\.D\.adapter: Input should be null or a trained variant: 'full', .*'no_latloss'.* \(got 'bigger'\)"),
    (lambda m: m["D"].update(condition="flow"), r"methods\.D\.condition: Input should be 'clip' or 'zero' \(got 'flow'\)"),
    (lambda m: m["A"].update(condition="clip"), r"methods\.A\.condition: condition clip needs an adapter"),
    (lambda m: m["B"].update(lora={"weight": "high"}), r"methods\.B\.lora\.weight: Input should be a valid number"),
    (lambda m: m["B"].update(lora={"scale": 1.0}), r"methods\.B\.lora\.scale: unknown key \(allowed: weight\)"),
    (lambda m: m["C"].update(latent_rotation="yes"),
     r"methods\.C\.latent_rotation: Input should be a valid boolean \(got 'yes'\)"),
    (lambda m: m["D"].update(deps="data/models"), r"methods\.D\.deps: Input should be 'data/adapters/full'"),
    (lambda m: m["A"].update(label="  "), r"methods\.A\.label: String should have at least 1 character"),
])
def test_invalid_methods_are_refused(tmp_path, change, message):
    data = _methods_data()
    change(data["methods"])
    path = _write(tmp_path, data)
    with pytest.raises(BenchmarkFileError, match=message) as error:
        load_methods(path)
    assert str(error.value).startswith(f"{path}: invalid methods:")


def test_variants_are_one_list_for_the_code_and_dvc(tmp_path):
    from dvd360.methods import load_variants

    variants = load_variants()
    assert variants == {"full": {}, "no_360tf": {"captions": "erp"}, "no_pseudo3d": {"temporal": False},
                        "no_latloss": {"latitude_loss": False}}
    assert {m.adapter for m in load_methods().values()} - {None} <= set(variants)
    for change, message in [
        (lambda v: v.update(no_lr={"lr": 1.0}),
         r"variants\.no_lr\.lr: unknown key \(allowed: captions, temporal, latitude_loss\)"),
        (lambda v: v.update(no_lr={"captions": "gpt"}),
         r"variants\.no_lr\.captions: Input should be 'fused', 'erp' or 'dataset' \(got 'gpt'\)"),
        (lambda v: v.pop("full"), r"variants: Input should list `full`"),
    ]:
        data = _methods_data()
        change(data["variants"])
        with pytest.raises(BenchmarkFileError, match=message):
            load_variants(_write(tmp_path, data))


def test_invalid_prompts_are_refused(tmp_path):
    suites = {"suites": {"s": {"prompts": [
        {"id": "a", "text": "a panoramic view of the sea", "condition": "zero"},
        {"id": "b/c", "text": "x", "condition": "zero"},
        {"id": "d", "text": "y"},
        {"id": "e", "text": " ", "condition": "zero", "seed": 3},
    ]}}}
    path = _write(tmp_path, suites, "prompts.yaml")
    with pytest.raises(BenchmarkFileError) as error:
        load_prompts("s", path)
    assert str(error.value).splitlines() == [
        f"{path}: invalid prompts:",
        "  suites.s.prompts.1.id: String should match pattern '^[A-Za-z0-9_-]+$' (got 'b/c')",
        "  suites.s.prompts.2.condition: missing",
        "  suites.s.prompts.3.text: String should have at least 1 character (got ' ')",
        "  suites.s.prompts.3.seed: unknown key (allowed: id, text, condition)"]
    suites["suites"]["s"]["prompts"][1:] = [{"id": "a", "text": "a panoramic view of a lake", "condition": "zero"}]
    with pytest.raises(BenchmarkFileError, match=r"suites\.s\.prompts: prompt ids repeat: 'a'"):
        load_prompts("s", _write(tmp_path, suites, "prompts.yaml"))
    with pytest.raises(KeyError, match="known: s"):
        load_prompts("other", _write(tmp_path, {"suites": {"s": {"prompts": suites["suites"]["s"]["prompts"][:1]}}},
                                     "prompts.yaml"))


def test_invalid_study_definitions_are_refused(tmp_path):
    from dvd360.study.definition import StudyDefinitionError, load_study_definition

    shipped = yaml.safe_load((repo_root() / "eval" / "study.yaml").read_text(encoding="utf-8"))
    assert load_study_definition().criterion_ids[0] == "graphics_quality"
    for change, message in [
        (lambda d: d["criteria"][0].update(id="Graphics"), r"criteria\.0\.id: String should match pattern '\^\[a-z\]"),
        (lambda d: d["criteria"][1].pop("help"), r"criteria\.1\.help: missing"),
        (lambda d: d["criteria"][2].update(weight=2), r"criteria\.2\.weight: unknown key \(allowed: id, name, group, "),
        (lambda d: d["criteria"].append(dict(d["criteria"][0])), r"criteria: criterion ids repeat: 'graphics_quality'"),
        (lambda d: d.update(titel="x"), r"titel: unknown key \(allowed: title, instruction, criteria, paper_table1\)"),
        (lambda d: d["paper_table1"].update(raters=0), r"paper_table1\.raters: Input should be greater than 0"),
        (lambda d: d["paper_table1"]["share_pct"]["end_continuity"].update(D="most"),
         r"paper_table1\.share_pct\.end_continuity\.D: Input should be a valid number \(got 'most'\)"),
    ]:
        data = copy.deepcopy(shipped)
        change(data)
        path = _write(tmp_path, data, "study.yaml")
        with pytest.raises(StudyDefinitionError, match=message) as error:
            load_study_definition(path)
        assert str(error.value).startswith(f"{path}: invalid study definition:")
