"""The claim sweep (python -m ftlib.bench.claims) on a tiny notebook the test writes: one claim
that depends on the sweep seed, one that always holds, one never reached after an error."""

from __future__ import annotations

import json

import nbformat
import pytest

from ftlib import claim, config, seed_everything
from ftlib.bench import claims as sweep_cli
from ftlib.claims import LOG_ENV

CELLS = [
    "import ftlib, torch",
    "g = ftlib.seed_everything(3)\nfirst = torch.rand(1).item()",
    'ftlib.claim(ftlib.config.sweep_seed() != 1, "the sweep seed is not one",\n'
    '            measured=f"k={ftlib.config.sweep_seed()}, first draw {first:.4f}")',
    'ftlib.claim(True, "this one always holds")',
    "raise RuntimeError('a cell that fails')",
    'ftlib.claim(True, "after the error")',
]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    path = folder / "99_tiny.ipynb"
    nbformat.write(nb, str(path))
    return sweep_cli.sweep([path], seeds=[0, 1], timeout_s=120)


def test_each_seed_runs_and_records_every_claim_reached(swept):
    assert [r["seed"] for r in swept] == [0, 1]
    held = [{c["message"]: c["held"] for c in r["claims"]} for r in swept]
    assert held[0] == {"the sweep seed is not one": True, "this one always holds": True,
                       "after the error": True}
    assert held[1]["the sweep seed is not one"] is False
    assert "errors in cells [4]" in swept[0]["ended"]  # non-strict: the run goes on after an error


def test_the_table_marks_what_a_seed_did_not_show_with_its_numbers(swept):
    table = sweep_cli.format_sweep(swept)
    row = next(line for line in table.splitlines() if line.strip().startswith("the sweep seed is not one"))
    assert row.split()[-2:] == ["yes", "NO"]
    assert "not shown, k=1: the sweep seed is not one: k=1, first draw" in table


def test_the_sweep_seed_moves_every_seed(monkeypatch):
    monkeypatch.delenv("FTLIB_SWEEP_SEED", raising=False)
    assert config.shift_seed(5) == 5
    base = seed_everything(5).initial_seed()
    monkeypatch.setenv("FTLIB_SWEEP_SEED", "2")
    assert config.shift_seed(5) == 5 + 2 * config.SWEEP_STRIDE
    assert seed_everything(5).initial_seed() != base
    monkeypatch.setenv("FTLIB_SWEEP_SEED", "two")
    with pytest.raises(ValueError, match="integer"):
        config.sweep_seed()


def test_claims_append_to_the_log_only_when_asked(tmp_path, monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("FTLIB_STRICT", "0")
    monkeypatch.setenv(LOG_ENV, str(log))
    claim(1 > 2, "one beats two", measured="1 vs 2")
    claim(2 > 1, "two beats one")
    assert [json.loads(x) for x in log.read_text().splitlines()] == [
        {"message": "one beats two", "held": False, "measured": "1 vs 2"},
        {"message": "two beats one", "held": True, "measured": None}]
    monkeypatch.delenv(LOG_ENV)
    claim(True, "not logged")
    assert len(log.read_text().splitlines()) == 2


def test_a_missing_notebook_is_a_clear_error(tmp_path, capsys):
    assert sweep_cli.main([str(tmp_path / "nope.ipynb")]) == 2
    assert "no such notebook" in capsys.readouterr().err
