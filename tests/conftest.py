import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("UNLEARN_BENCH_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the in-memory tiny random Llama; copy the model before mutating it."""
    from bench.testing import tiny_model

    return tiny_model()


@pytest.fixture(scope="session")
def tiny_task_run(tmp_path_factory):
    """One run of the three built-in tasks on the tiny random model (base evaluations + a no-op GA cell
    each, small sizes): the results directory."""
    from bench.engine.config import load_config
    from bench.engine.runner import run_matrix
    from bench.plugins import registry

    out = tmp_path_factory.mktemp("tiny-task-run")
    config = load_config(None, {
        "model": "tiny-random-llama", "methods": ["ga"], "tasks": ["toxicity", "ner", "coding"], "seeds": [0],
        "out": str(out), "progress": False,
        "task_params": {"toxicity": {"n_eval": 7, "n_forget": 4, "n_retain": 4, "n_text_eval": 6, "samples": 2,
                                     "max_new_tokens": 6, "n_toxic_probe": 6},
                        "ner": {"n_eval_per_type": 6, "n_forget": 4, "n_retain": 4, "max_new_tokens": 6,
                                "n_typing_per_type": 6},
                        "coding": {"n_forget": 2, "n_stdlib_forget": 1, "n_eval": 6, "n_gsm_eval": 6, "n_retain": 2,
                                   "n_arithmetic": 6, "max_new_tokens_code": 8, "max_new_tokens_math": 8,
                                   "n_functions": 6, "n_word_problems": 6, "max_new_tokens_function": 8,
                                   "max_new_tokens_word": 8}},
        "method_params": {"ga": {"steps": 0}}})
    run_matrix(config, registry())
    return out
