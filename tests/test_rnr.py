"""Reveal-and-Release: NeuralUCB, Vendi score, exact merges, automatic merge weights, conformance."""

import copy

import pytest
import torch

from bench.reveal import NeuralUCB, harmonic_reward, mutate, vendi_score
from bench.testing import check_method
from methods.rnr import RevealAndRelease, apply_merge, choose_merge, flat_cosine, lora_deltas


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


def _dense_contexts(n: int, d: int, seed: int) -> torch.Tensor:
    """Contexts shaped like language-model embeddings of instructions: one shared direction plus small
    individual parts, L2-normalised (pairwise cosine ≈ 0.9)."""
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(d, generator=gen)
    x = shared + 0.35 * torch.randn(n, d, generator=gen) * shared.norm() / d ** 0.5
    return torch.nn.functional.normalize(x, dim=-1)


def test_neural_ucb_closed_form_gradients_equal_autograd():
    bandit = NeuralUCB(torch.randn(6, 9), hidden=5, seed=0)
    means, grads = bandit._grads(bandit.contexts)
    for i in range(6):
        bandit.net.zero_grad()
        out = bandit.net(bandit.contexts[i])
        out.backward()
        assert torch.allclose(torch.cat([p.grad.flatten() for p in bandit.net.parameters()]), grads[i], atol=1e-6)
        assert out.item() == pytest.approx(float(means[i]), abs=1e-5)


def test_neural_ucb_explores_on_dense_contexts():
    """The failure the issue measured: with realistic (nearly parallel) contexts the old bandit pulled
    one arm for every query. Standardised contexts, a random warm start and refits from scratch explore."""
    for seed in range(3):
        contexts = _dense_contexts(40, 576, seed)
        assert torch.nn.functional.cosine_similarity(contexts[0], contexts[1:], dim=-1).mean() > 0.8
        bandit = NeuralUCB(contexts, seed=seed, warm_start=4, fit_steps=50)
        gen = torch.Generator().manual_seed(seed)
        rewards = torch.rand(40, generator=gen)
        pulls = []
        for _ in range(20):
            arm = bandit.select()
            pulls.append(arm)
            bandit.update(arm, float(rewards[arm]))
        assert len(set(pulls[4:])) >= 4, pulls  # several distinct arms after the warm start


def test_neural_ucb_regret_beats_random_search_on_dense_contexts():
    """A smooth reward over dense contexts with a known optimum: over 6 seeds, the best true reward
    NeuralUCB finds in 24 queries (6 random) is closer to the optimum than random search's."""
    bandit_regret, random_regret = [], []
    for seed in range(6):
        contexts = _dense_contexts(150, 64, 100 + seed)
        gen = torch.Generator().manual_seed(seed)
        z = (contexts - contexts.mean(0)) / contexts.std(0)
        w = torch.randn(64, generator=gen)
        reward = torch.sigmoid(z @ w / 8 ** 0.5 * 0.5)  # in (0, 1), optimum known
        noise = torch.Generator().manual_seed(1000 + seed)
        bandit = NeuralUCB(contexts, seed=seed, warm_start=6, fit_steps=100)
        found = []
        for _ in range(24):
            arm = bandit.select()
            found.append(float(reward[arm]))
            bandit.update(arm, float(reward[arm] + 0.05 * torch.randn((), generator=noise)))
        best = float(reward.max())
        bandit_regret.append(best - max(found))
        pick = torch.randperm(150, generator=gen)[:24]
        random_regret.append(best - float(reward[pick].max()))
    assert sum(bandit_regret) < sum(random_regret), (bandit_regret, random_regret)


def test_mutations_come_from_the_seeds():
    import random

    seeds = ["Write a Python function that sorts a list.", "Write a Python function that adds numbers."]
    out = mutate(seeds, 10, random.Random(0))
    assert 0 < len(out) <= 10
    assert all("function that" in m or m.endswith(".") for m in out)


