"""Method losses on tiny tensors against hand-computed numbers."""

import math

import pytest
import torch

from bench.data.text import IGNORE
from methods.flat import FLAT, FLATParams, flat_loss, mean_token_prob, padded_batch_prob
from methods.graddiff import graddiff_loss
from methods.npo import NPO, npo_loss

T = torch.tensor


def test_graddiff_loss():
    assert graddiff_loss(T(2.0), T(1.0)).item() == pytest.approx(-1.0)
    assert graddiff_loss(T(2.0), T(1.0), forget_weight=0.5, retain_weight=2.0).item() == pytest.approx(1.0)


def test_npo_loss_hand_computed():
    # equal likelihoods: (2/β)·log 2; ratio −10 at β = 0.1: 20·log(1 + e^−1)
    assert npo_loss(T([-5.0]), T([-5.0]), 0.1).item() == pytest.approx(20 * math.log(2), rel=1e-6)
    assert npo_loss(T([-15.0]), T([-5.0]), 0.1).item() == pytest.approx(20 * math.log(1 + math.exp(-1)), rel=1e-6)
    both = npo_loss(T([-5.0, -15.0]), T([-5.0, -5.0]), 0.1).item()
    assert both == pytest.approx(10 * (math.log(2) + math.log(1 + math.exp(-1))), rel=1e-6)


def test_npo_gradient_lowers_forget_likelihood_and_saturates():
    lp = T([-5.0], requires_grad=True)
    npo_loss(lp, T([-5.0]), 0.1).backward()
    assert lp.grad.item() == pytest.approx(2 * 0.5)  # (2/β)·β·σ(0) = 1
    far = T([-200.0], requires_grad=True)
    npo_loss(far, T([-5.0]), 0.1).backward()
    assert 0 < far.grad.item() < 1e-6  # saturated: no further push once forgotten


def _logits():
    return T([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])


def test_flat_mean_token_probability():
    labels = T([[IGNORE, 0, 0]])
    assert mean_token_prob(_logits(), labels).item() == pytest.approx((0.5 + 0.75) / 2)
    tail_only = T([[IGNORE, IGNORE, 0]])
    assert mean_token_prob(_logits(), tail_only).item() == pytest.approx(0.75)
    # the official padded variant: one number per batch, the sum over (pad_length - 1) positions per sequence
    assert padded_batch_prob(_logits(), tail_only, pad_length=3).item() == pytest.approx(0.75 / 2)
    assert padded_batch_prob(_logits(), tail_only, pad_length=5).item() == pytest.approx(0.75 / 4)
    with pytest.raises(ValueError, match="longer than pad_length"):
        padded_batch_prob(_logits(), tail_only, pad_length=2)


# -- FLAT `average: padded` against the official computation (UCSC-REAL/FLAT dataloader.py) -------------------
# Two samples, vocabulary {0, 1}, three positions; after the shift, position 0's logits predict label 1 and
# position 1's predict label 2. Probabilities: [0, 0] -> 1/2 each; [log 3, 0] -> 3/4 for token 0, 1/4 for 1.
FLAT_LOGITS = T([[[0.0, 0.0], [math.log(3.0), 0.0], [0.0, 0.0]],
                 [[math.log(3.0), 0.0], [0.0, 0.0], [0.0, 0.0]]])
FORGET_LABELS = T([[IGNORE, 0, 0], [IGNORE, IGNORE, 1]])  # p: 1/2, 3/4 | 1/2
GOOD_LOGITS = FLAT_LOGITS.flip(0)  # the template batch's logits: the two rows swapped
GOOD_LABELS = T([[IGNORE, 1, 1], [IGNORE, 0, 0]])  # p: 1/4, 1/2 | 1/2, 3/4


