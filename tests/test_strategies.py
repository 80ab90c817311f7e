"""The project race (ftlib.strategies): what each strategy trains, one budget for all, and the tables."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from ftlib import strategies as S
from ftlib.course.standins import make_standin
from ftlib.metrics import Evaluation
from ftlib.models import stages
from ftlib.pretrained import load_model

RECIPE = S.Recipe(epochs=1, batch_size=8, precision="fp32")


@pytest.fixture(scope="module")
def splits():
    return make_standin("satellite", size=32, per_class=(3, 2, 2), seed=0)


def _stage_params(model) -> dict[str, torch.Tensor]:
    return {name: torch.cat([p.detach().flatten() for p in module.parameters()])
            for name, module in stages(model).items()}


def _pretrained(n: int):
    return load_model("resnet18", "offline", num_classes=n, verbose=False)


def test_recipe_refuses_values_that_cannot_train():
    for bad in (dict(epochs=0), dict(lr=0.0), dict(factor=0.5), dict(batch_size=0), dict(probe_c=0)):
        with pytest.raises(ValueError, match="Recipe needs"):
            S.Recipe(**bad)


def test_unknown_strategy_and_impossible_depth_are_refused(splits):
    with pytest.raises(ValueError, match="unknown strategy 'finetune'"):
        S.train_strategy("finetune", splits, recipe=RECIPE, weights="offline")
    with pytest.raises(ValueError, match="depth must be 0 to 5"):
        S.train_strategy("partial", splits, depth=6, recipe=RECIPE, weights="offline")


@pytest.mark.parametrize("depth", [2, 4])
def test_partial_trains_only_the_stages_after_the_frozen_depth(splits, depth):
    run = S.train_strategy("partial", splits, depth=depth, recipe=RECIPE, weights="offline", keep_model=True)
    before, after = _stage_params(_pretrained(10)), _stage_params(run.model)
    names = list(before)
    assert run.depth == depth and run.strategy == "partial"
    for name in names[:depth]:
        assert torch.equal(before[name], after[name]), f"{name} is frozen and must not change"
    for name in names[depth:-1]:                    # the new head starts random, so compare only the backbone
        assert not torch.equal(before[name], after[name]), f"{name} must train"
    held = [n for n, p in run.model.named_parameters() if p.grad is not None]
    assert not held, f"a kept model holds no gradients (45 MB of memory for nothing), but {held[:3]} have one"


def test_probe_changes_only_the_head_and_lp_ft_changes_everything(splits):
    before = _stage_params(_pretrained(10))
    probe = S.train_strategy("probe", splits, recipe=RECIPE, weights="offline", keep_model=True)
    lpft = S.train_strategy("lp-ft", splits, recipe=RECIPE, weights="offline", keep_model=True)
    p, f = _stage_params(probe.model), _stage_params(lpft.model)
    assert probe.depth == len(before) - 1
    assert all(torch.equal(before[n], p[n]) for n in list(before)[:-1])
    assert all(not torch.equal(before[n], f[n]) for n in list(before)[:-1])


def test_lp_ft_starts_from_the_probe_head(splits):
    probe = S.train_strategy("probe", splits, recipe=RECIPE, weights="offline", keep_model=True)
    tiny = S.Recipe(epochs=1, batch_size=8, lr=1e-12, factor=1.0, weight_decay=0.0, precision="fp32")
    lpft = S.train_strategy("lp-ft", splits, recipe=tiny, weights="offline", keep_model=True)
    full = S.train_strategy("full", splits, recipe=tiny, weights="offline", keep_model=True)
    head = lambda run: S._head_layer(run.model).weight                   # noqa: E731
    assert torch.allclose(head(lpft), head(probe), atol=1e-6)             # a step of 1e-12 moves nothing
    assert not torch.allclose(head(full), head(probe), atol=1e-3)


def test_scratch_starts_from_random_weights_and_sees_the_same_inputs(splits):
    scratch = S.train_strategy("scratch", splits, recipe=RECIPE, weights="offline", keep_model=True)
    pretrained = _stage_params(_pretrained(10))["stem"]
    assert (_stage_params(scratch.model)["stem"] - pretrained).abs().mean() > 0.01
    assert scratch.test.logits.shape == (len(splits.test), 10)


def test_the_same_seed_gives_the_same_run_and_another_seed_another(splits):
    a, b, c = (S.train_strategy("full", splits, seed=s, recipe=RECIPE, weights="offline") for s in (0, 0, 1))
    assert torch.equal(a.test.logits, b.test.logits)
    assert not torch.equal(a.test.logits, c.test.logits)
    assert a.val is not None and len(a.val.targets) == len(splits.val) and a.time_s > 0


def test_augment_runs_on_every_training_image_of_every_epoch(splits):
    seen = []

    def flip(image):
        assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
        seen.append(1)
        return image.flip(-1)

    recipe = S.Recipe(epochs=2, batch_size=8, precision="fp32")
    S.train_strategy("partial", splits, depth=3, recipe=recipe, weights="offline", augment=flip)
    assert len(seen) == 2 * len(splits.train)


def test_race_runs_every_strategy_per_seed_and_keeps_only_the_first_seeds_model(splits):
    lines = []
    runs = S.race(splits, ("probe", "partial"), seeds=(0, 1), depth=4, recipe=RECIPE, weights="offline",
                  on_run=lambda r: lines.append((r.strategy, r.seed)))
    assert lines == [("probe", 0), ("probe", 1), ("partial", 0), ("partial", 1)]
    assert [r.model is not None for r in runs] == [True, False, True, False]


def test_race_can_keep_only_the_model_choose_picks_or_none(splits):
    runs = S.race(splits, ("probe", "partial", "lp-ft"), seeds=(0, 1), depth=4, recipe=RECIPE, weights="offline",
                  keep="best")
    kept = [r for r in runs if r.model is not None]
    assert len(kept) == 1 and kept[0].seed == 0 and kept[0].strategy == S.choose(runs)
    assert all(r.model is None for r in S.race(splits, ("probe",), seeds=(0,), recipe=RECIPE, weights="offline",
                                                keep="none"))
    with pytest.raises(ValueError, match="keep must be"):
        S.race(splits, ("probe",), keep="all")


def test_depth_sweep_runs_each_depth_per_seed_and_keeps_the_first_seeds_model_when_asked(splits):
    runs = S.depth_sweep(splits, depths=(3, 4), seeds=(0, 1), recipe=RECIPE, weights="offline", keep_model=True)
    assert [(r.strategy, r.depth, r.seed) for r in runs] == [("partial", d, s) for d in (3, 4) for s in (0, 1)]
    assert [r.model is not None for r in runs] == [True, False, True, False]
    assert all(r.model is None for r in S.depth_sweep(splits, depths=(4,), seeds=(0,), recipe=RECIPE,
                                                       weights="offline"))


def _fake(strategy, seed, val_acc, test_acc, depth=0, n=20):
    def ev(acc):
        targets = torch.zeros(n, dtype=torch.long)
        logits = torch.zeros(n, 2)
        logits[: round(acc * n), 0] = 1.0                 # right on the first acc * n images
        logits[round(acc * n):, 1] = 1.0
        return Evaluation(logits, targets)
    return S.Run(strategy, seed, depth, ev(val_acc), ev(test_acc), time_s=1.0 + seed)


def test_summarize_gives_mean_and_sample_std_per_strategy_and_depth():
    runs = [_fake("full", 0, 0.5, 0.6), _fake("full", 1, 0.5, 0.8), _fake("partial", 0, 0.5, 0.7, depth=3)]
    rows = S.summarize(runs)
    full, partial = rows
    assert (full["strategy"], full["seeds"], partial["depth"]) == ("full", 2, 3)
    assert full["accuracy"] == pytest.approx(0.7) and full["accuracy_std"] == pytest.approx(0.1414, abs=1e-3)
    assert partial["accuracy_std"] == 0.0 and full["time_s"] == pytest.approx(1.5)
    top1 = S.summarize(runs, {"top1": lambda e: e.top_k(1)})
    assert top1[0]["top1"] == pytest.approx(0.7)


def test_choose_uses_the_validation_split_never_the_test_split():
    runs = [_fake("full", 0, val_acc=0.9, test_acc=0.5), _fake("lp-ft", 0, val_acc=0.6, test_acc=0.95)]
    assert S.choose(runs) == "full"
    table = S.format_table(S.summarize(runs), chosen="full")
    assert table.splitlines()[1].startswith("→ full") and "0.500 ± 0.000" in table


def test_within_spread_keeps_the_depths_one_seed_spread_from_the_best():
    rows = [dict(depth=2, accuracy=0.80, accuracy_std=0.03), dict(depth=3, accuracy=0.78, accuracy_std=0.01),
            dict(depth=4, accuracy=0.70, accuracy_std=0.05)]
    assert S.within_spread(rows) == [2, 3]
    rows[2]["accuracy_std"] = 0.12                  # a noisy depth: its own spread covers the best
    assert S.within_spread(rows) == [2, 3, 4]


def test_summarize_refuses_runs_without_the_split():
    run = _fake("full", 0, 0.5, 0.5)
    run.val = None
    with pytest.raises(ValueError, match="no val split"):
        S.summarize([run], split="val")


def test_plot_race_draws_a_bar_per_strategy():
    fig = S.plot_race([_fake("full", 0, 0.5, 0.6), _fake("full", 1, 0.5, 0.8), _fake("probe", 0, 0.5, 0.4, 5)],
                      chance=0.5)
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].patches) == 2


def test_stage_probes_score_every_stage_but_the_head(splits):
    acc = S.stage_probes(splits, weights="offline")
    assert list(acc) == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert all(0.0 <= a <= 1.0 for a in acc.values())
