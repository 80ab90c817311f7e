"""The benchmark runs end to end on a tiny workload and reports every key (no timing asserted here:
the ratios are measured by `python -m ftlib.bench --quick`, not in tests)."""

import json

import pytest
import torch
from torch import nn

from ftlib.bench import speed as bench

TINY = dict(n_train=32, n_test=32, size=32, batch=16, repeats=1, epochs=1, standin_per_class=(2, 1, 2),
            parity_seeds=2, parity_steps=2, parity_per_class=2)


def test_bench_reports_every_key(tmp_path):
    result = bench.run("quick", transfer=False, log=lambda _: None, sizes=TINY)
    for key in ("fit_vs_bare_loop", "cached_probe_speedup", "cached_probe_acc_delta", "prefix_cache_speedup",
                "prefix_cache_flop_ceiling", "prefix_cache_speedup_layer3", "prefix_cache_flop_ceiling_layer3",
                "achieved_gflops_ratio"):
        assert result[key] > 0 or key.endswith("delta"), key
    assert set(result["standin_generation_s"]) == {"medical", "satellite", "retail"}
    # same frozen features, same head init, same order: the two probes agree closely
    assert result["cached_probe_acc_delta"] <= 1 / 30 + 1e-9
    assert result["probe_chance"] == 0.1 and 0 <= result["probe_acc"] <= 1
    if result["machine"]["native_bf16"]:  # the fast path is timed at the workload's batch, 32 and 128
        assert set(result["cpu_fast_path_speedup_by_batch"]) == {16, 32, 128}
        assert result["cpu_fast_path_speedup"] == result["cpu_fast_path_speedup_by_batch"][16]
        parity = result["fast_path_parity"]
        assert len(result["fp32_acc"]) == len(result["fast_acc"]) == 2 and parity["steps"] == 2
        diffs = [f - a for f, a in zip(result["fast_acc"], result["fp32_acc"])]
        assert result["fast_path_acc_delta"] == pytest.approx(sum(diffs) / 2)
        bn_diffs = [f - a for f, a in zip(result["fast_acc_precise_bn"], result["fp32_acc_precise_bn"])]
        assert result["fast_path_acc_delta_precise_bn"] == pytest.approx(sum(bn_diffs) / 2)
        assert set(result["conv3x3_bf16_vs_fp32_by_stage"]) == set(bench.STAGE_CONVS)
        assert result["conv3x3_bf16_vs_fp32"] > 0
        assert result["fast_gflops_ratio_bf16"] > 0 and "fast_path_acc_delta" in result["meets_targets"]
        assert result["cpu_fast_path_speedup_one_thread"] > 0
        profile = result["fast_path_profile"]
        for side in ("fp32", "fast"):  # the convolutions are part of the step, and other operators are named
            assert 0 < profile[side]["conv_ms"] <= profile[side]["step_ms"]
            assert profile[side]["top_other_ms"] and all(k.startswith("aten::") for k in profile[side]["top_other_ms"])
        assert result["fast_path_ceiling"] == pytest.approx(profile["fp32"]["step_ms"] / profile["fast"]["conv_ms"])
        assert result["fast_path_conv_speedup"] == pytest.approx(profile["fp32"]["conv_ms"] / profile["fast"]["conv_ms"])
    json.dumps(result)  # JSON-ready


def test_report_marks_each_stand_ins_transfer_gain_and_the_mean_gain():
    row = {"scratch_acc": 0.80, "probe_acc": 0.70, "finetune_acc": 0.95, "chance": 0.5,
           "probe_acc_by_layer": {"layer1": 0.6, "layer4": 0.7}}
    result = {"fit_vs_bare_loop": 0.9, "transfer": {"medical": dict(row, finetune_acc=0.83), "retail": row}}
    result["meets_targets"] = bench._meets_targets(result)
    assert result["meets_targets"] == {"fit_vs_bare_loop": False, "transfer_gain_medical": False,
                                       "transfer_gain_retail": True, "transfer_gain_mean": True}
    text = bench._report(result)
    assert "gain +0.030  >= 0.05 MISSED" in text and "gain +0.150  >= 0.05 ok" in text
    assert "+0.090  >= 0.07 ok" in text                       # the mean of +0.03 and +0.15
    assert "layer1 0.600, layer4 0.700" in text
    result["transfer"]["retail"]["gain_by_seed"] = {0: 0.12, 1: 0.18}
    assert "0: +0.120, 1: +0.180" in bench._report(result)


def test_transfer_gain_targets_are_5_points_each_and_7_on_average():
    rows = lambda *gains: {f"d{i}": {"scratch_acc": 0.70, "finetune_acc": 0.70 + g} for i, g in enumerate(gains)}  # noqa: E731
    met = bench._meets_targets({"transfer": rows(0.077, 0.075, 0.072)})    # the README's measured gains
    assert all(met.values()) and len(met) == 4
    met = bench._meets_targets({"transfer": rows(0.06, 0.06, 0.06)})       # each over 5, the mean under 7
    assert met == {"transfer_gain_d0": True, "transfer_gain_d1": True, "transfer_gain_d2": True,
                   "transfer_gain_mean": False}
    met = bench._meets_targets({"transfer": rows(0.05, 0.12, 0.10)})       # exactly 5 points counts
    assert all(met.values())
    met = bench._meets_targets({"transfer": rows(0.04, 0.12, 0.10)})       # a high mean does not excuse one stand-in
    assert not met["transfer_gain_d0"] and met["transfer_gain_mean"]


