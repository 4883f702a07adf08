"""bench.lm.generation: batched decoding with rows that leave the batch equals per-prompt ``model.generate``."""

import copy

import pytest
import torch

from bench.lm.generation import generate, truncate_at_stops
from bench.lm.models import load_model
from bench.perf import naive_generate

PROMPTS = ["Hello there", "What is two plus two?", "a b c d e f g h", "x", "The weather today is"]


@pytest.fixture(scope="module")
def tiny_loaded():
    return load_model("tiny-random-llama", "cpu", "float32")


def _with_eos(loaded, eos_id):
    """A copy of the model whose generation config stops on ``eos_id`` (for generate and for ours alike)."""
    model = copy.deepcopy(loaded.model)
    model.generation_config.eos_token_id = eos_id
    return model


def _batch_sizes(model):
    """Record the batch size of every forward pass."""
    sizes = []
    model.register_forward_hook(lambda module, args, kwargs, out: sizes.append(kwargs["input_ids"].shape[0]),
                                with_kwargs=True)
    return sizes


def test_greedy_batched_equals_per_prompt_generate(tiny_loaded):
    ours = [r[0] for r in generate(tiny_loaded.model, tiny_loaded.tokenizer, PROMPTS, max_new_tokens=12)]
    assert ours == naive_generate(tiny_loaded.model, tiny_loaded.tokenizer, PROMPTS, 12)


def test_rows_that_stop_leave_the_batch_and_outputs_still_equal_generate(tiny_loaded):
    tok = tiny_loaded.tokenizer
    # the token one prompt produces at its third step becomes EOS, so rows stop at different steps
    first = naive_generate(tiny_loaded.model, tok, PROMPTS, 12)
    eos_id = tok(first[2], add_special_tokens=False)["input_ids"][2]
    model = _with_eos(tiny_loaded, eos_id)
    expected = naive_generate(model, tok, PROMPTS, 12)
    lengths = {len(tok(t, add_special_tokens=False)["input_ids"]) for t in expected}
    assert len(lengths) >= 2, "the chosen EOS must stop some rows early and not others"
    sizes = _batch_sizes(model)
    ours = [r[0] for r in generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=len(PROMPTS))]
    assert ours == expected
    assert sizes[0] == len(PROMPTS) and sizes[-1] < len(PROMPTS), sizes
    assert sizes == sorted(sizes, reverse=True)


def test_stop_strings_cut_the_text_and_stop_the_row(tiny_loaded):
    tok = tiny_loaded.tokenizer
    full = naive_generate(tiny_loaded.model, tok, PROMPTS, 12)
    stop = full[0].split()[1]  # a word the first prompt's continuation contains
    model = copy.deepcopy(tiny_loaded.model)
    sizes = _batch_sizes(model)
    ours = [r[0] for r in generate(model, tok, PROMPTS, max_new_tokens=12, stop=[stop])]
    assert ours == [truncate_at_stops(t, [stop]) for t in full]
    assert stop not in ours[0] and len(ours[0]) < len(full[0])
    assert sizes[-1] < len(PROMPTS), "the row that hit the stop string kept being computed"


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(tiny_loaded):
    kwargs = dict(max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, num_return_sequences=3)
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a = generate(tiny_loaded.model, tiny_loaded.tokenizer, PROMPTS, seed=3, **kwargs)
    after = torch.rand(1)
    b = generate(tiny_loaded.model, tiny_loaded.tokenizer, PROMPTS, seed=3, **kwargs)
    c = generate(tiny_loaded.model, tiny_loaded.tokenizer, PROMPTS, seed=4, **kwargs)
    assert a == b and a != c
    assert torch.equal(before, after)
    assert all(len(r) == 3 for r in a) and len({t for r in a for t in r}) > 1


def test_top_p_tiny_keeps_only_the_argmax(tiny_loaded):
    greedy = generate(tiny_loaded.model, tiny_loaded.tokenizer, PROMPTS, max_new_tokens=6)
    sampled = generate(tiny_loaded.model, tiny_loaded.tokenizer, PROMPTS, max_new_tokens=6, do_sample=True,
                       top_p=1e-6, seed=1)
    assert sampled == greedy


