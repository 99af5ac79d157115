"""What fills synth-news templates: entity names, key numbers and secondary facts.

Split out of rmcore.data.synth_news so the generator there reads as templates plus
assembly. Every maker draws from the `random.Random` it is handed, in a fixed order:
changing a tuple or a maker here changes every generated item for every seed.
"""
from __future__ import annotations

import random
from typing import Callable

# --- generated names: many distinct entities so the model must copy, not memorise
_SYLLABLES = ("Var", "Kel", "Dor", "Mir", "Tan", "Zel", "Bro", "Quin", "Lum", "Nex",
              "Sol", "Pra", "Hal", "Cor", "Ven", "Tor", "Ast", "Bel", "Oru", "Fen")
_COMPANY_ENDS = ("otek", "ia", "ex", "ara", "on", "ix", "tron", "ica", "ium", "ora", "is", "ent")
_COMPANY_KINDS = ("", "", " Labs", " Group", " Systems", " Motors", " Foods", " Energy")
_FIRST_NAMES = ("Ana", "Ben", "Clara", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas",
                "Kemi", "Leo", "Maya", "Nils", "Omar", "Priya", "Rosa", "Sami", "Tara", "Viktor")
_SURNAME_ENDS = ("ley", "ton", "ford", "son", "ari", "elli", "berg", "ova", "ez", "ard")
_CITY_STARTS = ("Ash", "Bel", "Cor", "Dal", "Elm", "Fen", "Glen", "Har", "Ivy", "Kings",
                "Lake", "Mar", "North", "Oak", "Pine", "Red", "Stone", "Wil", "West", "Brook")
_CITY_ENDS = ("ton", "ville", "port", "field", "haven", "ford", "dale", "bury", "mouth", "wick")
_MASCOTS = ("Falcons", "Rovers", "Tigers", "Comets", "Wolves", "Pirates", "Bears", "Hawks", "Giants", "Lions")
_INSTITUTE_KINDS = ("Institute", "University", "Medical Centre", "Research Lab")
_DEVICES = ("phone", "laptop", "headset", "smartwatch", "e-bike", "tablet", "drone")
_MODELS = ("2", "3", "Pro", "Air", "Max", "Mini", "X")
_FAULTS = ("brake fault", "battery defect", "software glitch", "faulty airbag", "fuel leak")
_FINDINGS = (("a new drug", "cut migraine attacks"), ("a gene therapy", "improved night vision"),
             ("a battery coating", "reduced battery wear"), ("a hardy wheat variety", "raised crop yields"),
             ("a cheap air filter", "cut indoor pollution"), ("a new vaccine", "lowered infection rates"))
_QUOTES = ("We are watching this closely", "It is too early to draw conclusions",
           "This was expected for some time", "The next few months will be important",
           "We have a lot of work ahead")


def _company(rng: random.Random) -> str:
    return rng.choice(_SYLLABLES) + rng.choice(_COMPANY_ENDS) + rng.choice(_COMPANY_KINDS)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_SYLLABLES)}{rng.choice(_SURNAME_ENDS)}"


def _city(rng: random.Random) -> str:
    return rng.choice(_CITY_STARTS) + rng.choice(_CITY_ENDS)


def _team(rng: random.Random) -> str:
    return f"{_city(rng)} {rng.choice(_MASCOTS)}"


def _institute(rng: random.Random) -> str:
    return f"{_city(rng)} {rng.choice(_INSTITUTE_KINDS)}"


NAME_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "company": _company, "person": _person, "city": _city, "team": _team, "institute": _institute,
}


# --- numbers with units; each event type has one key number
def _money(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"${rng.uniform(1.1, 9.9):.1f} billion"
    return f"${rng.randrange(120, 990, 10)} million"


def _round_size(rng: random.Random) -> str:
    return f"${rng.randint(5, 250)} million"


def _price(rng: random.Random) -> str:
    return f"${rng.randrange(149, 1999, 50):,}"


def _count(unit: str, low: int, high: int, step: int) -> Callable[[random.Random], str]:
    return lambda rng: f"{rng.randrange(low, high, step):,} {unit}"


def _percent(low: int, high: int) -> Callable[[random.Random], str]:
    return lambda rng: f"{rng.randint(low, high)}%"


def _score(rng: random.Random) -> str:
    winner = rng.randint(1, 6)
    return f"{winner}-{rng.randint(0, winner - 1)}"


def _extras(rng: random.Random) -> dict[str, str]:
    """Secondary facts some templates use (products, faults, findings)."""
    subject, effect = rng.choice(_FINDINGS)
    return {"product": f"{rng.choice(_SYLLABLES)}{rng.choice(_COMPANY_ENDS)} {rng.choice(_MODELS)} "
                       f"{rng.choice(_DEVICES)}",
            "fault": rng.choice(_FAULTS), "subject": subject, "effect": effect,
            "person": _person(rng), "pct": f"{rng.randint(3, 29)}%",
            "direction": rng.choice(("up", "down"))}