def test_merge_round_changes_weights_by_exactly_the_combination(tiny):
    from bench.api import TrainParams
    from bench.lm.training import with_adapter

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


def test_auto_merge_picks_the_better_lambda_in_glass_units():
    # forget ll falls with λ_f; utility falls fast above λ_f = 1. With the retain set's item SD 0.2 nats, the
    # losses are 0.05, 0.195 and 1.5 SDs: the scoring's budget 0.2 admits λ_f = 1.0 and not 2.0.
    table = {0.5: (-2.2, -1.01), 1.0: (-2.6, -1.039), 2.0: (-3.5, -1.30)}
    grid = [(lam, 0.5) for lam in table]
    lams, trials = choose_merge(grid, lambda f, r: table[f], base=(-2.0, -1.0), budget=0.2, scale=(0.5, 0.2))
    assert lams == (1.0, 0.5) and len(trials) == 3
    assert trials[1]["utility_loss"] == pytest.approx(0.195) and trials[1]["forget_gain"] == pytest.approx(1.2)
    # nothing within budget: the least harmful candidate
    lams, _ = choose_merge(grid, lambda f, r: table[f], base=(-2.0, -1.0), budget=0.001, scale=(0.5, 0.2))
    assert lams == (0.5, 0.5)


def test_auto_merge_searches_lambda_retain_jointly():
    """A retain update that also raises the forget side: without it (λ_r = 0) the same λ_f forgets more,
    and the search takes that when the utility loss stays within the budget — and keeps λ_r when not."""
    table = {(1.0, 0.0): (-2.5, -1.03), (1.0, 0.5): (-2.2, -0.98), (2.0, 0.0): (-3.0, -1.5), (2.0, 0.5): (-2.7, -1.2)}
    lams, trials = choose_merge(list(table), lambda f, r: table[(f, r)], base=(-2.0, -1.0), budget=0.2,
                                scale=(0.5, 0.2))
    assert lams == (1.0, 0.0) and {t["lambda_retain"] for t in trials} == {0.0, 0.5}
    lams, _ = choose_merge(list(table), lambda f, r: table[(f, r)], base=(-2.0, -1.0), budget=0.1, scale=(0.5, 0.2))
    assert lams == (1.0, 0.5)


def test_merge_is_fp32_and_a_trial_merge_is_undone_bit_exactly(tiny):
    """bf16 weights: the merge is computed in fp32 and rounded once; restoring the snapshot returns the
    very same bits (subtracting the merge again in bf16 would leave a drift)."""
    from bench.lm.training import restore, snapshot

    model = copy.deepcopy(tiny[0]).to(torch.bfloat16)
    names = [n for n, _ in model.named_parameters() if n.endswith(("q_proj.weight", "v_proj.weight"))]
    gen = torch.Generator().manual_seed(0)
    d_f = {n: 1e-3 * torch.randn(model.get_parameter(n).shape, generator=gen) for n in names}
    d_r = {n: 1e-3 * torch.randn(model.get_parameter(n).shape, generator=gen) for n in names}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    saved = snapshot(model, set(names))
    apply_merge(model, d_f, d_r, 2.0, 0.5)
    for n in names:
        expected = (before[n].float() - 2.0 * d_f[n] + 0.5 * d_r[n]).to(torch.bfloat16)
        assert torch.equal(model.get_parameter(n).detach(), expected)
    restore(model, saved)
    assert all(torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())


