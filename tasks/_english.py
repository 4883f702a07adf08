"""Clean English text shared by the toxicity (retain data, held-out perplexity) and NER (silver
annotations) tasks.

Sources, each labelled in the results:
  * ``news`` (offline): the 300 Lee news documents shipped in gensim's test data (``lee_background.cor``).
  * ``wiki`` (offline): the 100-odd real Wikipedia articles in gensim's test data (a shortened enwiki
    dump), markup stripped with gensim's ``filter_wiki``; redirects and stubs dropped.
  * ``wikitext`` (online): ``Salesforce/wikitext`` (``wikitext-103-raw-v1``, test split), paragraphs.
"""

from __future__ import annotations

import bz2
import re
from functools import lru_cache
from typing import Literal

from bench import UserError, hub_rows

TextSource = Literal["news", "wiki", "wikitext"]
TEXT_SOURCES = ("news", "wiki", "wikitext")

_WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_SPACES = re.compile(r"\s+")
_MARKUP_LEFTOVER = re.compile(r"\[\[|\]\]|\{\{|\}\}|\|")


def _gensim_path(name: str) -> str:
    try:
        from gensim.test.utils import datapath
    except ImportError:
        raise UserError("offline English text needs gensim; install unlearn-bench[offline] "
                        "or choose text_source: wikitext (online)") from None
    return datapath(name)


@lru_cache(maxsize=4)
def _documents(source: str) -> tuple[tuple[str, ...], str]:
    if source == "news":
        path = _gensim_path("lee_background.cor")
        with open(path, encoding="utf-8") as fh:
            docs = [_SPACES.sub(" ", line).strip() for line in fh if line.strip()]
        return tuple(docs), f"gensim {_gensim_version()} test data lee_background.cor (news, offline)"
    if source == "wiki":
        from gensim.corpora.wikicorpus import extract_pages, filter_wiki

        docs = []
        with bz2.BZ2File(_gensim_path(_WIKI_FILE)) as fh:
            for _title, text, _pid in extract_pages(fh):
                clean = filter_wiki(text)
                if clean.lstrip().upper().startswith("#REDIRECT"):
                    continue
                paragraphs = [_SPACES.sub(" ", p).strip() for p in clean.split("\n\n")]
                docs += [p for p in paragraphs if len(p) > 200 and not _MARKUP_LEFTOVER.search(p)]
        return tuple(docs), f"gensim {_gensim_version()} test data {_WIKI_FILE} (Wikipedia, offline)"
    if source == "wikitext":
        rows = hub_rows("Salesforce/wikitext", "test", "wikitext-103-raw-v1")
        docs = [_SPACES.sub(" ", r["text"]).strip() for r in rows]
        docs = [d for d in docs if len(d) > 200 and not d.startswith("=")]
        return tuple(docs), "hub Salesforce/wikitext wikitext-103-raw-v1/test (online)"
    raise UserError(f"unknown text_source {source!r}; choose one of {', '.join(TEXT_SOURCES)}")


def _gensim_version() -> str:
    import gensim

    return gensim.__version__


DEDUP_WORDS = 40


def english_documents(source: str) -> tuple[list[str], str]:
    """(distinct documents in a fixed order, a label naming the source actually used).

    Duplicates are dropped (first occurrence kept), judged on the first ``DEDUP_WORDS`` words: the Lee
    corpus repeats some stories, verbatim or with another ending, and a split by document index would
    otherwise put the same (truncated) text on both sides of an eval/retain split.
    """
    docs, label = _documents(source)
    first: dict[str, str] = {}
    for doc in docs:
        first.setdefault(" ".join(doc.lower().split()[:DEDUP_WORDS]), doc)
    return list(first.values()), label


def split_words(text: str, prefix_words: int) -> tuple[str, str]:
    """Split a text after ``prefix_words`` words into (prefix, continuation with its leading space)."""
    words = text.split(" ")
    return " ".join(words[:prefix_words]), " " + " ".join(words[prefix_words:])


def truncate_words(text: str, max_words: int) -> str:
    words = text.split(" ")
    return " ".join(words[:max_words])


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“])")


def sentences(text: str) -> list[str]:
    """A light sentence splitter (spaCy's parser is not needed for this clean text)."""
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
