"""The base-knowledge scorer (tasks/facts/measure.py) on scripted replies: no model is loaded."""

from tasks.facts import data
from tasks.facts.measure import KINDS, distractors, mentions, normalise, score_reply


def _capitals():
    kind = KINDS["capitals"]
    facts = kind.facts()
    return kind, facts, kind.candidates(facts)


def test_refusal_scores_zero():
    _, _, cands = _capitals()
    for reply in ["I don't know.", "I'm sorry, I can't help with that.", "", "The capital of France is"]:
        assert score_reply(reply, "Paris", cands, "France") == 0


def test_correct_answer_inside_a_sentence_scores_one():
    _, _, cands = _capitals()
    assert score_reply("The capital of France is Paris.", "Paris", cands, "France") == 1
    assert score_reply("paris", "Paris", cands, "France") == 1
    # accents, apostrophes, "St." and a country name inside the capital's name
    assert score_reply("It is Bogota, of course.", "Bogotá", cands, "Colombia") == 1
    assert score_reply("St George's", "St. George's", cands, "Grenada") == 1
    assert score_reply("The capital of Guatemala is Guatemala City.", "Guatemala City", cands, "Guatemala") == 1
    assert score_reply("Kiev", "Kyiv", cands, "Ukraine") == 1


def test_two_candidates_score_zero():
    _, _, cands = _capitals()
    assert score_reply("Paris or Berlin", "Paris", cands, "France") == 0
    assert score_reply("The capital of France is Berlin.", "Paris", cands, "France") == 0


def test_echoing_the_question_scores_zero():
    _, _, cands = _capitals()
    assert score_reply("Guatemala", "Guatemala City", cands, "Guatemala") == 0
    kind = KINDS["elements"]
    cands = kind.candidates(kind.facts())
    assert score_reply("The chemical element with the symbol Li is Li.", "Lithium", cands, "Li") == 0


def test_only_the_first_line_is_read():
    _, _, cands = _capitals()
    assert score_reply("Paris\nOther big cities: Berlin, Rome.", "Paris", cands, "France") == 1
    assert score_reply("\n\nParis", "Paris", cands, "France") == 1


def test_longest_phrase_first():
    kind = KINDS["numbers"]
    cands = kind.candidates(kind.facts())
    assert score_reply("forty-seven", "forty-seven", cands, "47") == 1
    assert score_reply("Forty seven (47).", "forty-seven", cands, "47") == 1
    assert score_reply("one hundred and twenty-one", "one hundred twenty-one", cands, "121") == 1
    assert score_reply("seven", "forty-seven", cands, "47") == 0
    # "one hundred twenty" is 120, not "twenty" (a 20 is not in the list) nor the gold "one hundred twenty-one"
    assert mentions("one hundred twenty", cands) == ["one hundred twenty"]
    assert score_reply("one hundred twenty", "one hundred twenty-one", cands, "121") == 0


def test_continents_and_past_tenses():
    kind = KINDS["continents"]
    cands = kind.candidates(kind.facts())
    assert score_reply("Kenya is a country in East Africa.", "Africa", cands, "Kenya") == 1
    assert score_reply("Africa and Asia", "Africa", cands, "Egypt") == 0
    assert score_reply("Fiji is in Australia.", "Oceania", cands, "Fiji") == 0
    kind = KINDS["past_tenses"]
    cands = kind.candidates(kind.facts())
    assert score_reply('The simple past tense of "go" is "went".', "went", cands, "go") == 1
    assert score_reply('The simple past tense of "go" is "goed".', "went", cands, "go") == 0


def test_normalise():
    assert normalise("  Port-au-Prince!") == "port au prince"
    assert normalise("N’Djamena") == "ndjamena"
    assert normalise("St. John's") == "saint johns"


def test_lists_are_large_unique_and_not_echoable():
    for name, kind in KINDS.items():
        facts = kind.facts()
        assert len(facts) >= 100, name
        assert len({f.subject for f in facts}) == len(facts), name
        if name != "continents":
            assert len({f.answer for f in facts}) == len(facts), name
        for f in facts:  # an accepted answer inside the question would score an echo as right
            for alias in f.answers:
                assert f" {normalise(alias)} " not in f" {normalise(f.subject)} ", (name, f)


def test_distractors_fixed_distinct_and_of_the_kind():
    for kind in KINDS.values():
        facts = kind.facts()
        for i in (0, len(facts) - 1):
            d = distractors(kind, facts, i)
            assert d == distractors(kind, facts, i) and len(set(d)) == 3 and facts[i].answer not in d
    assert set(distractors(KINDS["continents"], data.continents(), 0)) < set(
        ["Asia", "Europe", "North America", "South America", "Oceania"])


def test_number_words():
    assert data.number_words(47) == ("forty-seven",)
    assert data.number_words(120) == ("one hundred twenty", "one hundred and twenty")
    assert data.number_words(100) == ("one hundred",)


def test_spellings_of_one_answer_share_a_key():
    kind = KINDS["numbers"]
    cands = kind.candidates(kind.facts())
    assert mentions("one hundred and forty-one", cands) == ["one hundred forty-one"]
    assert mentions("one hundred and twenty", cands) == ["one hundred twenty"]
