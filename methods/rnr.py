"""Reveal-and-Release (``rnr``) — Xie, Teng, Ke, Wen, Wang, "Reveal and Release: Iterative LLM
Unlearning with Self-generated Data" (Findings of EMNLP 2025, arXiv 2509.14624). First public
implementation; every choice is a parameter and is documented in docs/methods/reveal_and_release.md.

**Reveal** (``bench.reveal``): NeuralUCB searches instructions that make the model show the behaviour
to forget; the responses of the best instructions, deduplicated, are the forget set D_f. A held-out
``holdout_fraction`` of D_f and of the retain data is kept aside for the automatic merge weights and
the stop rule (never the task's evaluation sets).

**Release**, for t = 1 … T (``rounds``):

1. train a *forget* LoRA on D_f with ordinary next-token CE (it learns the undesired behaviour) →
   ΔW_f = (α/r)·B_f A_f per target module;
2. train a *retain* LoRA on the retain data with CE → ΔW_r; optionally with the O-LoRA style
   orthogonality penalty ``ortho_weight · Σ_modules ‖A_r A_fᵀ‖_F²`` (off by default);
3. merge into the weights:  θ ← θ − λ_f · ΔW_f + λ_r · ΔW_r, in fp32, rounded once (``apply_merge``);
   trial merges are undone by restoring a snapshot (``snapshot``/``restore``), bit-exactly;
4. log the task's forget/utility probes, held-out log-likelihoods, and the measured interference of the
   two updates (``update_overlap``: |cosine| and principal angles per module; held-out values with each
   update alone versus merged). The last round's probe values
   are the final evaluation's (``probe_source: final evaluation``), and with ``merge: auto`` the held-out
   values of the chosen merge are the line search's own measurement — neither is computed twice.

The two adapters of a round are trained from the same (current) weights and merged together — our reading of
the paper's alternating forget and retain PEMs (docs/methods/reveal_and_release.md says why).

Merge weights: ``merge: fixed`` uses (λ_f, λ_r) = (``lambda_forget``, ``lambda_retain``). ``merge:
auto`` addresses the paper's open problem (manual tuning): each round it tries λ_f ∈
``lambda_forget × auto_scales`` and keeps the one with the largest drop of the held-out forget
log-likelihood whose held-out retain log-likelihood is at most ``utility_budget`` below the **round-0 model's**
(the total utility loss over all rounds so far, not one round's against the previous round); if none fits the
budget, the candidate with the smallest total utility loss. Gains and losses are in Glass's Δ units — divided
by each held-out set's per-item SD under the round-0 model, frozen for the whole run (the leaderboard's F and U
divide by the base model's spread) — and the budget is the leaderboard's (0.2).

Stop: after ``rounds``, or when the held-out forget log-likelihood reaches ``forget_target``, or when
the held-out retain log-likelihood falls below ``utility_floor``. ``reveal_every = k > 0`` re-runs
Reveal on the updated model every k rounds.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from bench import (
    Example,
    Method,
    TrainParams,
    UnlearnContext,
    answer_logliks,
    build_params,
    cross_entropy,
    logits,
    make_batch,
    probe_fields,
    shuffled_batches,
    train,
    with_adapter,
)
from bench.lm.training import restore, snapshot
from bench.reveal import RevealParams, reveal, reveal_seeds

Deltas = dict[str, torch.Tensor]


@dataclass
class RnRParams(TrainParams):
    rounds: int = 4
    steps: int = 6  # optimiser steps per adapter per round
    lambda_forget: float = 1.0
    lambda_retain: float = 0.5
    merge: Literal["fixed", "auto"] = "fixed"
    auto_scales: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    #: λ_r candidates of ``merge: auto``, as multiples of ``lambda_retain``: the retain update is searched
    #: jointly with λ_f (0 lets the search drop a retain update that raises the forget side, e.g. a retain set
    #: in the forget probe's format). Default [1.0]: λ_r fixed.
    auto_retain_scales: list[float] = field(default_factory=lambda: [1.0])
    #: Also run the task's probes with each update alone every round (two more probe passes per round):
    #: what the forget and the retain PEM each do to the forget and utility probes.
    probe_alone: bool = True
    #: Measure each update alone on the held-out sets every round (two more held-out passes per round; with
    #: ``merge: auto`` they come on top of the search's). Off: the round logs only the merged model's held-out
    #: values, and ``probe_alone`` has nothing to ride on (it is skipped too). A diagnostic, not part of the
    #: method: the merge and the stop rule never read it.
    holdout_alone: bool = True
    #: Largest held-out utility loss ``merge: auto`` may leave, counted from the round-0 model (the total over
    #: every round so far, not one round's), in Glass's Δ units (the round-0 held-out retain set's item SD): the
    #: budget the leaderboard's utility-constrained ranking applies to U against the base model.
    utility_budget: float = 0.2
    holdout_fraction: float = 0.2
    #: At most this many held-out items per side (None: ``holdout_fraction`` alone decides). Every round
    #: scores both held-out sets; a task with a large retain set (coding's GSM8K solutions) would otherwise
    #: spend more on this diagnostic than on training.
    max_holdout: int | None = None
    reveal_every: int = 0
    ortho_weight: float = 0.0
    forget_target: float | None = None
    utility_floor: float | None = None
    reveal: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.finetune != "lora":
            raise ValueError("Reveal-and-Release merges LoRA updates; finetune must be 'lora'")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError("holdout_fraction must be in (0, 1)")
        if self.max_holdout is not None and self.max_holdout < 1:
            raise ValueError(f"max_holdout must be >= 1 or null, got {self.max_holdout}")
        if not self.auto_scales or any(s <= 0 for s in self.auto_scales):
            raise ValueError("auto_scales must be positive numbers")
        if not self.auto_retain_scales or any(s < 0 for s in self.auto_retain_scales):
            raise ValueError("auto_retain_scales must be non-negative numbers")
        self.reveal_params()

    def reveal_params(self) -> RevealParams:
        try:
            return build_params(RevealParams, self.reveal, "method_params.rnr.reveal")
        except Exception as err:  # re-raised as ValueError so build_params reports it on one line
            raise ValueError(str(err)) from None


# -- LoRA deltas and merges ------------------------------------------------------------------------
def lora_deltas(peft_model: Any) -> tuple[Deltas, dict[str, torch.Tensor]]:
    """ΔW per adapted weight (named as in the plain model) and each module's LoRA A matrix."""
    from peft.tuners.lora import LoraLayer

    deltas, a_mats = {}, {}
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.lora_A:
            plain = name.removeprefix("base_model.model.")
            deltas[f"{plain}.weight"] = module.get_delta_weight("default").detach().clone()
            a_mats[plain] = module.lora_A["default"].weight.detach().clone()
    return deltas, a_mats


