"""benchmarks/recipe_sweep.py: recipes parsed into TrainConfig fields, seeds summarised per group."""

import pytest

from benchmarks.recipe_sweep import figures, main, parse_recipe, summary, table
from p2pdetect.errors import BadConfigError
from p2pdetect.training.config import TrainConfig


def test_parse_recipe_types_values_like_the_fields():
    r = parse_recipe(["num_leaves=7", "learning_rate=0.1", "timing_features=true", "target_fpr=0.002"])
    assert r == {"num_leaves": 7, "learning_rate": 0.1, "timing_features": True, "target_fpr": 0.002}
    TrainConfig(**r)   # a valid config


@pytest.mark.parametrize("item", ["num_leaves", "no_such_field=1", "seed=3", "num_leaves=seven"])
def test_parse_recipe_rejects_bad_items(item):
    with pytest.raises(BadConfigError, match="--set"):
        parse_recipe([item])


def _row(group, recall, fp):
    return {"group": group, "model": {"flow": {"recall": recall, "fp": fp, "fpr": fp / 1000},
                                      "byte": {"recall": recall}, "host": {"recall": 1.0}},
            "baseline": {"flow": {"recall": 0.5}}}


def test_summary_gives_mean_and_range_over_seeds():
    runs = [figures({"groups": [_row("a", 0.8, 2), {"group": "skipped", "model": None}],
                     "pooled": _row("all", 0.8, 2)}),
            figures({"groups": [_row("a", 0.9, 6)], "pooled": _row("all", 0.9, 6)})]
    assert "skipped" not in runs[0]
    s = summary(runs)
    assert s["a"]["flow"] == pytest.approx({"mean": 0.85, "min": 0.8, "max": 0.9})
    assert s["a"]["fp"] == {"mean": 4.0, "min": 2.0, "max": 6.0}
    text = table([{"recipe": {"num_leaves": 7}, "seeds": [0, 1], "summary": s}])
    assert "| num_leaves=7 | 2 | a | 85.0 (80.0-90.0) |" in text


def test_set_before_a_recipe_is_one_clear_error(capsys, tmp_path):
    assert main([str(tmp_path / "manifest.json"), "--set", "num_leaves=7"]) == 2
    assert "--set before the first --recipe" in capsys.readouterr().err
