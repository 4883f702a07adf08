"""Reveal: self-generated forget data through NeuralUCB instruction search.

Part of Reveal-and-Release (Xie, Teng, Ke, Wen, Wang, Findings of EMNLP 2025, arXiv 2509.14624) and,
on its own, a forget-data provider any method can use (``forget_data: reveal``). No official code
exists; every choice below is a parameter of ``RevealParams`` and is documented in
``docs/methods/reveal_and_release.md``.

1. **Candidate pool.** The task's seed instructions — by default its general requests for the behaviour
   (``TaskData.seed_instructions``) and nothing from the forget set: no forget example, prompt or target name
   (``seeds``; seeding with forget prompts is an option, labelled as such) — grown by (a) mutation — a
   seed with a framing prefix and/or a request suffix from fixed lists — and recombination — the request
   of one seed joined with the subject of another — and (b) paraphrases written by the model itself ("Rewrite
   this instruction in other words"). Duplicates are dropped.
2. **Contexts.** Each instruction's context x_a is the model's embedding of it (mean-pooled last
   hidden state), L2-normalised.
3. **NeuralUCB** (Zhou, Li, Gu, ICML 2020) with a diagonal design matrix, as INSTINCT (Lin et al.
   2024) uses it: contexts standardised per dimension over the pool; ``warm_start`` random queries
   first; reward network f(x; w) = MLP(d → 100 → 1, ReLU). For every arm, g_a = ∇_w f(x_a; w) and

       score_a = f(x_a; w) + ν · sqrt( λ · Σ_j g_a,j² / U_j ),   U initialised to λ·1

   The arm with the highest score is queried; then U ← U + g_sel² (element-wise) and the network is
   refit from its initial weights on all observations with MSE (Adam, lr 1e-3, weight decay λ/n for
   n observations, ``fit_steps`` full-batch steps). Defaults ν = 1, λ = 0.1 (INSTINCT's). An arm may be
   queried more than once (a new sample of responses each time).
4. **Reward of a query.** The model answers the instruction ``responses_per_query`` times
   (sampling). relevance = mean of the task's graded relevance scorer over the responses (toxicity
   score, distinct person names, code quality, …); diversity = Vendi score of the responses'
   sentence embeddings divided by the number of responses (so both lie in [0, 1]):

       VS(K) = exp( −Σ_i μ_i log μ_i ),  μ = eigenvalues of K / n,  K_ij = cos(e_i, e_j)

   reward = weighted harmonic mean (w_rel + w_div) / (w_rel / rel + w_div / div) (0 if either is 0).
5. **Forget set.** The responses of the ``top_instructions`` instructions with the best mean
   reward, deduplicated (exact text after whitespace normalisation), each as an
   ``Example(instruction, response)``, keeping only responses whose own relevance reaches
   ``relevance_threshold`` (an error names the fix when none does). Relevance and diversity of the
   responses before and after this filter, and the number of distinct arms explored, are recorded.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from bench.api import SEED_FORGET_PROMPTS, Example, Task, TaskData
from bench.data.text import render_prompt
from bench.lm.embeddings import model_embeddings, sentence_embedder
from bench.lm.generation import generate

PREFIXES = ["", "In detail, ", "Briefly, ", "Step by step, ", "As an expert, ", "Without holding back, "]
SUFFIXES = ["", " Give a concrete example.", " Be specific.", " Answer in full.", " Make it realistic."]
PARAPHRASE_PROMPT = "Rewrite this instruction in other words. Reply with the new instruction only.\n\n{instruction}"


@dataclass
class RevealParams:
    #: The arms: "instructions" (default) — the task's seed instructions, mutations, recombinations and the
    #: model's paraphrases; "soft_prompt" — instructions the model writes from random soft prompts
    #: (``bench.reveal.soft_prompt``, the paper's search space). The discrete pool is the default because a small
    #: model writes few usable instructions from soft prompts (measured in docs/methods/reveal_and_release.md).
    search: Literal["instructions", "soft_prompt"] = "instructions"
    soft_candidates: int = 24
    intrinsic_dim: int = 10
    soft_tokens: int = 5
    queries: int = 12  # NeuralUCB query budget
    n_mutations: int = 12
    n_paraphrases: int = 4
    responses_per_query: int = 4
    max_new_tokens: int = 64
    #: Response length per task name, overriding ``max_new_tokens`` on that task: a complete response is as
    #: long as the task's own answers (a taught coding model restates the spec as a docstring before the body,
    #: so a function needs ~60 tokens, where a toxic continuation or a Person list is judged in 32).
    max_new_tokens_by_task: dict[str, int] = field(default_factory=dict)
    temperature: float = 1.0
    top_p: float = 0.95
    nu: float = 1.0
    lam: float = 0.1
    hidden: int = 100
    #: Full-batch Adam steps of each refit (from the initial weights).
    fit_steps: int = 200
    fit_lr: float = 1e-3
    #: Random arms queried before the bandit's own choices (INSTINCT: 40 of 165 queries, about a quarter);
    #: default: a quarter of ``queries``, at least 2.
    warm_start: int | None = None
    relevance_weight: float = 1.0
    diversity_weight: float = 1.0
    top_instructions: int = 4
    #: Responses whose own relevance (the task's scorer) is below this are dropped from the forget set:
    #: what the model says off target is not the behaviour to forget (on a safety-tuned model it can be
    #: refusals, whose subtraction makes the model worse).
    relevance_threshold: float = 0.5
    #: When the best instructions' responses that pass the threshold are fewer than this, responses of the
    #: next-ranked instructions are added (in reward order) until it is reached or none are left.
    min_forget: int = 8
    embedding: str = "auto"  # responses' embeddings for Vendi: auto | minilm | model
    #: What seeds the pool: "general" (default) — the task's general requests for the behaviour
    #: (``TaskData.seed_instructions``) only: Reveal sees no forget example, prompt or target name, the setting
    #: the method is for (the forget data is not held). Options that use forget data, labelled so in the method
    #: params: "forget_prompts" — ``n_forget_prompts`` of the task's forget prompts (without answers), so that the
    #: revealed set is the model's own answers in the task's format; "all" — both. Measured at demo size on
    #: SmolLM2-135M with the old default "forget_prompts" (docs/methods/reveal_and_release.md).
    seeds: Literal["general", "forget_prompts", "all"] = "general"
    #: How many forget prompts seed the pool under ``seeds: forget_prompts`` or ``all`` (unused by "general").
    n_forget_prompts: int = SEED_FORGET_PROMPTS

    def validate(self) -> None:
        if self.queries < 1 or self.responses_per_query < 1 or self.top_instructions < 1:
            raise ValueError("queries, responses_per_query and top_instructions must be >= 1")
        if self.nu < 0 or self.lam <= 0:
            raise ValueError("nu must be >= 0 and lam > 0")
        if self.n_forget_prompts < 0:
            raise ValueError(f"n_forget_prompts must be >= 0, got {self.n_forget_prompts}")
        if not 0 <= self.relevance_threshold <= 1:
            raise ValueError(f"relevance_threshold must be in [0, 1], got {self.relevance_threshold}")
        if self.max_new_tokens < 1 or any(v < 1 for v in self.max_new_tokens_by_task.values()):
            raise ValueError("max_new_tokens and every max_new_tokens_by_task value must be >= 1")

    def response_tokens(self, task_name: str) -> int:
        """The response length on ``task_name``: its entry in ``max_new_tokens_by_task``, else ``max_new_tokens``."""
        return self.max_new_tokens_by_task.get(task_name, self.max_new_tokens)


# -- pool ------------------------------------------------------------------------------------------
def mutate(seeds: list[str], n: int, rng: random.Random) -> list[str]:
    """Mutations (framing prefix / request suffix) and recombinations (request of one seed + the
    subject of another, split at the first ' that ', ' about ' or ' of ')."""
    out: list[str] = []
    for _ in range(n * 4):
        if len(out) >= n:
            break
        if len(seeds) > 1 and rng.random() < 0.3:
            a, b = rng.sample(seeds, 2)
            for sep in (" that ", " about ", " of "):
                if sep in a and sep in b:
                    out.append(a.split(sep, 1)[0] + sep + b.split(sep, 1)[1])
                    break
            continue
        seed = rng.choice(seeds)
        prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
        text = (prefix + seed[0].lower() + seed[1:]) if prefix else seed
        out.append(text + suffix)
    return out


def paraphrase(model: Any, tokenizer: Any, seeds: list[str], n: int, rng: random.Random, seed: int) -> list[str]:
    chosen = [rng.choice(seeds) for _ in range(n)]
    prompts = [render_prompt(tokenizer, PARAPHRASE_PROMPT.format(instruction=s)) for s in chosen]
    outs = generate(model, tokenizer, prompts, max_new_tokens=40, do_sample=True, temperature=0.8, seed=seed)
    lines = [o[0].strip().split("\n")[0].strip().strip('"') for o in outs]
    return [line for line in lines if 10 <= len(line) <= 300]


def build_pool(model: Any, tokenizer: Any, seeds: list[str], params: RevealParams, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = list(seeds) + mutate(seeds, params.n_mutations, rng)
    if params.n_paraphrases:
        pool += paraphrase(model, tokenizer, seeds, params.n_paraphrases, rng, seed)
    seen, unique = set(), []
    for text in pool:
        key = " ".join(text.lower().split())
        if key not in seen:
            seen.add(key)
            unique.append(text)
    return unique


# -- scores ----------------------------------------------------------------------------------------
def vendi_score(embeddings: torch.Tensor) -> float:
    """exp(−Σ μ log μ) over eigenvalues μ of K/n with K the cosine-similarity matrix."""
    n = embeddings.shape[0]
    if n == 0:
        return 0.0
    x = torch.nn.functional.normalize(embeddings.double(), dim=-1)
    eig = torch.linalg.eigvalsh(x @ x.T / n).clamp(min=0)
    eig = eig[eig > 1e-12]
    return float(torch.exp(-(eig * eig.log()).sum()))


def harmonic_reward(relevance: float, diversity: float, w_rel: float = 1.0, w_div: float = 1.0) -> float:
    if relevance <= 0 or diversity <= 0:
        return 0.0
    return (w_rel + w_div) / (w_rel / relevance + w_div / diversity)


# -- NeuralUCB -------------------------------------------------------------------------------------
class NeuralUCB:
    """NeuralUCB (Zhou, Li, Gu, ICML 2020) over a fixed set of arm contexts, with the diagonal design
    matrix of the practical version, as INSTINCT (Lin et al. 2024) uses it for instruction search.

    * Contexts are standardised per dimension over the candidate pool: language-model embeddings of
      instructions are nearly parallel (cosine ≈ 0.9), and unstandardised they give every arm almost the
      same gradient, so one pull shrinks every arm's bonus and the search never leaves its first arm.
    * The first ``warm_start`` queries are arms drawn uniformly at random without replacement.
    * Score of arm a: f(x_a; θ) + ν·sqrt(λ·Σ_j g_aj² / U_j), with g_a = ∇_θ f(x_a; θ), U initialised to λ
      and U ← U + g_sel² for the selected arm (the diagonal of Z = λI + Σ g gᵀ).
    * After each observation the network is refit **from its initial weights** on all observations
      (MSE, Adam, weight decay λ/n for n observations, ``fit_steps`` full-batch steps).
    """

    def __init__(self, contexts: torch.Tensor, hidden: int = 100, nu: float = 1.0, lam: float = 0.1,
                 fit_steps: int = 200, lr: float = 1e-3, seed: int = 0, warm_start: int = 0):
        self.rng = random.Random(seed)
        gen = torch.Generator().manual_seed(seed)
        x = contexts.double()
        self.contexts = ((x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-8)).float() if len(x) > 1 else x.float()
        d = contexts.shape[1]
        self.net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        with torch.no_grad():  # Zhou et al.'s Gaussian init, variance 2/fan_in for the ReLU layer
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / p.shape[-1]))
        self.initial = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.nu, self.lam, self.fit_steps, self.lr = nu, lam, fit_steps, lr
        self.warm = self.rng.sample(range(len(contexts)), min(warm_start, len(contexts)))
        self.U = torch.full((sum(p.numel() for p in self.net.parameters()),), lam)
        self.xs: list[int] = []
        self.ys: list[float] = []

    def _grads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(x) and ∇_θ f(x) for each row of ``x``, in closed form for the one-hidden-layer ReLU network
        (parameter order W1, b1, W2, b2, as ``parameters()`` flattens them)."""
        first, last = self.net[0], self.net[2]
        with torch.no_grad():
            pre = x @ first.weight.T + first.bias
            act = pre.clamp(min=0)
            mean = act @ last.weight[0] + last.bias[0]
            gate = last.weight[0] * (pre > 0)  # ∂f/∂b1; ∂f/∂W1 = gate ⊗ x
            grads = torch.cat([(gate[:, :, None] * x[:, None, :]).flatten(1), gate, act,
                               torch.ones(len(x), 1)], dim=1)
        return mean, grads

    def scores(self) -> list[tuple[float, float, float]]:
        """(score, mean, bonus) per arm."""
        means, grads = self._grads(self.contexts)
        bonus = self.nu * torch.sqrt(self.lam * (grads * grads / self.U).sum(1))
        return [(float(m + b), float(m), float(b)) for m, b in zip(means, bonus)]

    def select(self) -> int:
        if len(self.xs) < len(self.warm):
            arm = self.warm[len(self.xs)]
        else:
            scores = self.scores()
            arm = max(range(len(scores)), key=lambda i: scores[i][0])
        g = self._grads(self.contexts[arm:arm + 1])[1][0]
        self.U += g * g
        return arm

    def update(self, arm: int, reward: float) -> None:
        self.xs.append(arm)
        self.ys.append(reward)
        self.net.load_state_dict(self.initial)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.lam / len(self.ys))
        x = self.contexts[self.xs]
        y = torch.tensor(self.ys).unsqueeze(-1)
        for _ in range(self.fit_steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(self.net(x), y).backward()
            opt.step()


# -- the search ------------------------------------------------------------------------------------
@dataclass
class RevealResult:
    forget: list[Example]
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def reveal_seeds(data: TaskData, params: RevealParams) -> list[str]:
    """The instructions that seed the pool (``params.seeds``): the task's general requests ("general", the
    default: nothing from the forget set), the first ``n_forget_prompts`` of its forget prompts
    ("forget_prompts"), or both ("all")."""
    general = list(data.seed_instructions)
    if params.seeds == "general":
        return general
    prompts = list(data.reveal_prompts[:params.n_forget_prompts])
    return prompts if params.seeds == "forget_prompts" else general + prompts


def reveal(model: Any, tokenizer: Any, task: Task, seed_instructions: list[str], params: RevealParams,
           seed: int) -> RevealResult:
    """Search instructions that make the model show the behaviour to forget; return its responses."""
    if not seed_instructions:
        raise ValueError(f"task '{task.name}' supplies no seed instructions for reveal seeds "
                         f"'{params.seeds}' (n_forget_prompts {params.n_forget_prompts}), which Reveal needs")
    if params.search == "soft_prompt":
        from bench.reveal.soft_prompt import soft_prompt_candidates

        candidates_sp = soft_prompt_candidates(model, tokenizer, seed_instructions, params.soft_candidates,
                                               params.intrinsic_dim, params.soft_tokens, 40, seed)
        pool = list(dict.fromkeys(c.instruction for c in candidates_sp))
        if len(pool) < 2:
            raise ValueError(f"soft-prompt search: the model wrote {len(pool)} usable instruction(s) from "
                             f"{params.soft_candidates} soft prompts; raise soft_candidates or use "
                             "search: instructions")
    else:
        pool = build_pool(model, tokenizer, seed_instructions, params, seed)
    contexts = torch.nn.functional.normalize(model_embeddings(model, tokenizer, pool), dim=-1)
    warm = params.warm_start if params.warm_start is not None else max(2, params.queries // 4)
    bandit = NeuralUCB(contexts, params.hidden, params.nu, params.lam, params.fit_steps, params.fit_lr, seed, warm)
    embed, embed_label = sentence_embedder(model, tokenizer, params.embedding)
    responses: dict[int, list[str]] = {}
    rewards: dict[int, list[float]] = {}
    trajectory = []
    for query in range(1, params.queries + 1):
        arm = bandit.select()
        outs = generate(model, tokenizer, [render_prompt(tokenizer, pool[arm])],
                        max_new_tokens=params.response_tokens(task.name),
                        do_sample=True, temperature=params.temperature, top_p=params.top_p,
                        num_return_sequences=params.responses_per_query, seed=seed * 1000 + query)[0]
        relevance = float(sum(task.relevance(outs)) / len(outs))
        diversity = vendi_score(embed(outs)) / len(outs)
        reward = harmonic_reward(relevance, diversity, params.relevance_weight, params.diversity_weight)
        bandit.update(arm, reward)
        responses.setdefault(arm, []).extend(outs)
        rewards.setdefault(arm, []).append(reward)
        trajectory.append({"query": query, "arm": arm, "instruction": pool[arm], "reward": reward,
                           "relevance": relevance, "diversity": diversity, "random": query <= warm})
    order = sorted(rewards, key=lambda a: -sum(rewards[a]) / len(rewards[a]))
    seen, candidates, forget, relevance, ranked = set(), [], [], [], []
    for rank, arm in enumerate(order):
        if rank >= params.top_instructions and len(forget) >= params.min_forget:
            break
        ranked.append(arm)
        new = []
        for text in responses[arm]:
            key = " ".join(text.split())
            if key and key not in seen:
                seen.add(key)
                new.append(Example(pool[arm], text))
        scores = task.relevance([ex.answer for ex in new]) if new else []
        candidates += new
        relevance += scores
        forget += [ex for ex, r in zip(new, scores) if r >= params.relevance_threshold]
    if not candidates:
        raise ValueError("Reveal produced no non-empty responses; raise max_new_tokens or queries")
    if not forget:
        raise ValueError(f"Reveal: none of the {len(candidates)} responses reached relevance "
                         f"{params.relevance_threshold} (best {max(relevance):.2f}); lower relevance_threshold or "
                         "raise queries")
    kept = [r for r in relevance if r >= params.relevance_threshold]
    stats = {"search": params.search, "seeds": params.seeds, "seed_instructions": len(seed_instructions),
             "pool_size": len(pool), "arms_explored": len(set(t["arm"] for t in trajectory)),
             "queries": len(trajectory), "responses": len(candidates), "forget_size": len(forget),
             "relevance_before": float(sum(relevance) / len(relevance)),
             "diversity_before": vendi_score(embed([ex.answer for ex in candidates])) / len(candidates),
             "forget_relevance": float(sum(kept) / len(kept)),
             "forget_diversity": vendi_score(embed([ex.answer for ex in forget])) / len(forget),
             "relevance_threshold": params.relevance_threshold,
             "embedding": embed_label, "top_instructions": [pool[a] for a in ranked]}
    return RevealResult(forget, trajectory, stats)
