"""Method losses on tiny tensors against hand-computed numbers."""

import json
import math

import pytest
import torch

from bench.data.text import IGNORE
from methods.flat import flat_loss, mean_token_prob
from methods.graddiff import graddiff_loss
from methods.npo import npo_loss

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
    # the official padded variant divides by the padded length (2 positions after the shift)
    assert mean_token_prob(_logits(), tail_only, "padded").item() == pytest.approx(0.75 / 2)


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


@pytest.mark.parametrize("steps, checks", [(2, 0), (6, 1)])
def test_icu_checks_forgetting_only_before_another_epoch(tmp_path, monkeypatch, steps, checks):
    """The refinement check selects the next epoch's samples: with the step budget spent inside the first
    epoch (2 steps of 3) it never runs; with a budget reaching into the second epoch it runs once, between
    them, and not after the last."""
    from test_runner import _registry

    from bench.engine.config import load_config
    from bench.engine.runner import run_matrix
    from methods.icu import ICU

    calls = []
    real = ICU.still_known
    monkeypatch.setattr(ICU, "still_known", lambda self, *a: calls.append(1) or real(self, *a))
    out = tmp_path / "run"
    config = load_config(None, {"model": "tiny-random-llama", "methods": ["icu"], "tasks": ["toy"], "seeds": [0],
                                "out": str(out), "progress": False,
                                "method_params": {"icu": {"steps": steps, "batch_size": 2, "max_epochs": 2,
                                                          "max_new_tokens": 4}}})
    assert list(run_matrix(config, _registry()).ran.values()) == ["done"]
    (result,) = out.glob("cells/*/result.json")
    extras = json.loads(result.read_text())["extras"]
    assert len(calls) == checks == extras["icu_checks"]