def test_prefix_cache_is_judged_against_its_own_flop_ceiling():
    result = {"prefix_cache_speedup": 1.2, "prefix_cache_flop_ceiling": 1.41,
              "prefix_cache_speedup_layer3": 1.6, "prefix_cache_flop_ceiling_layer3": 2.2}
    result["meets_targets"] = met = bench._meets_targets(result)
    # 1.2 >= 0.8 x 1.41 = 1.128 (a 2x target could never be met with stem..layer2 frozen); 1.6 < 0.8 x 2.2 = 1.76
    assert met == {"prefix_cache_speedup": True, "prefix_cache_speedup_layer3": False}
    text = bench._report(result)
    assert ">= 0.8 x ceiling = 1.128 ok" in text and ">= 0.8 x ceiling = 1.760 MISSED" in text
    assert bench._meets_targets({"prefix_cache_speedup": 1.2}) == {}     # no ceiling measured: nothing judged


def test_parity_is_met_within_a_point_or_two_standard_errors():
    judged = lambda **p: bench._meets_targets({"fast_path_parity": p})["fast_path_acc_delta"]  # noqa: E731
    assert judged(within_1_point=True, within_2_se=False) and judged(within_1_point=False, within_2_se=True)
    assert not judged(within_1_point=False, within_2_se=False)
    text = bench._report({"fast_path_acc_delta": -0.004, "fast_path_parity": {"within_1_point": True, "within_2_se": True},
                          "meets_targets": {"fast_path_acc_delta": True}})
    assert "fast_path_acc_delta" in text and "-0.004" in text and "or <= 2 se ok" in text


def test_training_flops_match_a_hand_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10, bias=False))
    # forward: 2*48*10 per image; backward: weight grad only (the input needs none): 2*48*10
    assert bench.training_flops_per_image(model, size=4, batch=8) == pytest.approx(2 * 2 * 48 * 10)


def test_step_profile_counts_convolutions_forward_and_backward():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 2))
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    profile = bench._step_profile(lambda: bench._bare_step(model, x, y, opt), steps=2)
    assert 0 < profile["conv_ms"] < profile["step_ms"]
    assert "aten::addmm" in profile["top_other_ms"] or "aten::mm" in profile["top_other_ms"]
    assert not set(profile["top_other_ms"]) & set(bench.CONV_OPS)


def test_the_matmul_reference_is_the_best_size_not_the_last(monkeypatch):
    rates = {256: 80.0, 512: 90.0, 1024: 55.0}  # a 1024 product that fell out of cache
    monkeypatch.setattr(bench, "matmul_gflops", lambda n, dtype, seconds: rates[n])
    assert bench.best_matmul_gflops() == (90.0, rates)


def test_precise_bn_recomputes_the_statistics_over_every_batch_and_leaves_the_model_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).to(memory_format=torch.channels_last)
    model[1].running_mean.fill_(5.0)
    x = torch.randn(30, 3, 4, 4) * 2 + 1
    twin = bench._precise_bn(model, x, batch=7)  # uneven batches: still the average over all 30 images
    with torch.no_grad():
        per_batch = [model[0](x[i:i + 7]).mean((0, 2, 3)) for i in range(0, 30, 7)]
    assert torch.allclose(twin[1].running_mean, torch.stack(per_batch).mean(0), atol=1e-5)
    assert not twin.training and float(model[1].running_mean[0]) == 5.0


def test_the_conv_ceiling_weights_each_stage_by_its_time(monkeypatch):
    # equal FLOPs per stage (c^2 * size^2 is the same for all four): the ratio is total time / total time
    rates = {torch.float32: dict(layer1=100.0, layer2=100.0, layer3=100.0, layer4=100.0),
             torch.bfloat16: dict(layer1=400.0, layer2=400.0, layer3=200.0, layer4=100.0)}
    monkeypatch.setattr(bench, "conv_gflops", lambda dtype: rates[dtype])
    result = bench.bench_conv_ceiling()
    assert result["conv3x3_bf16_vs_fp32_by_stage"] == dict(layer1=4.0, layer2=4.0, layer3=2.0, layer4=1.0)
    assert result["conv3x3_bf16_vs_fp32"] == pytest.approx(4 / (1 / 4 + 1 / 4 + 1 / 2 + 1))


def test_alternate_takes_medians():
    times = iter([9, 9, 1, 10, 2, 20, 3, 30])
    a, b = bench._alternate(lambda: next(times), lambda: next(times), repeats=3)
    assert (a, b) == (2, 20)


def test_prefix_flop_ceiling_is_prefix_forward_plus_rest_training_over_rest_training():
    from torch.utils.flop_counter import FlopCounterMode

    from ftlib import freeze, load_model, split_model
    model = load_model("resnet18", weights=None, num_classes=10, verbose=False)
    freeze(model, upto="layer2")
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    prefix, rest = split_model(model, "layer2")
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        boundary = prefix(x)
    with FlopCounterMode(display=False) as train_rest:
        nn.functional.cross_entropy(rest(boundary), y).backward()
    expected = 1 + fwd.get_total_flops() / train_rest.get_total_flops()
    assert bench.prefix_flop_ceiling(model, "layer2", size=32, batch=4) == pytest.approx(expected, rel=1e-6)
    # stem..layer2 hold about 40 % of a ResNet-18's forward FLOPs: caching them cannot reach 2x
    assert 1.3 < expected < 1.5