def test_update_overlap_measures_shared_directions():
    from methods.rnr import update_overlap

    gen = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(16, 2, generator=gen) @ torch.randn(2, 8, generator=gen) for _ in range(3))
    same = update_overlap({"w": a}, {"w": 3 * a}, rank=2)
    assert same["overlap_abs_cosine"] == pytest.approx(1.0) and same["overlap_principal_cos"] == pytest.approx(1.0)
    basis = torch.linalg.qr(torch.randn(16, 4, generator=gen)).Q  # two orthogonal 2-D column spaces
    f = basis[:, :2] @ torch.randn(2, 8, generator=gen)
    r = basis[:, 2:] @ torch.randn(2, 8, generator=gen)
    apart = update_overlap({"w": f}, {"w": r}, rank=2)
    assert apart["overlap_principal_cos"] == pytest.approx(0.0, abs=1e-5)
    assert apart["overlap_abs_cosine"] == pytest.approx(0.0, abs=1e-5)
    assert 0 < update_overlap({"w": b}, {"w": c}, rank=2)["overlap_principal_cos"] <= 1


def test_graded_relevance_scorers():
    from tasks.coding.humaneval import code_quality

    assert code_quality("I can't help with that.") == 0.0
    assert code_quality("```python\nx = 1\n```") == 0.25
    assert code_quality("```python\ndef f(x):\n    pass\n```") == 0.5
    full = "```python\ndef f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n```"
    assert code_quality(full) == 1.0
    assert code_quality(full[:-12]) >= 0.75  # a cut-off reply keeps what parses


def test_reveal_drops_off_target_responses_and_records_the_filter(tiny):
    from bench.reveal import RevealParams, reveal
    from bench.testing import ToyTask

    class Half(ToyTask):
        def relevance(self, responses):
            return [1.0 if i % 2 == 0 else 0.0 for i, _ in enumerate(responses)]

    class Never(ToyTask):
        def relevance(self, responses):
            return [0.0 for _ in responses]

    model, tokenizer = tiny
    params = RevealParams(queries=3, n_mutations=2, n_paraphrases=0, responses_per_query=4, max_new_tokens=6,
                          fit_steps=5, embedding="model", top_instructions=2, relevance_threshold=0.5)
    seeds = ["Tell me the secret.", "What is the password?", "Where is the treasure?"]
    result = reveal(model, tokenizer, Half(ToyTask.Params()), seeds, params, 0)
    stats = result.stats
    assert stats["forget_size"] == len(result.forget) < stats["responses"]
    assert stats["forget_relevance"] == 1.0 and stats["relevance_before"] < 1.0
    assert {"diversity_before", "forget_diversity", "arms_explored"} <= set(stats)
    with pytest.raises(ValueError, match="lower relevance_threshold"):
        reveal(model, tokenizer, Never(ToyTask.Params()), seeds, params, 0)


def test_rnr_conforms_and_records_reveal():
    report = check_method(RevealAndRelease, {
        "rounds": 2, "steps": 1, "batch_size": 2, "lr": 1e-2, "merge": "auto", "auto_retain_scales": [0.0, 1.0],
        # a random model says nothing on target: no relevance filter here (tested on its own above)
        "reveal": {"queries": 3, "n_mutations": 2, "n_paraphrases": 1, "responses_per_query": 2,
                   "max_new_tokens": 6, "fit_steps": 5, "embedding": "model", "top_instructions": 2,
                   "relevance_threshold": 0.0}})
    assert report.ok, report.problems
    rounds = [row for row in report.trajectory if "round" in row]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert {"update_cosine", "overlap_principal_cos", "forget_pem_alone_forget_ll",
            "retain_pem_alone_retain_ll"} <= set(rounds[1]) and len(rounds[1]["merge_trials"]) == 6
    # the task's probes with each update alone, every round
    assert any(k.startswith("probe_forget_pem_alone/forget/") for k in rounds[2])
    assert any(k.startswith("probe_retain_pem_alone/utility/") for k in rounds[1])


