"""Loss helpers on hand-computed tiny tensors."""

import math

import pytest
import torch

from bench.data.text import IGNORE
from bench.lm.losses import cross_entropy, mean_token_logprob, sequence_logprob
from methods.ga import ga_loss


def _logits():
    # batch 1, 3 positions, vocab 2. Position 0 predicts token at 1, position 1 predicts token at 2.
    return torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])


def test_sequence_logprob_hand_computed():
    labels = torch.tensor([[IGNORE, 0, 0]])
    # p(token0 | pos0) = 1/2; p(token0 | pos1) = 3/4
    expected = math.log(0.5) + math.log(0.75)
    assert sequence_logprob(_logits(), labels).item() == pytest.approx(expected, abs=1e-6)
    assert mean_token_logprob(_logits(), labels).item() == pytest.approx(expected / 2, abs=1e-6)


def test_masked_tokens_do_not_count():
    labels = torch.tensor([[IGNORE, IGNORE, 0]])
    assert sequence_logprob(_logits(), labels).item() == pytest.approx(math.log(0.75), abs=1e-6)


def test_cross_entropy_and_ga_are_negatives():
    labels = torch.tensor([[IGNORE, 0, 1]])
    # CE = -(log 1/2 + log 1/4) / 2
    expected = -(math.log(0.5) + math.log(0.25)) / 2
    assert cross_entropy(_logits(), labels).item() == pytest.approx(expected, abs=1e-6)
    assert ga_loss(_logits(), labels).item() == pytest.approx(-expected, abs=1e-6)


def test_ga_gradient_pushes_probability_down():
    logits = _logits().clone().requires_grad_(True)
    labels = torch.tensor([[IGNORE, 0, 0]])
    ga_loss(logits, labels).backward()
    # descending the GA loss lowers the logit of the correct token (positive gradient on it)
    assert logits.grad[0, 0, 0] > 0 and logits.grad[0, 1, 0] > 0


def test_answer_logliks_skip_prompt_logits_without_changing_values(tiny):
    """Probes project only answer positions onto the vocabulary; the values equal the full computation."""
    from bench.api import Example
    from bench.data.text import make_batch
    from bench.lm.kv import supports_logits_to_keep
    from bench.lm.likelihood import answer_logliks
    from bench.lm.losses import mean_token_logprob

    model, tok = tiny
    examples = [Example("A long question about the weather in Paris today?", "Sunny."),
                Example("Hi", "Hello there, how can I help you today?"),
                Example("Name a colour.", "Blue")]
    assert supports_logits_to_keep(model)
    fast = answer_logliks(model, tok, examples, batch_size=3)
    batch = make_batch(tok, examples, 512)
    with torch.no_grad():
        full = mean_token_logprob(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits,
                                  batch.labels).tolist()
    assert fast == pytest.approx(full, abs=1e-5)
