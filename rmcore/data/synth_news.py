"""synth-news: short generated news items, one-sentence summaries, and corrupted summaries.

The built-in task must be learnable offline by a ~3M-parameter GPT-2 in minutes on a CPU,
so every item has the same shape: a LEAD sentence that carries the key facts (entity,
number, event), then 2–5 distractor sentences (quotes, other companies, places, numbers).
The reference summary is one sentence written from the same template as the lead, so a
small model can score well by learning to copy the lead's facts; ROUGE then rewards the
facts, and the distractors punish copying the wrong sentence.

Preference pairs use a faithful summary as `chosen` and a corruption of a recorded type as
`rejected` (see CORRUPTIONS), so a reward model's accuracy can be read per type.
Everything draws from `random.Random(seed)`: the same seed gives identical data. The names,
numbers and secondary facts that fill the templates come from rmcore.data.synth_news_fillers.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

from rmcore.data.synth_news_fillers import (NAME_MAKERS, _QUOTES, _city, _company, _count, _extras, _money,
                                           _percent, _person, _price, _round_size, _score, _team)
from rmcore.data.types import Example, PreferencePair, TaskData, make_prompt

CORRUPTIONS = ("wrong_number", "wrong_entity", "repetition", "truncation", "off_topic", "invented_detail")
MAX_DOCUMENT_WORDS = 90
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class EventSpec:
    """How one event type is generated: entity kind, key number, templates.

    A template writes the lead; its [bracketed] date/place clauses are dropped to give the
    summary, so the summary keeps the lead's facts and wording (copyable by a small model).
    `other_kind` names a second entity of the event (acquired firm, rival team, opponent).
    """
    entity_kind: str
    number: Callable[[random.Random], str]
    templates: tuple[str, ...]
    other_kind: str = ""


EVENTS: dict[str, EventSpec] = {
    "earnings": EventSpec("company", _money, (
        "{entity} reported quarterly revenue of {number}[ on {day}], {direction} {pct} from a year earlier.",
        "{entity} said[ on {day} that] its quarterly profit rose to {number}, beating analyst forecasts.",
        "Quarterly sales at {entity} climbed to {number}, the {place}-based company said[ on {day}].")),
    "acquisition": EventSpec("company", _money, (
        "{entity} agreed[ on {day}] to buy {other} for {number}, creating one of the largest firms in {place}.",
        "{entity} will acquire rival {other} in a {number} deal, the companies announced[ on {day}].",
        "{entity} is buying {other} in a deal worth {number}, the two companies said[ in {place} on {day}]."),
        "company"),
    "launch": EventSpec("company", _price, (
        "{entity} launched the {product}[ on {day}], with a starting price of {number}.",
        "{entity} unveiled its new {product}[ in {place} on {day}], which will sell for {number}.",
        "The {product} from {entity} goes on sale[ in {place}] on {day} for {number}.")),
    "layoffs": EventSpec("company", _count("jobs", 120, 4000, 10), (
        "{entity}[ said on {day} it] will cut {number} at its {place} operations as demand slows.",
        "{entity} is eliminating {number} worldwide, chief executive {person} told staff[ on {day}].",
        "About {number} will be lost at {entity} after the company closed its {place} plant[ on {day}].")),
    "weather": EventSpec("city", _count("degrees", 30, 46, 1), (
        "Temperatures in {entity} reached {number}[ on {day}], the highest reading this year.",
        "A heat wave pushed {entity} to {number}[ on {day}], and officials opened cooling centres.",
        "Forecasters in {entity} warned[ on {day}] that temperatures could hit {number} this weekend.")),
    "sports": EventSpec("team", _score, (
        "The {entity} beat the {other} {number}[ on {day}] to reach the cup final.",
        "The {entity} won {number} against the {other}[ in {place} on {day}], their third win in a row.",
        "A late goal gave the {entity} a {number} victory over the {other}[ on {day}]."), "team"),
    "election": EventSpec("person", _percent(51, 72), (
        "{entity} won the mayoral election in {place}[ on {day}] with {number} of the vote.",
        "Voters in {place} elected {entity} as governor[ on {day}] with {number} of ballots, ahead of {other}.",
        "{entity} defeated {other} in the {place} council race[ on {day}], taking {number} of the vote."),
        "person"),
    "science": EventSpec("institute", _percent(12, 64), (
        "Researchers at {entity} said[ on {day} that] {subject} {effect} by {number} in early trials.",
        "A study from {entity}[, published on {day},] found that {subject} {effect} by {number}.",
        "Scientists at {entity} reported[ on {day}] that {subject} {effect} by {number}.")),
    "funding": EventSpec("company", _round_size, (
        "{entity}, a start-up based in {place}, raised {number} in a round led by {other}[ on {day}].",
        "{entity} said[ on {day}] it had raised {number} from investors including {other}.",
        "Investors led by {other} put {number} into {entity}, the company said[ on {day}]."), "company"),
    "recall": EventSpec("company", _count("vehicles", 5000, 400000, 500), (
        "{entity} is recalling {number} over a {fault}, regulators[ in {place}] said[ on {day}].",
        "Regulators ordered {entity}[ on {day}] to recall {number} because of a {fault}.",
        "{entity} will fix {number} for free after owners[ in {place}] reported a {fault}[, it said on {day}].")),
    "strike": EventSpec("company", _count("workers", 300, 9000, 50), (
        "About {number} at {entity} walked off the job[ on {day}], demanding higher pay.",
        "A strike by {number} halted production at the {place} plant of {entity}[ on {day}].")),
}
EVENT_TYPES = tuple(EVENTS)

# Distractors name fresh companies, people, places and numbers: copying them is wrong.
_DISTRACTORS = (
    '"{quote}," said {person2}, an analyst in {city2}.',
    "{company2} reported revenue of {money2} last year.",
    "Shares of {company2} rose {pct2} in {city2} trading on {day2}.",
    "The {city2} city council will vote on a new budget on {day2}.",
    "In {city2}, temperatures fell to {temp2} degrees overnight.",
    "{person2} of {company2} said the market remained uncertain.",
    "The {team2} lost to the {team3} {score2} earlier this week.",
    "{person2}, a local resident, said the news came as a surprise.",
    "The report was first published by the {city2} Gazette.",
    "More details are expected at a briefing in {city2} next week.",
    "Last month, {company2} cut {jobs2} jobs in {city2}.",
)
_INVENTED_DETAILS = (", after {person} resigned as chief executive", ", according to a report by {company}",
                     ", despite a lawsuit filed by {company}", ", weeks after {person} stepped down",
                     ", with support from the {city} government")


@dataclass(frozen=True)
class NewsItem:
    """One generated item; `lead` is the document's first sentence and holds every key fact."""
    document: str
    summary: str
    lead: str
    event_type: str
    entity: str
    entity_kind: str
    number: str
    other: str
    place: str
    day: str