def test_prefill_groups_minimise_padded_tokens_plus_overhead():
    from bench.lm.kv import plan_prefill_groups

    lengths = [10, 100, 12, 98, 11]
    # longest first: 100, 98 | 12, 11, 10 -> 2·100 + 3·12 + 2·5 = 246, below one group (500 + 5) or five (231 + 25)
    assert plan_prefill_groups(lengths, 5) == [[1, 3], [2, 4, 0]]
    assert plan_prefill_groups(lengths, 1000) == [[1, 3, 2, 4, 0]]
    assert plan_prefill_groups(lengths, 0) == [[1], [3], [2], [4], [0]]
    # at most 3 rows a group: 100, 98 | 12, 11, 10 -> 2·100 + 3·12 + 2·1000, below 100, 98, 12 | 11, 10 (2322)
    assert plan_prefill_groups(lengths, 1000, max_rows=3) == [[1, 3], [2, 4, 0]]


def test_grouped_prefill_and_shared_prefix_give_the_same_tokens(tiny_loaded):
    tok = tiny_loaded.tokenizer
    prompts = PROMPTS + ["one two three four five six seven eight nine ten eleven twelve thirteen"]
    expected = naive_generate(tiny_loaded.model, tok, prompts, 10)
    for overhead in (0, 3, 1000):  # one group per length, a few groups, one padded batch
        ours = generate(tiny_loaded.model, tok, prompts, max_new_tokens=10, prefill_overhead_tokens=overhead,
                        num_return_sequences=2)
        assert ours == [[e, e] for e in expected], overhead


SHARED = "You are a careful assistant. Answer the question below in one short sentence, and nothing else. "


def test_a_shared_prompt_prefix_is_prefilled_once_and_gives_the_same_tokens(tiny_loaded):
    """Prompts that begin alike (a chat template's system turn, an instruction, a few-shot context) prefill
    their common start once (``prefill_shared``): the greedy tokens are the per-prompt loop's, with one
    padded group or several, with repeats, and sampling is reproducible; the last-position logits match the
    plain prefill's; a batch whose rows share too little falls back to the plain prefill and its layout."""
    from bench.lm.kv import common_prompt_prefix, prefill, prefill_shared

    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    prompts = [SHARED + q for q in ["Who?", "What is the capital of a small country far away?", "Why not",
                                    "When will the long and winding road finally end for all of us?"]]
    expected = naive_generate(model, tok, prompts, 8)
    for overhead in (0, 1000):
        ours = generate(model, tok, prompts, max_new_tokens=8, prefill_overhead_tokens=overhead,
                        num_return_sequences=2)
        assert ours == [[e, e] for e in expected], overhead
    sampled = [generate(model, tok, prompts, max_new_tokens=6, do_sample=True, seed=3) for _ in range(2)]
    assert sampled[0] == sampled[1]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    shared = common_prompt_prefix(enc["input_ids"], enc["attention_mask"])
    assert shared >= len(tok(SHARED, add_special_tokens=False)["input_ids"]) - 1
    with torch.no_grad():
        _, plain = prefill(model, enc["input_ids"], enc["attention_mask"])
        _, reused, mask = prefill_shared(model, enc["input_ids"], enc["attention_mask"], overhead_tokens=0)
    assert torch.allclose(plain, reused, atol=1e-4)
    assert mask.sum(1).tolist() == enc["attention_mask"].sum(1).tolist() and bool(mask[:, :shared].all())
    with torch.no_grad():  # sharing 2 tokens across 2 rows saves less than one more forward pass costs
        _, _, kept = prefill_shared(model, enc["input_ids"][:2], enc["attention_mask"][:2], overhead_tokens=10_000)
    assert torch.equal(kept, enc["attention_mask"][:2])


