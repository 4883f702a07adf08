"""Reveal-and-Release: NeuralUCB, Vendi score, exact merges, automatic merge weights, conformance."""

import copy

import pytest
import torch

from bench.reveal import NeuralUCB, harmonic_reward, mutate, vendi_score
from bench.testing import check_method
from methods.rnr import RevealAndRelease, apply_merge, choose_lambda, flat_cosine, lora_deltas


def test_vendi_identical_is_one_orthogonal_is_n():
    same = torch.ones(5, 3)
    assert vendi_score(same) == pytest.approx(1.0, abs=1e-6)
    assert vendi_score(torch.eye(4)) == pytest.approx(4.0, abs=1e-6)
    two_groups = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert vendi_score(two_groups) == pytest.approx(2.0, abs=1e-6)


def test_harmonic_reward():
    assert harmonic_reward(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_reward(1.0, 0.25) == pytest.approx(2 / (1 + 4))
    assert harmonic_reward(0.0, 1.0) == 0.0
    assert harmonic_reward(1.0, 0.5, w_rel=3, w_div=1) == pytest.approx(4 / (3 + 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neural_ucb_finds_best_arm_on_synthetic_bandit(seed):
    """10 arms with distinct (one-hot) contexts, one clearly best (0.9 vs 0.1–0.5), noise σ = 0.1:
    with the default ν = 1, λ = 0.1 and a 30-query budget the best arm dominates the last 10 pulls."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.linspace(0.1, 0.5, 10)[torch.randperm(10, generator=gen)]
    best = int(torch.randint(10, (1,), generator=gen))
    means[best] = 0.9
    bandit = NeuralUCB(torch.eye(10), seed=seed)
    noise = torch.Generator().manual_seed(seed + 100)
    pulls = []
    for _ in range(30):
        arm = bandit.select()
        pulls.append(arm)
        bandit.update(arm, float(means[arm] + 0.1 * torch.randn((), generator=noise)))
    last = pulls[-10:]
    assert max(set(last), key=last.count) == best, (pulls, best)
    assert len(set(pulls[:12])) >= 5  # it explored before exploiting


def test_mutations_come_from_the_seeds():
    import random

    seeds = ["Write a Python function that sorts a list.", "Write a Python function that adds numbers."]
    out = mutate(seeds, 10, random.Random(0))
    assert 0 < len(out) <= 10
    assert all("function that" in m or m.endswith(".") for m in out)


def test_merge_round_changes_weights_by_exactly_the_combination(tiny):
    from bench.api import TrainParams
    from bench.training import with_adapter

    model, _ = tiny
    model = copy.deepcopy(model)
    params = TrainParams(lora_rank=2, lora_alpha=4.0)
    expected: dict[str, torch.Tensor] = {}

    def adapter_deltas(seed):
        peft_model = with_adapter(model, params, seed)
        from peft.tuners.lora import LoraLayer

        manual = {}
        for name, module in peft_model.named_modules():
            if isinstance(module, LoraLayer):
                torch.nn.init.normal_(module.lora_B["default"].weight, std=0.1)
                b, a = module.lora_B["default"].weight, module.lora_A["default"].weight
                manual[f"{name.removeprefix('base_model.model.')}.weight"] = (b @ a) * (4.0 / 2)
        deltas, _ = lora_deltas(peft_model)
        peft_model.unload()
        return deltas, manual

    d_f, manual_f = adapter_deltas(1)
    d_r, manual_r = adapter_deltas(2)
    for name in d_f:
        torch.testing.assert_close(d_f[name], manual_f[name])
    before = {n: model.get_parameter(n).detach().clone() for n in d_f}
    apply_merge(model, d_f, d_r, 0.3, 0.7)
    for name, w0 in before.items():
        expected[name] = w0 - 0.3 * manual_f[name] + 0.7 * manual_r[name]
        torch.testing.assert_close(model.get_parameter(name).detach(), expected[name], rtol=0, atol=1e-6)
    untouched = [n for n, _ in model.named_parameters() if n not in d_f]
    assert untouched  # embeddings etc. exist and were not in the merge
    assert -1.0 <= flat_cosine(d_f, d_r) <= 1.0


def test_auto_merge_picks_the_better_lambda():
    # forget ll falls with λ; utility falls fast above λ = 1: with budget 0.05 the answer is 1.0
    table = {0.5: (-2.2, -1.01), 1.0: (-2.6, -1.04), 2.0: (-3.5, -1.30)}
    lam, trials = choose_lambda([0.5, 1.0, 2.0], lambda x: table[x], base=(-2.0, -1.0), budget=0.05)
    assert lam == 1.0 and len(trials) == 3
    # nothing within budget: the least harmful candidate
    lam, _ = choose_lambda([0.5, 1.0, 2.0], lambda x: table[x], base=(-2.0, -1.0), budget=0.001)
    assert lam == 0.5


def test_rnr_conforms_and_records_reveal():
    report = check_method(RevealAndRelease, {
        "rounds": 2, "steps": 1, "batch_size": 2, "lr": 1e-2, "merge": "auto",
        "reveal": {"queries": 3, "n_mutations": 2, "n_paraphrases": 1, "responses_per_query": 2,
                   "max_new_tokens": 6, "fit_epochs": 5, "embedding": "model", "top_instructions": 2}})
    assert report.ok, report.problems
    rounds = [row for row in report.trajectory if "round" in row]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert "update_cosine" in rounds[1] and len(rounds[1]["merge_trials"]) == 3