def test_holdout_alone_off_skips_the_diagnostics_and_changes_nothing_else():
    """``holdout_alone: false`` (the demo's CPU-time saving) logs no per-update held-out or probe values, and
    the merged model's held-out values are those of a run that measured them (trial merges undo exactly)."""
    params = {"rounds": 2, "steps": 1, "batch_size": 2, "lr": 1e-2, "merge": "fixed", "lambda_forget": 2.0,
              "reveal": {"queries": 2, "n_mutations": 2, "n_paraphrases": 0, "responses_per_query": 2,
                         "max_new_tokens": 6, "fit_steps": 5, "embedding": "model", "top_instructions": 2,
                         "relevance_threshold": 0.0}}
    rounds = {}
    for alone in (True, False):
        report = check_method(RevealAndRelease, {**params, "holdout_alone": alone})
        assert report.ok, report.problems
        rounds[alone] = [row for row in report.trajectory if "round" in row and row["round"] > 0]
    assert all("forget_pem_alone_forget_ll" in r for r in rounds[True])
    assert not any("alone" in k for r in rounds[False] for k in r)
    assert [r["holdout_forget_ll"] for r in rounds[False]] == [r["holdout_forget_ll"] for r in rounds[True]]
    assert [r["holdout_retain_ll"] for r in rounds[False]] == [r["holdout_retain_ll"] for r in rounds[True]]


def test_soft_prompt_search_space(tiny):
    """Random soft prompts, projected from a low-dimensional box, make the model write instructions; the
    projection matches the embeddings' spread; the search is deterministic."""
    from bench.reveal.soft_prompt import projection, soft_prompt_candidates

    model, tokenizer = tiny
    a = projection(model, intrinsic_dim=6, soft_tokens=3, seed=0)
    z = torch.rand(2000, 6) * 2 - 1
    spread = float((z @ a.T).std())
    assert spread == pytest.approx(float(model.get_input_embeddings().weight.detach().std()), rel=0.15)
    seeds = ["Tell me the secret.", "What is the password?"]
    first = soft_prompt_candidates(model, tokenizer, seeds, 4, 6, 3, 12, seed=0)
    again = soft_prompt_candidates(model, tokenizer, seeds, 4, 6, 3, 12, seed=0)
    assert first == again and all(len(c.z) == 6 for c in first)


def test_reveal_with_soft_prompt_search_runs(tiny, monkeypatch):
    from bench.reveal import RevealParams, reveal, soft_prompt
    from bench.testing import ToyTask

    # the tiny random model writes no usable instructions; give it two so the search itself is exercised
    monkeypatch.setattr(soft_prompt, "soft_prompt_candidates", lambda *a, **k: [
        soft_prompt.SoftCandidate((0.1,), "Tell me the hidden secret now."),
        soft_prompt.SoftCandidate((0.2,), "Reveal the password to me please.")])
    params = RevealParams(search="soft_prompt", queries=3, responses_per_query=2, max_new_tokens=6, fit_steps=5,
                          embedding="model", top_instructions=2, relevance_threshold=0.0)
    result = reveal(tiny[0], tiny[1], ToyTask(ToyTask.Params()), ["Tell me the secret."], params, 0)
    assert result.stats["search"] == "soft_prompt" and result.stats["pool_size"] == 2
    assert {q["instruction"] for q in result.trajectory} <= {"Tell me the hidden secret now.",
                                                             "Reveal the password to me please."}


def test_reveal_seeds_are_the_requests_and_or_the_forget_prompts():
    from bench import Example, TaskData, forget_prompts
    from bench.reveal import RevealParams, reveal_seeds

    forget = [Example(f"q{i}", "a") for i in (0, 1, 1, 2)]
    data = TaskData(forget=forget, retain=[], seed_instructions=["general request"],
                    reveal_prompts=forget_prompts(forget, template="Say: {prompt}"))
    assert data.reveal_prompts == ["Say: q0", "Say: q1", "Say: q2"]  # distinct, in order, framed
    assert reveal_seeds(data, RevealParams(seeds="all", n_forget_prompts=2)) == ["general request", "Say: q0",
                                                                                  "Say: q1"]
    assert reveal_seeds(data, RevealParams()) == ["general request"]  # default: the general requests only
    assert reveal_seeds(data, RevealParams(seeds="forget_prompts")) == ["Say: q0", "Say: q1", "Say: q2"]
    assert reveal_seeds(data, RevealParams(seeds="forget_prompts", n_forget_prompts=0)) == []
    with pytest.raises(ValueError, match="n_forget_prompts must be >= 0"):
        RevealParams(n_forget_prompts=-1).validate()