def test_generation_through_a_peft_adapter_uses_the_current_cache_keyword(tiny_loaded):
    """A LoRA-wrapped model (ICU generates mid-training) decodes without transformers' deprecation warning:
    the wrapped model's forward signature picks the keyword, not PEFT's ``forward(*args, **kwargs)``."""
    import warnings

    from bench import TrainParams, with_adapter

    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    peft_model = with_adapter(copy.deepcopy(model), TrainParams(), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        out = generate(peft_model, tokenizer, ["Hello there"], max_new_tokens=4)
    assert len(out) == 1


def test_the_hf_static_cache_backend_gives_the_native_greedy_tokens_and_seeded_samples(tiny_loaded):
    """The CUDA backend (``model.generate`` with a static cache) checked on CPU: greedy text equal to the
    native loop's, with rows that stop early and stop strings; sampling reproducible for a seed, leaving the
    global RNG alone; a wrong backend name is refused."""
    model, tok = _with_eos(tiny_loaded, 330), tiny_loaded.tokenizer
    kwargs = dict(max_new_tokens=16, batch_size=3, stop=["\n\n"])
    native = generate(model, tok, PROMPTS, backend="native", **kwargs)
    assert generate(model, tok, PROMPTS, backend="hf", **kwargs) == native
    state = torch.get_rng_state()
    sampled = dict(max_new_tokens=8, do_sample=True, temperature=0.9, top_p=0.9, num_return_sequences=2, seed=3)
    first = generate(model, tok, PROMPTS, backend="hf", **sampled)
    assert generate(model, tok, PROMPTS, backend="hf", **sampled) == first
    assert torch.equal(torch.get_rng_state(), state) and all(len(r) == 2 for r in first)
    with pytest.raises(ValueError, match="one of auto, native, hf"):
        generate(model, tok, PROMPTS, backend="vllm", **kwargs)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_choose_with_a_shared_prompt_equals_one_sequence_per_option(tiny_loaded, batch_size):
    """Multiple choice that runs each prompt once into a KV cache the options continue from gives the
    per-option sums (the lm-eval way) up to float rounding, for options of unequal token lengths, items with
    different option counts, a one-option item and an item whose options differ in their prompt truncation."""
    from bench.lm.likelihood import choose

    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    prompts = ["Question: which colour is the sky?\nAnswer:", "x", "The weather today is", "a b c d e f g h i j"]
    options = [[" blue", " a deep green colour", " red"], [" y", " zz"], [" sunny and warm, with a breeze"],
               [" k", " l m n o p q r s t u v w x y z"]]
    plain = choose(model, tok, prompts, options, batch_size=batch_size, share_prompt=False)
    shared = choose(model, tok, prompts, options, batch_size=batch_size, share_prompt=True)
    assert [len(x) for x in shared] == [len(x) for x in options]
    for a, b in zip(plain, shared):
        assert b == pytest.approx(a, abs=1e-4)
    # Truncation that cuts the prompts differently per option: those options are scored alone, same values.
    cut = choose(model, tok, prompts, options, batch_size=batch_size, max_length=12)
    cut_plain = choose(model, tok, prompts, options, batch_size=batch_size, max_length=12, share_prompt=False)
    for a, b in zip(cut_plain, cut):
        assert b == pytest.approx(a, abs=1e-4)


def _hf_nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """transformers' TopPLogitsWarper applied to log-probabilities, renormalised: the reference distribution."""
    from transformers import TopPLogitsWarper

    return torch.softmax(TopPLogitsWarper(top_p)(None, probs.log()), -1)


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.95, 1e-6])
def test_top_p_nucleus_is_transformers_warper_set(top_p):
    from bench.lm.generation import nucleus

    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(16, 500, generator=gen) * 2, -1)
    kept, ids = nucleus(probs, top_p)
    ours = torch.zeros_like(probs).scatter(-1, ids, kept)
    assert torch.equal(ours > 0, _hf_nucleus(probs, top_p) > 0)


