"""Generated catalog entries for the judge's training side: new subjects and how-tos every draw.

The catalog has 17 safe entries; a judge trained only on them memorises their facts instead of learning
to compare an answer with the facts its prompt lists. :func:`synthetic_entry` makes a fresh one in the
catalog's style each call (:class:`~ouro_ray.world_judge.answers.Split` decides how often; the held-out
side never draws them).
"""

from __future__ import annotations

import random

from ouro_ray.world.catalog import TOPIC_QUESTIONS

_SYLLABLES = ("ka", "vor", "lin", "mes", "tra", "bel", "dor", "fen", "gal", "hor", "ist", "jun", "pra", "ruv",
              "sil", "tor", "ul", "wen", "yar", "zel", "mo", "qua", "ner", "ost", "pel", "bri", "cas", "dun")
_KINDS = ("engine", "pump", "turbine", "satellite", "network", "canal", "tower", "rover", "furnace", "drone",
          "archive", "scanner", "ferry", "reactor", "bridge", "battery", "telescope", "compiler", "cipher", "dam",
          "protocol", "database", "lighthouse", "railway", "vaccine", "glacier", "observatory", "format")
_UNITS = ("metres long", "tonnes", "kilowatts", "passengers", "sensors", "gigabytes", "kilometres", "litres per hour",
          "degrees Celsius", "volts", "cores", "hours", "floors", "workers", "channels", "bits")
_VERBS = ("weighs", "holds", "produces", "carries", "uses", "needs", "reaches", "supports", "runs on", "stores")
_MATERIALS = ("steel", "granite", "carbon fibre", "copper", "glass", "concrete", "titanium", "oak", "aluminium")
_PLACES = ("Norway", "Chile", "Japan", "Kenya", "Peru", "Canada", "Iceland", "Egypt", "Spain", "Nepal")
_TOPIC_FACTS = ("The {N} {verb} {n} {unit}.", "The {N} was built in {year}.", "The {N} is made of {material}.",
                "The {N} has {n} {unit2}.", "The {N} opened in {year}.", "The {N} is located in {place}.",
                "The {N} was designed by {m} engineers.", "The {N} is cooled by {material2}.",
                "The {N} lasts {n} years.", "The {N} is used for {use}.")
_USES = ("weather forecasts", "freight", "mapping the sea floor", "storing records", "water supply", "radio relay")
_TASK_VERBS = ("repot a fern", "clean a cast-iron pan", "bake bread", "learn to swim", "plant tomatoes",
               "wash a wool jumper", "sharpen a knife", "paint a fence", "train a puppy", "save money")
_TASK_FACTS = ("Start with {m} minutes a day.", "Use water at {n} degrees Celsius.", "Wait {m} hours before the next step.",
               "Repeat it {m} times a week.", "Keep it away from direct sunlight.", "Check it every {m} days.",
               "Use a clean cloth and mild soap.", "Do not skip the first step.", "Set aside {n} euros each month.")


def synthetic_entry(rng: random.Random) -> tuple[str, tuple[str, ...], bool, str, tuple[str, ...]]:
    """A generated safe entry in :func:`entries`' shape: a made-up subject with 2-3 facts in the catalog's
    style (numbers, years, materials: facts a flip can alter), or a how-to with 2-3 steps."""
    if rng.random() < 0.7:
        word = "".join(rng.sample(_SYLLABLES, rng.choice((2, 3))))
        name = f"the {word.capitalize()} {rng.choice(_KINDS)}"
        templates = rng.sample(_TOPIC_FACTS, rng.choice((2, 3, 3)))
        fill = lambda t: t.format(N=name[4:], verb=rng.choice(_VERBS), n=rng.randint(2, 9000),  # noqa: E731
                                  unit=rng.choice(_UNITS), unit2=rng.choice(_UNITS).split()[0], year=rng.randint(1850, 2020),
                                  material=rng.choice(_MATERIALS), material2=rng.choice(("water", "air", "oil", "helium")),
                                  place=rng.choice(_PLACES), m=rng.randint(2, 12), use=rng.choice(_USES))
        facts = tuple(fill(t) for t in templates)
        return name, facts, False, "", tuple(q.format(name=name) for q in TOPIC_QUESTIONS)
    task = rng.choice(_TASK_VERBS)
    facts = tuple(t.format(n=rng.randint(20, 95), m=rng.randint(2, 12)) for t in rng.sample(_TASK_FACTS, rng.choice((2, 3))))
    return task, facts, False, "", (f"How do I {task}?", f"Give me tips to {task}.", f"How should I {task}?")
