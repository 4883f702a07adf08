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
