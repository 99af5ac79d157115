"""Entity and number copy accuracy (rmcore.facts) against hand-made summaries and synth-news."""
from __future__ import annotations

import random

import pytest

from rmcore.facts import copy_accuracy, fact_metrics, mentions

DOC_ENTITY, DOC_NUMBER = "Varotek Labs", "$690 million"
RIGHT = "Varotek Labs will acquire rival Tanix in a $690 million deal, the companies announced."
WRONG_ENTITY = "Doria Labs will acquire rival Tanix in a $690 million deal, the companies announced."
WRONG_NUMBER = "Varotek Labs will acquire rival Tanix in a $680 million deal, the companies announced."


def test_right_wrong_entity_and_wrong_number_by_hand() -> None:
    completions = [RIGHT, WRONG_ENTITY, WRONG_NUMBER]
    metrics = fact_metrics(completions, [DOC_ENTITY] * 3, [DOC_NUMBER] * 3)
    assert metrics == {"eval/entity_acc": pytest.approx(2 / 3), "eval/number_acc": pytest.approx(2 / 3)}
    assert [mentions(c, DOC_ENTITY) for c in completions] == [True, False, True]
    assert [mentions(c, DOC_NUMBER) for c in completions] == [True, True, False]


@pytest.mark.parametrize("text, fact, found", [
    ("Varotekia rose.", "Varotek", False),                # a longer word is another name
    ("Shares of Varotek rose.", "Varotek", True),
    ("Varotek.", "Varotek", True),                        # sentence end is a boundary
    ("It will cut 1,120 jobs.", "120 jobs", False),       # part of a larger figure
    ("It will cut 120 jobs.", "120 jobs", True),
    ("a $1.55 billion deal", "$1.5 billion", False),
    ("a $1.5 billion deal", "$1.5 billion", True),
    ("sold for $1,3990.", "$1,399", False),
    ("sold for $1,399.", "$1,399", True),
    ("won 13-1 at home", "3-1", False),
    ("won 3-10 at home", "3-1", False),
    ("won 3-1 at home", "3-1", True),
    ("took 57% of the vote", "57%", True),
    ("took 157% of the vote", "57%", False),
    ("anything", "", False),                              # no recorded fact is never found
])
def test_mentions_needs_the_whole_fact(text: str, fact: str, found: bool) -> None:
    assert mentions(text, fact) is found


def test_examples_without_facts_are_not_scored() -> None:
    assert copy_accuracy(["a", "b"], ["", ""]) is None
    assert copy_accuracy(["Kelara rose", "b"], ["Kelara", ""]) == 1.0  # only recorded facts count
    assert fact_metrics(["a"], [""], [""]) == {}
    with pytest.raises(ValueError, match="2 completions but 1 facts"):
        copy_accuracy(["a", "b"], ["x"])


def test_synth_news_records_facts_its_references_carry_and_corruptions_break() -> None:
    from rmcore.data.synth_news import EVENT_TYPES, corrupt, load_synth_news, make_item

    task = load_synth_news(seed=3, n_train=100, n_eval=40)
    examples = task.train + task.eval
    assert all(e.entity and e.number for e in examples)
    assert all(e.entity in e.prompt and e.number in e.prompt for e in examples)
    refs = [e.reference for e in examples]
    assert copy_accuracy(refs, [e.entity for e in examples]) == 1.0
    assert copy_accuracy(refs, [e.number for e in examples]) == 1.0
    rng = random.Random(0)
    for event in EVENT_TYPES:  # the generator's own corruptions are what the metrics must catch
        item = make_item(event, rng)
        assert not mentions(corrupt(item, "wrong_entity", rng), item.entity)
        assert not mentions(corrupt(item, "wrong_number", rng), item.number)
