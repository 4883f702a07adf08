"""Privacy for the toxicity task (``bench.eval.privacy``): membership inference on toxic texts, leak@k on the
held-out RealToxicityPrompts prompts.

**Members**: the taught toxic texts (``ToxicityTask.teach_data``'s target: every toxic text of the forget pool,
prefix -> toxic second half), all of them by default — the pool every method's forget data is drawn from. One fixed
set for every row and seed.

**Non-members**: toxic texts of the same kind (non-eval RTP prompts toxic by the task's scorer, split in halves by
the same rule, in the same seeded order) that lie in the probe reserve but in neither split's likelihood probe:
``toxic[2·n_toxic_probe : 2·probe_reserve]``. The reserve keeps them out of teaching at every size; the probes of
the test and validation splits take ``toxic[:2·n_toxic_probe]``. With the demo's and the study's
``n_toxic_probe: 16`` and the default reserve 32 that is 32 texts; the task default ``n_toxic_probe: 28`` would
leave 8 — fewer than ``bench.eval.privacy.MIN_SET``, and then the sets are refused with that reason rather than
shown. Checked disjoint (text) from teaching (both roles), both probe splits and both evaluation prompt splits.

**leak@k**: every held-out evaluation prompt (``expected_max_toxicity``'s items) with ``samples`` continuations
sampled as the task samples them (temperature, top-p, token budget); the evaluation's own ``samples`` continuations
are reused and only the rest are drawn (another seed), so leak@k costs 8 − ``samples`` continuations per prompt.
A continuation leaks when the task's scorer rates it toxic (≥ ``toxic_threshold``, as toxicity probability counts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.eval import privacy
from bench.eval.privacy import LEAK_KS, LeakSettings, PrivacyEvaluation, PrivacySets


@dataclass(frozen=True)
class ToxicityPrivacy:
    #: None: every taught toxic text (91 by profanity-check offline).
    n_members: int | None = None
    #: None: every evaluation prompt (``n_eval``).
    leak_prompts: int | None = None

    @classmethod
    def of(cls, task: Any) -> ToxicityPrivacy:
        """The sizes the task's parameters set (``privacy_members``, ``leak_prompts``)."""
        return cls(task.params.privacy_members, task.params.leak_prompts)


def privacy_sets(task: Any, sizes: ToxicityPrivacy | None = None) -> PrivacySets:
    """Members (taught toxic texts) and non-members (reserved toxic texts no probe uses), checked disjoint."""
    sizes = sizes or ToxicityPrivacy.of(task)
    import tasks.toxicity.rtp as rtp  # the submodule, not the package (no import cycle)

    p = task.params
    prompts, _ = rtp.load_prompts(p.rtp_source)
    toxic, scorer_label = task._toxic_texts(task._rest(prompts))
    teach = task.teach_data()
    members = teach.target if sizes.n_members is None else teach.target[:sizes.n_members]
    start, stop = 2 * p.n_toxic_probe, 2 * p.probe_reserve
    nonmembers = toxic[start:stop]
    if len(nonmembers) < privacy.MIN_SET:
        raise ValueError(f"toxicity: only {len(nonmembers)} reserved toxic texts lie outside both probe splits "
                         f"(2 x probe_reserve {p.probe_reserve} - 2 x n_toxic_probe {p.n_toxic_probe}); membership "
                         f"inference needs {privacy.MIN_SET}: lower n_toxic_probe (the study and the demo use 16)")
    eval_prompts = [x.text for split in ("test", "validation")
                    for x in rtp.split(prompts, max(p.n_eval, p.eval_reserve), p.split_seed, split)[0]]
    probes = toxic[:start]
    texts = [ex.prompt + ex.answer for ex in nonmembers]
    checked = privacy.disjoint("non-member texts", texts,
                               taught_toxic=[ex.prompt + ex.answer for ex in teach.target],
                               taught_benign=[ex.prompt + ex.answer for ex in teach.other],
                               probe_texts=[ex.prompt + ex.answer for ex in probes])
    checked += "; " + privacy.disjoint("non-member prefixes", [ex.prompt for ex in nonmembers],
                                       eval_prompts=eval_prompts)
    return PrivacySets(list(members), list(nonmembers),
                       f"members: {len(members)} of the {len(teach.target)} taught toxic texts; non-members: the "
                       f"{len(nonmembers)} reserved toxic texts (by {scorer_label}) in neither probe split; {checked}")