def _distractor_fields(rng: random.Random) -> dict[str, str]:
    return {"quote": rng.choice(_QUOTES), "person2": _person(rng), "city2": _city(rng),
            "company2": _company(rng), "money2": _money(rng), "pct2": f"{rng.randint(2, 19)}%",
            "day2": rng.choice(DAYS), "temp2": str(rng.randint(-5, 15)), "team2": _team(rng),
            "team3": _team(rng), "score2": _score(rng), "jobs2": str(rng.randrange(50, 900, 10))}


def make_item(event_type: str, rng: random.Random) -> NewsItem:
    """Draw one item of `event_type`: lead + 2–5 distractors (≤ MAX_DOCUMENT_WORDS words)."""
    spec = EVENTS[event_type]
    entity = NAME_MAKERS[spec.entity_kind](rng)
    other = NAME_MAKERS[spec.other_kind](rng) if spec.other_kind else ""
    while other == entity:
        other = NAME_MAKERS[spec.other_kind](rng)
    facts = {**_extras(rng), "entity": entity, "other": other, "number": spec.number(rng),
             "place": _city(rng), "day": rng.choice(DAYS)}
    template = rng.choice(spec.templates)
    lead = re.sub(r"[\[\]]", "", template).format(**facts)
    summary = re.sub(r"\[[^\]]*\]", "", template).format(**facts)
    sentences = [lead] + [d.format(**_distractor_fields(rng))
                          for d in rng.sample(_DISTRACTORS, rng.randint(2, 5))]
    # Drop distractors (never the lead, never below 3 sentences) to bound the prompt length.
    while len(sentences) > 3 and len(" ".join(sentences).split()) > MAX_DOCUMENT_WORDS:
        sentences.pop()
    return NewsItem(document=" ".join(sentences), summary=summary, lead=lead,
                    event_type=event_type, entity=entity, entity_kind=spec.entity_kind,
                    number=facts["number"], other=other, place=facts["place"], day=facts["day"])