@torch.no_grad()
def apply_merge(model: Any, forget: Deltas, retain: Deltas, lambda_forget: float, lambda_retain: float) -> None:
    """θ ← θ − λ_f·ΔW_f + λ_r·ΔW_r (in place), computed in fp32 and rounded once to the weight's dtype:
    adding a small update to bf16 weights in bf16 loses most of it (about a quarter measured)."""
    for name in set(forget) | set(retain):
        weight = model.get_parameter(name)
        merged = weight.float()
        if name in forget:
            merged = merged - lambda_forget * forget[name].float()
        if name in retain:
            merged = merged + lambda_retain * retain[name].float()
        weight.copy_(merged.to(weight.dtype))


def flat_cosine(a: Deltas, b: Deltas) -> float:
    names = sorted(set(a) & set(b))
    if not names:
        return float("nan")
    va = torch.cat([a[n].flatten().float() for n in names])
    vb = torch.cat([b[n].flatten().float() for n in names])
    return float(torch.nn.functional.cosine_similarity(va, vb, dim=0))


def _column_basis(delta: torch.Tensor, rank: int, generator: torch.Generator) -> torch.Tensor:
    """Orthonormal basis of the top-``rank`` column space of ``delta``. A LoRA update has rank ≤ ``rank``, so
    its column space is that of ``delta @ Ω`` for a Gaussian Ω (with probability 1), and one thin QR of that
    ``d × rank`` matrix gives it — where a full SVD of every ``d × k`` ΔW took seconds per round."""
    if min(delta.shape) <= rank:
        return torch.linalg.svd(delta, full_matrices=False).U[:, :rank]
    omega = torch.randn(delta.shape[1], rank, generator=generator, dtype=delta.dtype)
    return torch.linalg.qr(delta @ omega).Q


