"""The offline backbone's pretraining script: its batch stream, schedule and a tiny end-to-end run (CPU)."""

import json

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.models import resnet18

from data_scripts import pretrain_backbone as P

TINY = ["--classes", "4", "--batch-size", "4", "--size", "32", "--stats-batches", "1", "--warmup", "1",
        "--threads", "1", "--ckpt-every", "2"]


def test_worker_processes_draw_the_same_batches_in_the_same_order():
    classes = P.make_ifs_classes(4, seed=0)
    stream = P.BatchStream(classes, seed=0, batch_size=4, size=32, multiscale=True, mix=P.Mix(), steps=6)
    drawn = list(DataLoader(stream, batch_size=None, sampler=range(2, 6), num_workers=2))
    assert len(drawn) == 4
    for step, (x, y) in zip(range(2, 6), drawn):
        want_x, want_y = P.pretrain_batch(classes, 0, step, 4, 32 if step % 4 == 3 else 16, P.Mix())
        assert torch.equal(x, want_x) and torch.equal(y, want_y), f"batch {step} differs"


def test_the_schedule_warms_up_then_follows_steps_or_the_time_spent():
    assert P._lr_at(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert P._lr_at(10, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert P._lr_at(55, 100, 1.0, warmup=10) == pytest.approx(0.5)
    assert P._lr_at(20, 100, 1.0, warmup=10, done=0.5) == pytest.approx(0.5)     # time, not steps
    assert P._lr_at(20, 100, 1.0, warmup=10, done=1.3) == pytest.approx(0.0)     # past the cap: stays at 0
    assert P._lr_at(5, 100, 1.0, warmup=10, done=0.9) == pytest.approx(0.6)      # warm-up first


def test_a_tiny_run_exports_a_backbone_and_a_resumed_run_goes_on(tmp_path, capsys):
    work, out = tmp_path / "work", tmp_path / "out"
    common = TINY + ["--work-dir", str(work), "--out-dir", str(out), "--workers", "2"]
    P.main(common + ["--steps", "4", "--no-export"])
    assert not (out / "resnet18_offline.pt").exists()
    P.main(common + ["--steps", "6", "--time-schedule"])
    assert "resumed from" in capsys.readouterr().out.split("at step 4")[0]
    card = json.loads((out / "resnet18_offline.json").read_text())
    assert card["recipe"]["steps"] == 6 and card["recipe"]["time_schedule"] and card["num_classes"] == 4
    state = torch.load(out / "resnet18_offline.pt", weights_only=True)
    assert state["conv1.weight"].dtype == torch.float16
    resnet18(num_classes=4).load_state_dict(state)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_a_gpu_without_one_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        P.main(TINY + ["--steps", "2", "--device", "cuda", "--work-dir", str(tmp_path), "--no-export"])