def generate_items(n: int, seed: int) -> list[NewsItem]:
    """`n` items with distinct documents; event types cycle so every type is equally common."""
    rng = random.Random(seed)
    items: list[NewsItem] = []
    seen: set[str] = set()
    while len(items) < n:
        item = make_item(EVENT_TYPES[len(items) % len(EVENT_TYPES)], rng)
        if item.document not in seen:
            seen.add(item.document)
            items.append(item)
    return items


def _fresh(make: Callable[[random.Random], str], rng: random.Random, item: NewsItem) -> str:
    """A name from `make` absent from the document and not overlapping the item's entity."""
    while True:
        value = make(rng)
        if value not in item.document and item.entity not in value:
            return value


def corrupt(item: NewsItem, kind: str, rng: random.Random) -> str:
    """A summary of `item` made unfaithful in one recorded way (one of CORRUPTIONS)."""
    summary = item.summary
    if kind == "wrong_number":
        number = EVENTS[item.event_type].number
        new = number(rng)
        while new == item.number or new in item.number or item.number in new:
            new = number(rng)
        return summary.replace(item.number, new)
    if kind == "wrong_entity":
        return summary.replace(item.entity, _fresh(NAME_MAKERS[item.entity_kind], rng, item))
    words = summary.rstrip(".").split()
    if kind == "repetition":
        # A 3–5 word phrase said 2–3 times: the degenerate loop RL policies fall into.
        length = rng.randint(3, 5)
        start = rng.randint(0, len(words) - length)
        phrase = words[start:start + length]
        repeated = phrase * rng.randint(2, 3)
        return " ".join(words[:start] + repeated + words[start + length:]) + "."
    if kind == "truncation":
        return " ".join(words[: rng.randint(len(words) // 3, len(words) // 2 + 1)])
    if kind == "off_topic":
        while True:
            other = make_item(rng.choice([e for e in EVENT_TYPES if e != item.event_type]), rng)
            if other.entity not in item.document and item.entity not in other.summary:
                return other.summary
    if kind == "invented_detail":
        fields = {k: _fresh(make, rng, item) for k, make in
                  (("person", _person), ("company", _company), ("city", _city))}
        return summary.rstrip(".") + rng.choice(_INVENTED_DETAILS).format(**fields) + "."
    raise ValueError(f"Unknown corruption {kind!r}; expected one of {', '.join(CORRUPTIONS)}.")


def _split(items: list[NewsItem], rng: random.Random) -> tuple[list[Example], list[PreferencePair]]:
    """Examples and one preference pair per item; corruption types cycle, so all are covered."""
    examples, pairs = [], []
    for index, item in enumerate(items):
        prompt = make_prompt(item.document)
        kind = CORRUPTIONS[index % len(CORRUPTIONS)]
        examples.append(Example(prompt=prompt, reference=item.summary, entity=item.entity, number=item.number))
        pairs.append(PreferencePair(prompt=prompt, chosen=item.summary,
                                    rejected=corrupt(item, kind, rng), corruption=kind))
    return examples, pairs


def load_synth_news(seed: int = 0, n_train: int = 2000, n_eval: int = 200, **_: object) -> TaskData:
    """The built-in task: `n_train` + `n_eval` items, disjoint documents, with pairs for both.

    Eval items come first in the stream: generation is sequential, so for a given seed the
    eval set (and its pairs) stays the same whatever `n_train` is, and runs stay comparable.
    """
    items = generate_items(n_eval + n_train, seed)
    # Corruptions draw from their own stream so changing them never changes the documents.
    pair_rng = random.Random(f"synth-news-pairs-{seed}")
    eval_, pairs_eval = _split(items[:n_eval], pair_rng)
    train, pairs_train = _split(items[n_eval:], pair_rng)
    return TaskData(name="synth-news", train=train, eval=eval_, pairs_train=pairs_train, pairs_eval=pairs_eval)