def update_overlap(forget: Deltas, retain: Deltas, rank: int) -> dict[str, float]:
    """How much the forget and retain updates of a round overlap, per adapted module, then averaged:
    |cos| of the flattened ΔW, and the largest cosine of the principal angles between their (rank ≤
    ``rank``) column spaces (1 = they write into a shared direction of the output space, 0 = orthogonal)."""
    cosines, principal = [], []
    generator = torch.Generator().manual_seed(0)  # the bases do not depend on Ω; fixed, and the global RNG untouched
    for name in sorted(set(forget) & set(retain)):
        f, r = forget[name].float(), retain[name].float()
        cosines.append(abs(float(torch.nn.functional.cosine_similarity(f.flatten(), r.flatten(), dim=0))))
        q_f, q_r = _column_basis(f, rank, generator), _column_basis(r, rank, generator)
        principal.append(float(torch.linalg.svdvals(q_f.T @ q_r).max()))
    if not cosines:
        return {}
    return {"overlap_abs_cosine": sum(cosines) / len(cosines), "overlap_abs_cosine_max": max(cosines),
            "overlap_principal_cos": sum(principal) / len(principal)}


def ortho_penalty(peft_model: Any, forget_a: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ ‖A_r A_fᵀ‖_F² over modules (O-LoRA)."""
    from peft.tuners.lora import LoraLayer

    total = torch.zeros(())
    for name, module in peft_model.named_modules():
        plain = name.removeprefix("base_model.model.")
        if isinstance(module, LoraLayer) and plain in forget_a:
            a_r = module.lora_A["default"].weight
            total = total + (a_r @ forget_a[plain].to(a_r.device, a_r.dtype).T).pow(2).sum()
    return total


def _spread(values: list[float]) -> float:
    """A held-out set's per-item SD, at least the log-likelihood yardstick (Glass's Δ denominator)."""
    from bench.eval.scales import LOGLIK_EFFECT

    return max(statistics.stdev(values) if len(values) > 1 else 0.0, LOGLIK_EFFECT)


@dataclass
class Holdout:
    forget: list[Example]
    retain: list[Example]
    #: Per-item spread of the round-0 model's held-out log-likelihoods (forget, retain), frozen for the run:
    #: changes are expressed in these units (Glass's Δ), as the leaderboard's F and U are in the base model's.
    scale: tuple[float, float] = (1.0, 1.0)
    #: The round-0 model's held-out means (forget, retain): what ``merge: auto`` measures gains and the utility
    #: budget against (totals over the rounds).
    origin: tuple[float, float] | None = None

    def _logliks(self, model: Any, tokenizer: Any) -> tuple[list[float], list[float]]:
        return answer_logliks(model, tokenizer, self.forget), answer_logliks(model, tokenizer, self.retain)

    def measure(self, model: Any, tokenizer: Any) -> tuple[float, float]:
        f, r = self._logliks(model, tokenizer)
        return statistics.fmean(f), statistics.fmean(r)

    def calibrate(self, model: Any, tokenizer: Any) -> tuple[float, float]:
        """Measure the round-0 model: its means are ``origin`` and each set's item SD is ``scale``."""
        f, r = self._logliks(model, tokenizer)
        self.scale = (_spread(f), _spread(r))
        self.origin = (statistics.fmean(f), statistics.fmean(r))
        return self.origin

    def replace_forget(self, forget: list[Example], model: Any, tokenizer: Any) -> tuple[float, float]:
        """A new held-out forget set (Reveal run again, ``reveal_every``): its origin and scale are measured on the
        current model — the round-0 model is gone, and only the ranking of candidates reads the forget side —
        while the retain side keeps the round-0 origin and scale, so the utility budget stays a total."""
        assert self.origin is not None, "calibrate first"
        self.forget = forget
        f = answer_logliks(model, tokenizer, forget)
        self.scale = (_spread(f), self.scale[1])
        self.origin = (statistics.fmean(f), self.origin[1])
        return self.measure(model, tokenizer)


def choose_merge(candidates: list[tuple[float, float]], measure: Any, base: tuple[float, float], budget: float,
                 scale: tuple[float, float] = (1.0, 1.0)) -> tuple[tuple[float, float], list[dict[str, float]]]:
    """Pick (λ_f, λ_r): the largest forget gain among candidates whose utility loss is within ``budget``,
    else the smallest utility loss. Gains and losses are measured from ``base`` — the round-0 model's held-out
    values in ``unlearn``, so the budget bounds the utility lost over every round so far — in ``scale`` units
    (Glass's Δ on the held-out sets).

    ``measure(λ_f, λ_r) -> (held-out forget ll, held-out retain ll)`` after a tentative merge.
    """
    trials = []
    for lam_f, lam_r in candidates:
        forget_ll, retain_ll = measure(lam_f, lam_r)
        trials.append({"lambda_forget": lam_f, "lambda_retain": lam_r, "forget_gain": (base[0] - forget_ll) / scale[0],
                       "utility_loss": (base[1] - retain_ll) / scale[1],
                       "forget_ll": forget_ll, "retain_ll": retain_ll})
    within = [t for t in trials if t["utility_loss"] <= budget]
    best = max(within, key=lambda t: t["forget_gain"]) if within else min(trials, key=lambda t: t["utility_loss"])
    return (best["lambda_forget"], best["lambda_retain"]), trials


