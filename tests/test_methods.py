"""eval/methods.yaml and eval/prompts.yaml: the shipped files are valid, bad ones are refused clearly."""

from __future__ import annotations

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
    (lambda m: m["A"].update(colour="red"), r"method A: unknown key 'colour' \(known: label,"),
    (lambda m: m["B"].pop("condition"), "method B: missing key 'condition'"),
    (lambda m: m["D"].update(adapter="bigger"), "adapter 'bigger' is not a trained variant .*no_latloss"),
    (lambda m: m["D"].update(condition="flow"), r"condition 'flow' \(known: clip, zero\)"),
    (lambda m: m["A"].update(condition="clip"), "method A: condition clip needs an adapter"),
    (lambda m: m["B"].update(lora={"weight": "high"}), "lora must be null or"),
    (lambda m: m["C"].update(latent_rotation="yes"), "latent_rotation must be true or false"),
    (lambda m: m["D"].update(deps="data/models"), "method D: deps must be 'data/adapters/full'"),
])
def test_invalid_methods_are_refused(tmp_path, change, message):
    data = _methods_data()
    change(data["methods"])
    path = _write(tmp_path, data)
    with pytest.raises(BenchmarkFileError, match=message) as error:
        load_methods(path)
    assert str(path) in str(error.value)


def test_variants_are_one_list_for_the_code_and_dvc(tmp_path):
    from dvd360.methods import load_variants

    variants = load_variants()
    assert variants == {"full": {}, "no_360tf": {"captions": "erp"}, "no_pseudo3d": {"temporal": False},
                        "no_latloss": {"latitude_loss": False}}
    assert {m.adapter for m in load_methods().values()} - {None} <= set(variants)
    data = _methods_data()
    data["variants"]["no_lr"] = {"lr": 1.0}
    with pytest.raises(BenchmarkFileError, match=r"variant no_lr: unknown setting 'lr' \(known: captions"):
        load_variants(_write(tmp_path, data))


def test_invalid_prompts_are_refused(tmp_path):
    suites = {"suites": {"s": {"prompts": [
        {"id": "a", "text": "a panoramic view of the sea", "condition": "zero"},
        {"id": "a", "text": "a panoramic view of a lake", "condition": "zero"},
        {"id": "b/c", "text": "x", "condition": "zero"},
        {"id": "d", "text": "y"},
    ]}}}
    path = _write(tmp_path, suites, "prompts.yaml")
    with pytest.raises(BenchmarkFileError) as error:
        load_prompts("s", path)
    text = str(error.value)
    assert "prompt id 'a' repeats" in text and "id 'b/c'" in text and "missing key 'condition'" in text
    with pytest.raises(KeyError, match="known: s"):
        load_prompts("other", path)