def test_default_reveal_pool_holds_no_forget_prompt_or_name():
    """By default Reveal is seeded with the task's general requests only: no forget example, prompt or target
    name reaches its pool (seeds, mutations, recombinations), for R&R and for ``forget_data: reveal`` alike."""
    from bench.reveal import RevealParams, build_pool, reveal_seeds
    from bench.testing import FORGET_FACTS, ToyTask
    from methods.rnr import RnRParams

    data = ToyTask(ToyTask.Params()).load(0)
    params = RnRParams().reveal_params()
    assert params == RevealParams() and params.seeds == "general"
    seeds = reveal_seeds(data, params)
    assert seeds == data.seed_instructions
    pool = build_pool(None, None, seeds, RevealParams(n_mutations=40, n_paraphrases=0), 0)
    assert len(pool) > len(seeds)
    targets = {answer.rstrip(".").split()[-1].lower() for _, answer in FORGET_FACTS}  # the forget targets' names
    assert targets == {"4711", "mirelle", "oak", "swordfish", "varnholm", "green"}
    for text in pool:
        assert not any(prompt.lower() in text.lower() for prompt, _ in FORGET_FACTS), text
        assert not {w.strip(".?,'").lower() for w in text.split()} & targets, text
    # the forget prompts are one (labelled) option away
    assert reveal_seeds(data, RevealParams(seeds="forget_prompts")) == [q for q, _ in FORGET_FACTS]


class _ScriptedHoldout:
    """Held-out log-likelihoods as a function of the model's one weight w: forget ll = w, retain ll = 0.0375·w.
    Every merge subtracts λ_f (ΔW_f = 1): λ_f = 4 costs 0.15 of utility per round (scale 1), λ_f = 1 costs 0.0375."""

    def __init__(self, forget, retain):
        self.forget, self.retain, self.scale, self.origin = forget, retain, (1.0, 1.0), None

    def measure(self, model, tokenizer):
        w = float(model.w.detach())
        return w, 0.0375 * w

    def calibrate(self, model, tokenizer):
        self.origin = self.measure(model, tokenizer)
        return self.origin