def official_flat_loss(logits_, labels, good_logits, good_labels, pad_length, divergence):
    """A direct re-derivation of the official loss: pad every sequence to ``pad_length`` (label -100 on the pad,
    as ``create_tofu_sample_pair`` does), per sample NLLLoss(reduction='none', ignore_index=-100) on *softmax
    probabilities* (``ProbLossStable``: -p_t, 0 where ignored), stack, one mean over the batch and every
    position, then ``get_contrastive_loss``: activation(-(-P_e)) - conjugate(-(-P_f)) with the official
    activation/conjugate forms."""
    def batch_mean(lg, lb):
        b, t, v = lg.shape
        lg = torch.cat([lg, torch.zeros(b, pad_length - t, v)], 1)
        lb = torch.cat([lb, torch.full((b, pad_length - t), -100)], 1)
        nll = torch.nn.NLLLoss(reduction="none", ignore_index=-100)
        per_sample = [nll(torch.softmax(lg[i, :-1], -1), lb[i, 1:]) for i in range(b)]
        return torch.stack(per_sample).mean()  # = -P

    activation, conjugate = {
        "tv": (lambda x: -torch.tanh(x) / 2, lambda x: -torch.tanh(x) / 2),
        "kl": (lambda x: -x, lambda x: -torch.exp(x - 1)),
        "pearson": (lambda x: -x, lambda x: -(x * x / 4 + x)),
        "js": (lambda x: torch.log(1 + torch.exp(-x)) - math.log(2),
               lambda x: -(x + torch.log(1 + torch.exp(-x))) + math.log(2)),
    }[divergence]
    prob_sum_unlearn, prob_sum_good = batch_mean(logits_, labels), batch_mean(good_logits, good_labels)
    return activation(-prob_sum_good) - conjugate(-prob_sum_unlearn)


class FixedLogits(torch.nn.Module):
    """A "model" returning the fixed logits of each batch (input ids 0: the forget batch, 1: the template's)."""

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": GOOD_LOGITS if input_ids[0, 0] == 1 else FLAT_LOGITS})()


def _flat_batches():
    from bench.data.text import Batch

    ones = torch.ones(2, 3, dtype=torch.long)
    bad = Batch(torch.zeros(2, 3, dtype=torch.long), ones, FORGET_LABELS)
    good = Batch(torch.ones(2, 3, dtype=torch.long), ones, GOOD_LABELS)
    return bad, good


@pytest.mark.parametrize("divergence", ["tv", "kl", "pearson", "js"])
def test_flat_padded_is_the_official_computation(divergence):
    bad, good = _flat_batches()
    method = FLAT(FLATParams(divergence=divergence, average="padded", pad_length=5, max_length=5))
    loss, logs = method.loss(FixedLogits(), (bad, good), None)
    # hand-computed: 2 sequences x 4 positions after the shift at pad length 5
    p_f, p_e = (0.5 + 0.75 + 0.5) / 8, (0.25 + 0.5 + 0.5 + 0.75) / 8  # 0.21875, 0.25
    assert logs["p_forget"] == pytest.approx(p_f) and logs["p_template"] == pytest.approx(p_e)
    official = official_flat_loss(FLAT_LOGITS, FORGET_LABELS, GOOD_LOGITS, GOOD_LABELS, 5, divergence)
    assert loss.item() == pytest.approx(official.item(), abs=1e-6)
    if divergence == "tv":
        assert loss.item() == pytest.approx(-(math.tanh(p_e) - math.tanh(p_f)) / 2, abs=1e-7)
        # per sample on the real answer tokens (the default) is another number: conjugates of the per-sample means
        per_sample = FLAT(FLATParams(divergence="tv")).loss(FixedLogits(), (bad, good), None)[0].item()
        p_f_i, p_e_i = [(0.5 + 0.75) / 2, 0.5], [(0.5 + 0.25) / 2, (0.75 + 0.5) / 2]
        expected = -sum(math.tanh(e) - math.tanh(f) for e, f in zip(p_e_i, p_f_i)) / 4
        assert per_sample == pytest.approx(expected, abs=1e-7) and abs(per_sample - loss.item()) > 1e-3


def test_flat_padded_needs_pad_length_at_least_max_length():
    with pytest.raises(ValueError, match="pad_length >= max_length"):
        FLATParams(average="padded", pad_length=128, max_length=256).validate()
    FLATParams(average="answer_tokens", pad_length=128, max_length=256).validate()  # unused there
    assert FLATParams().pad_length == 500 and FLAT.paper_preset["average"] == "padded"