def _split(items: list[Example], fraction: float, rng: random.Random,
           cap: int | None = None) -> tuple[list[Example], list[Example]]:
    items = list(items)
    rng.shuffle(items)
    n_hold = max(1, min(int(round(len(items) * fraction)), cap or len(items)))
    if len(items) - n_hold < 1:
        raise ValueError(f"need at least 2 examples to hold some out, got {len(items)}")
    return items[n_hold:], items[:n_hold]


class RevealAndRelease(Method):
    name = "rnr"
    relative_cost = 3.0  # measured demo cell time relative to a plain loss method / average task
    description = "Reveal-and-Release: self-generated forget data, iterative forget/retain LoRA merges"
    Params = RnRParams
    # per-adapter learning rate and steps, and the rounds of forget/retain merges
    tune_space = {"lr": {"log_uniform": [1e-4, 3e-3]}, "steps": [4, 6, 12], "rounds": [1, 2, 4]}
    # This project's own choice: no code or training details of the paper are public (docs/methods/).
    paper_preset = {"rounds": 10, "steps": 50, "batch_size": 16, "lr": 1e-4, "merge": "auto",
                    "reveal": {"queries": 100, "responses_per_query": 8, "max_new_tokens": 128}}

    def ends_with_adapter(self) -> bool:
        return False  # several forget/retain updates are merged into the weights, round by round

    def _adapter_update(self, model: Any, ctx: UnlearnContext, examples: list[Example], seed: int,
                        tag: str, forget_a: dict[str, torch.Tensor] | None = None) -> tuple[Any, Deltas, dict]:
        """Train a fresh LoRA with CE on ``examples``; return (plain model, ΔW, A matrices)."""
        p = self.params
        peft_model = with_adapter(model, p, seed)
        batches = shuffled_batches(examples, p.batch_size, random.Random(seed))

        def step_loss() -> tuple[torch.Tensor, dict[str, float]]:
            batch = make_batch(ctx.tokenizer, next(batches), p.max_length).to(ctx.device)
            ce = cross_entropy(logits(peft_model, batch), batch.labels)
            if forget_a and p.ortho_weight > 0:
                penalty = ortho_penalty(peft_model, forget_a)
                return ce + p.ortho_weight * penalty, {"ce": ce.item(), "ortho": penalty.item()}
            return ce, {"ce": ce.item()}

        steps, warmup = p.step_budget(len(examples))
        train(peft_model, p, step_loss, ctx, desc=f"rnr {tag}", log_prefix=f"{tag}/", log_every=max(1, steps),
              steps=steps, warmup_steps=warmup)
        deltas, a_mats = lora_deltas(peft_model)
        plain = peft_model.unload()
        plain.requires_grad_(False)
        return plain, deltas, a_mats

    def _reveal(self, model: Any, ctx: UnlearnContext, seed: int) -> list[Example]:
        start = time.perf_counter()
        params = self.params.reveal_params()
        result = reveal(model, ctx.tokenizer, ctx.task, reveal_seeds(ctx.data, params), params, seed)
        ctx.extras.setdefault("reveal", []).append({"trajectory": result.trajectory, "stats": result.stats,
                                                    "seconds": round(time.perf_counter() - start, 2)})
        if len(result.forget) < 2:
            stats = result.stats
            raise ValueError(f"Reveal kept {len(result.forget)} of {stats['responses']} responses (relevance >= "
                             f"{stats['relevance_threshold']}; mean relevance {stats['relevance_before']:.2f}): "
                             "Release needs 2 or more (one is held out); raise reveal queries or "
                             "responses_per_query, or lower relevance_threshold")
        return result.forget

    def unlearn(self, ctx: UnlearnContext) -> Any:
        p = self.params
        rng = random.Random(ctx.seed)
        model = ctx.model
        forget_train, forget_hold = _split(self._reveal(model, ctx, ctx.seed), p.holdout_fraction, rng,
                                           p.max_holdout)
        retain_train, retain_hold = _split(ctx.retain, p.holdout_fraction, rng, p.max_holdout)
        holdout = Holdout(forget_hold, retain_hold)
        current = holdout.calibrate(model, ctx.tokenizer)
        ctx.log_probes(ctx.initial_probe(model), round=0, holdout_forget_ll=current[0], holdout_retain_ll=current[1])
        stop = "rounds"
        for t in range(1, p.rounds + 1):
            round_start = time.perf_counter()
            if p.reveal_every and t > 1 and (t - 1) % p.reveal_every == 0:
                forget_train, forget_hold = _split(self._reveal(model, ctx, ctx.seed + t), p.holdout_fraction,
                                                   rng, p.max_holdout)
                current = holdout.replace_forget(forget_hold, model, ctx.tokenizer)
            model, d_forget, a_forget = self._adapter_update(model, ctx, forget_train, ctx.seed * 7919 + 2 * t,
                                                             "forget")
            model, d_retain, _ = self._adapter_update(model, ctx, retain_train, ctx.seed * 7919 + 2 * t + 1,
                                                      "retain", a_forget)
            names = set(d_forget) | set(d_retain)

            def trial(lam_f: float, lam_r: float, probe: bool = False) -> tuple[tuple[float, float], dict]:
                """Held-out (forget, retain) log-likelihood, and the task's probes when asked, after one trial
                merge, undone exactly."""
                saved = snapshot(model, names)
                apply_merge(model, d_forget, d_retain, lam_f, lam_r)
                try:
                    return holdout.measure(model, ctx.tokenizer), (ctx.probe(model) if probe else {})
                finally:
                    restore(model, saved)

            (lam_f, lam_r), trials = (p.lambda_forget, p.lambda_retain), []
            if p.merge == "auto":
                grid = [(p.lambda_forget * f, p.lambda_retain * r) for r in p.auto_retain_scales for f in p.auto_scales]
                # gains and the utility budget against the round-0 model: totals over the rounds
                assert holdout.origin is not None
                (lam_f, lam_r), trials = choose_merge(grid, lambda f, r: trial(f, r)[0], holdout.origin,
                                                      p.utility_budget, holdout.scale)
            # Interference, measured: each update alone versus both merged, on the held-out sets (and, with
            # ``probe_alone``, on the task's probes, in the same trial merge). The retain PEM alone is measured
            # at ``lambda_retain`` when the search left it out (λ_r = 0), so that what it would have done is
            # still on record.
            lam_r_alone = lam_r or p.lambda_retain
            alone, probes_alone = {}, {}
            pems = (("forget_pem_alone", (lam_f, 0.0)), ("retain_pem_alone", (0.0, lam_r_alone)))
            for tag, lams in pems if p.holdout_alone else ():
                alone[tag], probes = trial(*lams, probe=p.probe_alone)
                probes_alone.update(probe_fields(probes, prefix=f"probe_{tag}/"))
            apply_merge(model, d_forget, d_retain, lam_f, lam_r)
            chosen = next((x for x in trials if (x["lambda_forget"], x["lambda_retain"]) == (lam_f, lam_r)), None)
            current = holdout.measure(model, ctx.tokenizer) if chosen is None else (chosen["forget_ll"],
                                                                                     chosen["retain_ll"])
            interference = {f"{k}_{side}_ll": v[i] for k, v in alone.items()
                            for i, side in enumerate(("forget", "retain"))}
            # The last round's probes are the final evaluation's (filled in by the runner), not a second pass.
            probe = ctx.probe(model) if t < p.rounds else {}
            ctx.log_probes(probe, round=t, lambda_forget=lam_f, lambda_retain=lam_r,
                    update_cosine=flat_cosine(d_forget, d_retain), **update_overlap(d_forget, d_retain, p.lora_rank),
                    **interference, holdout_forget_ll=current[0], holdout_retain_ll=current[1],
                    merge_trials=trials, **probes_alone,
                    seconds=round(time.perf_counter() - round_start, 2))
            if p.forget_target is not None and current[0] <= p.forget_target:
                stop = "forget target reached"
                break
            if p.utility_floor is not None and current[1] < p.utility_floor:
                stop = "utility floor"
                break
        ctx.extras.update(rnr_stop=stop, rnr_rounds=t, forget_set_size=len(forget_train) + len(forget_hold))
        model.eval()
        return model