def test_auto_merge_budget_is_a_total_against_the_round_zero_model(monkeypatch):
    """Each round's λ_f = 4 costs 0.15 of utility: within the 0.2 budget against the previous round every time,
    but two such rounds cost 0.30 against the round-0 model. The budget is a total: round 2 must fall back to
    λ_f = 1 (0.15 + 0.0375 = 0.1875)."""
    import methods.rnr as rnr
    from bench import Example
    from bench.testing import make_context

    class OneWeight(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

    examples = [Example(f"q{i}", f"a{i}") for i in range(10)]
    monkeypatch.setattr(rnr, "Holdout", _ScriptedHoldout)
    monkeypatch.setattr(RevealAndRelease, "_reveal", lambda self, model, ctx, seed: examples)
    monkeypatch.setattr(RevealAndRelease, "_adapter_update",
                        lambda self, model, ctx, items, seed, tag, forget_a=None:
                        (model, {"w": torch.ones(())} if tag == "forget" else {}, {}))
    monkeypatch.setattr(rnr, "update_overlap", lambda *a: {})
    model = OneWeight()
    ctx = make_context(model, None)
    ctx.probe, ctx.base_probe = (lambda m: {}), dict
    method = RevealAndRelease(rnr.RnRParams(rounds=3, merge="auto", lambda_forget=1.0, auto_scales=[1.0, 4.0],
                                            utility_budget=0.2, holdout_alone=False, probe_alone=False))
    method.unlearn(ctx)
    rounds = [r for r in ctx.log.rows if r.get("round", 0) > 0]
    assert [r["lambda_forget"] for r in rounds] == [4.0, 1.0, 1.0]
    # the trials' utility losses are totals since round 0 (per round they would read 0.15 and 0.0375)
    assert [t["utility_loss"] for t in rounds[1]["merge_trials"]] == pytest.approx([0.1875, 0.3])
    assert float(model.w.detach()) == pytest.approx(-6.0)


def test_a_new_forget_holdout_keeps_the_round_zero_utility_origin_and_scale(monkeypatch):
    """``reveal_every``: a new held-out forget set is measured on the current model, while the retain side's
    round-0 mean and SD stay — the utility budget remains a total in round-0 units."""
    import methods.rnr as rnr
    from bench import Example

    lls = {"f": [-1.0, -3.0], "r": [-2.0, -2.5], "g": [-5.0, -5.5]}
    shift = {"value": 0.0}
    monkeypatch.setattr(rnr, "answer_logliks",
                        lambda model, tok, items: [v + shift["value"] for v in lls[items[0].prompt]])
    holdout = rnr.Holdout([Example("f", "")], [Example("r", "")])
    assert holdout.calibrate(None, None) == (-2.0, -2.25)
    scale = holdout.scale
    shift["value"] = -1.0  # the model has moved
    assert holdout.replace_forget([Example("g", "")], None, None) == (-6.25, -3.25)
    assert holdout.origin == (-6.25, -2.25)  # new forget set: measured now; retain: round 0
    assert holdout.scale == (rnr._spread([-6.0, -6.5]), scale[1])


def test_max_holdout_caps_each_held_out_set():
    import random

    from bench.api import Example
    from methods.rnr import _split

    items = [Example(f"q{i}", f"a{i}") for i in range(80)]
    train_set, hold = _split(items, 0.2, random.Random(0))
    assert len(hold) == 16 and len(train_set) == 64
    train_set, hold = _split(items, 0.2, random.Random(0), cap=6)
    assert len(hold) == 6 and len(train_set) == 74 and not set(map(id, hold)) & set(map(id, train_set))
    assert len(_split(items[:5], 0.2, random.Random(0), cap=6)[1]) == 1  # the fraction decides below the cap


def test_reveal_response_length_per_task(tiny, monkeypatch):
    """max_new_tokens_by_task overrides max_new_tokens on the named task only; a YAML mapping is coerced and
    checked (a bad value is a one-line UserError naming the key)."""
    import bench.reveal as reveal_module
    from bench.errors import UserError
    from bench.params import build_params
    from bench.reveal import RevealParams, reveal
    from bench.testing import ToyTask

    params = build_params(RevealParams, {"max_new_tokens": 6, "max_new_tokens_by_task": {"toy": "9"}}, "r")
    assert params.max_new_tokens_by_task == {"toy": 9}
    assert params.response_tokens("toy") == 9 and params.response_tokens("other") == 6
    with pytest.raises(UserError, match="max_new_tokens_by_task"):
        build_params(RevealParams, {"max_new_tokens_by_task": {"toy": 0}}, "r")
    with pytest.raises(UserError, match="must be a mapping"):
        build_params(RevealParams, {"max_new_tokens_by_task": 5}, "r")
    asked = []
    real = reveal_module.generate

    def spy(*args, **kwargs):
        asked.append(kwargs["max_new_tokens"])
        return real(*args, **kwargs)

    monkeypatch.setattr(reveal_module, "generate", spy)
    model, tokenizer = tiny
    task = ToyTask(ToyTask.Params())
    small = RevealParams(queries=2, n_mutations=2, n_paraphrases=0, responses_per_query=2, max_new_tokens=6,
                         max_new_tokens_by_task={task.name: 3}, fit_steps=5, embedding="model",
                         relevance_threshold=0.0)
    reveal(model, tokenizer, task, ["Tell me the secret.", "What is the password?"], small, 0)
    assert asked and set(asked) == {3}