@pytest.mark.parametrize("max_rounds", [32, 0])  # 0: every row through the exact sorted fallback
def test_top_p_sampling_draws_the_warpers_distribution(max_rounds):
    """Rejection sampling from the nucleus: draws never leave transformers' kept set and their frequencies
    match its renormalised probabilities (20 000 draws per row: sd of a frequency <= 0.0036)."""
    from bench.lm.generation import sample_top_p

    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -1.0, -3.0], [4.0, 0.0, 0.0, -1.0, -1.0, -2.0, -9.0]])
    probs = torch.softmax(logits, -1)
    reference = _hf_nucleus(probs, 0.8)
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([sample_top_p(probs, 0.8, gen, max_rounds=max_rounds) for _ in range(20000)])
    for row in range(2):
        freq = torch.bincount(draws[:, row], minlength=7).double() / len(draws)
        assert set(draws[:, row].tolist()) <= set(torch.nonzero(reference[row]).flatten().tolist())
        assert (freq - reference[row].double()).abs().max() < 0.015, (freq, reference[row])


def test_model_embeddings_are_mean_pooled_last_hidden_states(tiny_loaded):
    """Projecting one position onto the vocabulary (``logits_to_keep``) leaves the hidden states alone: the
    embeddings equal the mean over each text's tokens of the full forward's last hidden state."""
    from bench.lm.embeddings import model_embeddings

    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    texts = ["Hello there, how are you today", "One two"]
    got = model_embeddings(model, tok, texts, batch_size=2)
    for text, row in zip(texts, got):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states[-1][0]
        assert torch.allclose(row, hidden.mean(0), atol=1e-5)


def test_shared_prefix_groups_hand_checked():
    """Rows group by their common start in prompt tokens, stopped one token before the shortest prompt of the
    group (the answer and the position predicting its first token stay outside); short or lone starts stay out."""
    from bench.data.text import IGNORE, Encoded
    from bench.lm.kv import shared_prefix_groups

    def row(prompt, answer):
        return Encoded(prompt + answer, [IGNORE] * len(prompt) + answer)

    rows = [row([1, 2, 3, 4, 5, 6], [9]),  # shares 1-4 with rows 2 and 3
            row([7, 7, 7, 7], [9]),  # alone
            row([1, 2, 3, 4, 8], [9, 9]),  # prompt of 5: at most 4 shared
            row([1, 2, 3, 4, 5, 6, 1], [9]),  # shares 1-6 with row 0, but row 2 caps the group at 4
            row([1, 2, 3], [4, 5, 6, 7])]  # same tokens as row 0's start, but its answer begins at 4: at most 2
    assert shared_prefix_groups(rows, 3) == [(4, [3, 0, 2])]  # in the lexicographic order of their tokens
    assert shared_prefix_groups(rows, 5) == [(5, [3, 0])]  # row 2 drops out; row 0's prompt caps at 5
    assert shared_prefix_groups(rows, 6) == []
    assert shared_prefix_groups(rows, 2) == [(2, [3, 4, 0, 2])]
    assert shared_prefix_groups(rows, 0) == []


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_scoring_with_shared_prefixes_equals_one_sequence_per_row(tiny_loaded, batch_size, monkeypatch):
    """Rows that share in-context examples (a prompt attack's variant) run them once into a KV cache: the
    same log-likelihoods as scoring every row whole, for chat and raw rows, answers of unequal lengths, rows
    in no group, and groups split over batches; and fewer tokens go through the model."""
    import functools

    from bench.api import Example
    from bench.lm import likelihood

    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    shots = "Q: what is the vault code?\nA: 4711\n\nQ: who guards it?\nA: Captain Mirelle\n\n" * 2
    examples = [Example(shots + f"Q: item {i} asks {'more ' * i}?", f"answer {i}" + " and so on" * i, chat=chat)
                for i in range(5) for chat in (True, False)] + [Example("alone", "x"), Example("b", "y z", chat=False)]
    tokens = []
    model.register_forward_hook(lambda module, args, kwargs, out: tokens.append(kwargs["input_ids"].numel()),
                                with_kwargs=True)
    shared = likelihood.answer_logliks(model, tok, examples, batch_size=batch_size)
    shared_tokens, tokens[:] = sum(tokens), []
    monkeypatch.setattr(likelihood, "_encoded_logliks",
                        functools.partial(likelihood._encoded_logliks, min_shared_prefix=0))
    plain = likelihood.answer_logliks(model, tok, examples, batch_size=batch_size)
    assert shared == pytest.approx(plain, abs=1e-5)
    assert shared_tokens < sum(tokens) / 2