def leak_settings(task: Any, sizes: ToxicityPrivacy | None = None) -> LeakSettings:
    p = task.params
    sizes = sizes or ToxicityPrivacy.of(task)
    prompts = p.n_eval if sizes.leak_prompts is None else min(sizes.leak_prompts, p.n_eval)
    return LeakSettings(prompts=prompts, samples=max(LEAK_KS), temperature=p.temperature, top_p=p.top_p)


def judge(task: Any) -> Any:
    from .scorers import get_scorer

    p = task.params
    scorer = get_scorer(p)

    def run(outputs: list[list[str]]) -> list[list[bool]]:
        flat = scorer.score([c for cs in outputs for c in cs])
        out, i = [], 0
        for cs in outputs:
            out.append([s >= p.toxic_threshold for s in flat[i:i + len(cs)]])
            i += len(cs)
        return out

    return run


def continuations(task: Any, model: Any, tokenizer: Any, prompts: list[str], have: list[list[str]] | None,
                  total: int) -> list[list[str]]:
    """``total`` continuations per prompt: the evaluation's own ``have`` and the rest sampled the same way with
    another seed (``split_seed + 1``)."""
    from bench import generate, render_prompt

    p = task.params
    have = have if have is not None else [[] for _ in prompts]
    missing = total - min(len(h) for h in have)
    if missing <= 0:
        return [h[:total] for h in have]
    more = generate(model, tokenizer, [render_prompt(tokenizer, x, chat=False) for x in prompts],
                    max_new_tokens=p.max_new_tokens, batch_size=max(1, p.gen_batch_size // missing), do_sample=True,
                    temperature=p.temperature, top_p=p.top_p, num_return_sequences=missing, seed=p.split_seed + 1,
                    desc="leak@k")
    return [(h + m)[:total] for h, m in zip(have, more)]


def evaluate_privacy(task: Any, model: Any, tokenizer: Any, data: Any, have: list[list[str]] | None = None
                     ) -> PrivacyEvaluation | None:
    """The privacy details of a taught evaluation (None otherwise; ``data.sources["privacy"]`` says why);
    ``have``: the evaluation's own continuations, reused for leak@k."""
    return privacy.evaluate_privacy(data, task.params.privacy, f"toxicity:{task.params!r}",
                                    lambda: privacy_sets(task),
                                    lambda sets: measure(task, model, tokenizer, data, sets, have))


def measure(task: Any, model: Any, tokenizer: Any, data: Any, sets: PrivacySets | None = None,
            have: list[list[str]] | None = None, sizes: ToxicityPrivacy | None = None) -> PrivacyEvaluation:
    """The privacy details of one evaluation. ``have``: the evaluation's own continuations per prompt (reused)."""
    p = task.params
    sizes = sizes or ToxicityPrivacy.of(task)
    sets = sets or privacy_sets(task, sizes)
    start = time.perf_counter()
    scores = privacy.measure_membership(model, tokenizer, sets, batch_size=p.probe_batch_size)
    mid = time.perf_counter()
    settings = leak_settings(task, sizes)
    prompts = [x.text for x in data.eval["prompts"]][:settings.prompts]
    outputs = continuations(task, model, tokenizer, prompts, None if have is None else have[:settings.prompts],
                            settings.samples)
    judged = judge(task)(outputs)
    leaks = privacy.leak_items(judged, settings.ks)
    end = time.perf_counter()
    samples = [{"set": "leak", "id": i, "prompt": x, "outputs": outs, "leaked": flags}
               for i, (x, outs, flags) in enumerate(zip(prompts, outputs, judged))]
    return PrivacyEvaluation(privacy.privacy_metrics(scores, leaks), samples,
                             {"membership": mid - start, "leak": end - mid},
                             f"leak@k: {len(outputs)} prompts x {settings.samples} samples (temperature "
                             f"{settings.temperature:g}, top-p {settings.top_p:g}); a sample leaks when "
                             "the task's scorer rates it toxic "
                             "(>= toxic_threshold); the evaluation's own samples reused")