def test_flat_draws_a_template_answer_per_example_every_epoch(tiny, monkeypatch):
    """The shared loop serves each forget example once per epoch; FLAT pairs it with a template drawn then
    (UCSC-REAL/FLAT data_module.py draws one in __getitem__), seeded: a fresh draw each epoch, the same run
    twice alike."""
    import copy

    from bench.testing import make_context

    def run():
        ctx = make_context(copy.deepcopy(tiny[0]), tiny[1])
        ctx.base_probe = dict  # no probe pass: only the templates are looked at
        ctx.data.template_answers = [f"Template answer {i}." for i in range(20)]
        n = len(ctx.forget)
        method = FLAT(FLATParams(epochs=3, batch_size=n, steps=1, lr=1e-4, max_length=32))
        epochs = []
        real = method.with_templates
        monkeypatch.setattr(method, "with_templates", lambda items: epochs.append(real(items)) or epochs[-1])
        method.unlearn(ctx)
        return [{f.prompt: e.answer for f, e in pairs} for pairs in epochs]

    epochs = run()
    assert len(epochs) == 3 and all(len(e) == 6 for e in epochs)  # 3 epochs of one batch, every example once
    assert epochs[0] != epochs[1] != epochs[2]  # redrawn each epoch
    assert run() == epochs  # seeded


@pytest.mark.parametrize("divergence, expected", [
    ("kl", -(0.5 - math.exp(0.25 - 1))),
    ("pearson", -(0.5 - (0.25 ** 2 / 4 + 0.25))),
    ("tv", -(math.tanh(0.5) / 2 - math.tanh(0.25) / 2)),
    ("js", -((math.log(2) - math.log(1 + math.exp(-0.5))) - (0.25 + math.log(1 + math.exp(-0.25)) - math.log(2)))),
])
def test_flat_loss_per_divergence(divergence, expected):
    assert flat_loss(T([0.5]), T([0.25]), divergence).item() == pytest.approx(expected, abs=1e-6)


def test_flat_gradient_raises_template_and_lowers_forget():
    p_e, p_f = T([0.3], requires_grad=True), T([0.6], requires_grad=True)
    flat_loss(p_e, p_f, "kl").backward()
    assert p_e.grad.item() < 0 < p_f.grad.item()


def test_npo_paper_preset_is_npo_rt_with_the_cited_retain_weight():
    """licong-lin/negative-preference-optimization TOFU/config/forget.yaml: forget_loss npo_grad_diff with
    npo_coeff 1.0 and grad_diff_coeff 1.0 (NPO+RT); pure NPO is retain_weight 0."""
    from bench.params import build_params

    assert NPO.paper_preset["retain_weight"] == 1.0 and NPO.paper_preset["beta"] == 0.1
    assert NPO(build_params(NPO.Params, dict(NPO.paper_preset), "npo")).uses_retain
    assert not NPO(build_params(NPO.Params, {**NPO.paper_preset, "retain_weight": 0}, "npo")).uses_retain
    assert NPO.Params().retain_weight == 0.0  # the demo default: pure NPO


def test_icu_loss_and_kl_hand_computed():
    from bench.lm.losses import kl_on_answers
    from methods.icu import icu_loss

    assert icu_loss(T(2.0), T(1.0), T(0.5), alpha=0.5, beta=1.0).item() == pytest.approx(-2 + 0.5 + 0.5)
    # one answer position: p_ref = (1/2, 1/2), p_θ = (3/4, 1/4): KL = ½·log(½/¾) + ½·log(½/¼)
    ref = T([[[0.0, 0.0], [0.0, 0.0]]])
    cur = T([[[math.log(3.0), 0.0], [0.0, 0.0]]])
    labels = T([[IGNORE, 1]])
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kl_on_answers(ref, cur, labels).item() == pytest.approx(expected, abs=1e-6)
    assert kl_on_answers(ref, ref, labels).item() == pytest.approx(0.0, abs=1e-7)


def test_overlap_metrics():
    from bench.eval.textmetrics import sentence_bleu, token_f1

    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("the dog", "the cat sat") == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert token_f1("zebra", "the cat") == 0.0
    assert sentence_bleu("a b c d e", "a b c d e") == pytest.approx(1.0)
    assert sentence_bleu("x y z", "a b c") == 0.0
    # unigrams 2/2, bigrams (1+1)/(1+1), tri/4-grams (0+1)/(0+1); brevity exp(1 − 3/2)
    assert sentence_bleu("a b", "a b c") == pytest.approx(math.exp(1 - 3 / 2), rel=1e-6)


def test_icu_pairs_each_forget_sample_with_its_nearest_retain_sample():
    from bench.api import Example
    from methods.icu import pair_with_retain

    vectors = {"f1": [1.0, 0.0], "f2": [0.0, 1.0], "r1": [0.1, 1.0], "r2": [1.0, 0.2]}

    def embed(texts):
        return T([vectors[t.split("\n")[0]] for t in texts])

    forget = [Example("f1", "x"), Example("f2", "y")]
    pool = [Example("r1", "z"), Example("r2", "w")]
    assert pair_with_retain(forget, pool, embed) == [1, 0]


def test_idk_loss_is_one_token_mean_over_refusal_and_retain_tokens():
    """TOFU's idk: one CE over the concatenated batches = the token-weighted mean of the two batch means."""
    from methods.idk import answer_tokens, idk_loss

    # 3 refusal tokens at mean CE 2.0, 1 retain token at CE 6.0: (3·2 + 1·6) / 4 = 3.0 (a plain average: 4.0)
    assert idk_loss(T(2.0), 3, T(6.0), 1).item() == pytest.approx(3.0)
    assert idk_loss(T(2.0), 3).item() == pytest.approx(2.0)  # retain: false
    labels = T([[IGNORE, IGNORE, 5, 6], [IGNORE, 7, IGNORE, IGNORE]])
    assert answer_tokens(labels) == 3  # the first position never has a prediction
    # the concatenated forward's CE equals the weighted form, on real logits
    from bench.lm.losses import cross_entropy

    torch.manual_seed(0)
    logits_a, logits_b = torch.randn(2, 4, 9), torch.randn(1, 4, 9)
    la, lb = T([[IGNORE, 1, 2, 3], [IGNORE, IGNORE, 4, IGNORE]]), T([[IGNORE, IGNORE, 5, 6]])
    joint = cross_entropy(torch.cat([logits_a, logits_b]), torch.cat([la, lb]))
    weighted = idk_loss(cross_entropy(logits_a, la), answer_tokens(la), cross_entropy(logits_b, lb), answer_tokens(lb))
    assert weighted.item() == pytest.approx(joint.item(), rel=1e-6)


def test_idk_answers_forget_prompts_with_seeded_refusals(tiny):
    from bench.testing import make_context
    from methods.idk import DEFAULT_ANSWERS, IDK, IDKParams

    model, tokenizer = tiny
    ctx = make_context(model, tokenizer)
    method = IDK(IDKParams())
    items = method.forget_items(ctx)
    assert [x.prompt for x in items] == [x.prompt for x in ctx.forget]
    assert all(x.answer in DEFAULT_ANSWERS for x in items) and method.forget_items(ctx) is items
    assert IDK(IDKParams(retain=False)).uses_retain is False and method.uses_retain is True
    with pytest.raises(ValueError, match="at least one non-empty refusal"):
        IDKParams(answers=[" "]).validate()


def test_retain_ft_loss_is_the_retain_cross_entropy_alone():
    """Retain-only fine-tuning: CE over the retain answer tokens; on a hand-computed batch of two answer tokens with
    probabilities 0.5 and 0.25 the loss is (ln 2 + ln 4) / 2."""
    import math

    import torch

    from bench import cross_entropy
    from methods.retain_ft import retain_ft_loss

    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75], [0.5, 0.5]]]))
    labels = torch.tensor([[-100, 0, 0]])  # position 0 is the prompt; answer tokens at 1 and 2
    ce = cross_entropy(logits, labels)
    assert retain_ft_loss(ce).item() == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)
