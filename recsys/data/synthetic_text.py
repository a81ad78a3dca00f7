"""Vocabulary and English item text for the synthetic generator.

Each topic has its own nouns and adjectives (disjoint from every other built-in
topic and from the neutral pool), so a title or description written from a
topic's words carries that topic, and one written from random pooled words
carries nothing.

>>> vocabs = topic_vocabularies(3)
>>> [v.name for v in vocabs]
['space', 'cooking', 'music']
>>> "galaxy" in vocabs[0].words
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np

# name: (nouns, adjectives); every word belongs to exactly one topic.
BUILTIN_TOPICS: dict[str, tuple[str, str]] = {
    "space": (
        "orbit galaxy rocket planet asteroid comet nebula astronaut satellite telescope moon "
        "meteor cosmos star spacecraft launchpad eclipse supernova quasar constellation gravity",
        "orbital lunar solar stellar cosmic interstellar galactic celestial",
    ),
    "cooking": (
        "recipe spice oven skillet dough broth sauce garlic pastry chef kitchen flavor dessert "
        "noodle marinade stew butter basil saffron oregano bread dumpling",
        "savory crispy roasted spicy tangy baked simmered zesty",
    ),
    "music": (
        "melody guitar rhythm chord symphony piano drummer lyric ballad orchestra violin harmony "
        "tempo concert album choir saxophone chorus verse bassist trumpet opera",
        "melodic acoustic rhythmic harmonic operatic symphonic lyrical musical",
    ),
    "sports": (
        "football stadium goalkeeper referee tournament athlete marathon sprinter league coach "
        "trophy striker basketball tennis racket penalty championship playoff scoreboard jersey "
        "dribble medal",
        "athletic competitive olympic sporting unbeaten defensive offensive victorious",
    ),
    "gardening": (
        "garden seedling compost shovel tulip orchard greenhouse soil mulch hedge trowel "
        "fertilizer rose sapling bulb pruning vegetable lawn weed blossom perennial trellis",
        "blooming leafy fertile potted organic flowering evergreen verdant",
    ),
    "finance": (
        "stock bond dividend portfolio investor market banker loan mortgage interest currency "
        "budget inflation equity auditor ledger pension broker credit tax revenue asset",
        "fiscal monetary financial taxable profitable bullish bearish solvent",
    ),
    "medicine": (
        "doctor nurse clinic vaccine surgeon diagnosis therapy patient hospital symptom "
        "prescription antibiotic cardiology fever bandage pharmacist infection immunity "
        "stethoscope scalpel virus ward",
        "clinical surgical medical chronic viral cardiac immune therapeutic",
    ),
    "travel": (
        "passport luggage airport hotel itinerary tourist voyage suitcase backpacker souvenir "
        "hostel cruise visa ticket destination beach resort sightseeing tour guidebook layover "
        "excursion",
        "exotic scenic touristy overseas remote adventurous nomadic jetlagged",
    ),
    "computing": (
        "software algorithm compiler database server processor keyboard laptop programmer "
        "network cloud kernel bug code browser router encryption chip pixel debugger firmware "
        "terminal",
        "digital binary virtual wireless encrypted programmable computational cyber",
    ),
    "ocean": (
        "coral reef whale dolphin tide wave shark seaweed lighthouse sailor harbor submarine "
        "anchor jellyfish current lagoon shipwreck octopus plankton shore buoy trench",
        "marine coastal tidal nautical aquatic oceanic salty underwater",
    ),
    "history": (
        "empire dynasty pharaoh castle knight monarch revolution archive artifact treaty kingdom "
        "crusade emperor manuscript ruin chronicle senate colony battle relic tomb throne",
        "medieval ancient imperial royal historic feudal colonial victorian",
    ),
    "fashion": (
        "dress jacket fabric designer runway mannequin boutique silk denim scarf handbag tailor "
        "wardrobe sneaker necklace couture hemline blouse velvet lace stiletto cardigan",
        "stylish elegant trendy chic tailored glamorous vintage fashionable",
    ),
    "automotive": (
        "engine car tire garage mechanic gearbox brake sedan highway motor fuel clutch exhaust "
        "bumper dashboard chassis truck piston radiator horsepower convertible windshield",
        "turbocharged electric automotive motorized diesel hybrid roadworthy speedy",
    ),
    "wildlife": (
        "lion tiger elephant giraffe zebra safari predator jungle savanna falcon wolf bear "
        "antelope habitat rhino cheetah gorilla herd den poacher leopard hyena",
        "wild feral endangered nocturnal migratory carnivorous untamed predatory",
    ),
    "weather": (
        "storm rain thunder lightning forecast hurricane tornado snow drizzle fog humidity "
        "blizzard drought monsoon breeze hail rainbow frost temperature barometer cyclone heatwave",
        "stormy rainy humid foggy windy snowy sunny chilly",
    ),
    "art": (
        "painting canvas sculpture gallery brush portrait easel palette artist mural sketch "
        "watercolor exhibition sculptor fresco masterpiece charcoal pigment studio collage "
        "etching museum",
        "artistic abstract impressionist painted surreal sculpted expressive baroque",
    ),
}

NEUTRAL_NOUNS = (
    "story life world day way thing legend time place year guide journey secret lesson idea "
    "moment friend family home book volume edition part chapter season night city country heart mind"
).split()
NEUTRAL_ADJECTIVES = (
    "new great little big old first last complete essential simple hidden unexpected modern "
    "classic ultimate long short true rare quiet"
).split()

# Sentence templates: N/A = topic noun/adjective, X/Y = neutral noun/adjective.
_TEMPLATES = (
    "A {Y} {X} about the {A} {N} and the {N}.",
    "It follows a {N} who discovers a {A} {N}.",
    "Explore the {A} {N} through a {Y} {X}.",
    "This {X} brings together the {N}, the {N} and the {N}.",
    "Featuring a {A} {N} and a {Y} {X}.",
    "The {N} meets the {N} in a {A} {X}.",
    "Perfect for anyone who loves the {N} and every {A} {N}.",
    "A {Y} look at the {N} behind the {A} {N}.",
)
_SLOT = re.compile(r"\{([NAXY])\}")
_TEMPLATE_PARTS = [_SLOT.split(t) for t in _TEMPLATES]  # text, slot, text, slot, ..., text
_MAX_SLOTS = max(len(p) // 2 for p in _TEMPLATE_PARTS)
_MAX_TITLE_WORDS = 6
_MAX_SENTENCES = 3
_TOPIC_WORD_SHARE = 0.8        # share of title words taken from the item's topics
_SECONDARY_WORD_SHARE = 0.3    # share of topic words taken from the secondary topic, when there is one
_AN = re.compile(r"\b([Aa]) ([aeiou])")


@dataclass(frozen=True)
class TopicVocabulary:
    """One topic: its name (used as a genre) and the nouns and adjectives that carry it."""

    name: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]

    @property
    def words(self) -> frozenset[str]:
        return frozenset(self.nouns) | frozenset(self.adjectives)


def max_topics() -> int:
    """How many topics :func:`topic_vocabularies` can make: built-ins, then pairs and triples.

    >>> max_topics()
    696
    """
    n = len(BUILTIN_TOPICS)
    return n + n * (n - 1) // 2 + n * (n - 1) * (n - 2) // 6


def topic_vocabularies(n_topics: int) -> list[TopicVocabulary]:
    """The first ``n_topics`` topics: the built-in ones, then combinations of them.

    A combined topic (e.g. ``space-cooking``) takes an interleaved share of each
    part's words, so its text mixes its parts' vocabularies.

    >>> v = topic_vocabularies(17)[16]
    >>> v.name, v.nouns[0], v.nouns[-1]
    ('space-cooking', 'orbit', 'dumpling')
    """
    if not 1 <= n_topics <= max_topics():
        raise ValueError(f"n_topics must be in [1, {max_topics()}], got {n_topics}")
    base = [
        TopicVocabulary(name, tuple(nouns.split()), tuple(adjs.split()))
        for name, (nouns, adjs) in BUILTIN_TOPICS.items()
    ]
    vocabs = base[:n_topics]
    for size in (2, 3):
        for combo in combinations(base, size):
            if len(vocabs) >= n_topics:
                return vocabs
            vocabs.append(_combine(combo))
    return vocabs


def _combine(parts: tuple[TopicVocabulary, ...]) -> TopicVocabulary:
    k = len(parts)
    nouns = tuple(w for j, p in enumerate(parts) for w in p.nouns[j::k])
    adjectives = tuple(w for j, p in enumerate(parts) for w in p.adjectives[j::k])
    return TopicVocabulary("-".join(p.name for p in parts), nouns, adjectives)


def item_texts(
    vocabs: list[TopicVocabulary],
    primary: np.ndarray,
    secondary: np.ndarray,
    informative: bool,
    rng: np.random.Generator,
) -> tuple[list[str], list[str], list[str]]:
    """Titles, descriptions and genres for items with the given topic indices.

    ``secondary`` is -1 where an item has no second topic. With ``informative``
    False every word is drawn from the pooled vocabulary (all topics and the
    neutral words) and the genres are random topic names: text independent of
    the topic.

    >>> rng = np.random.default_rng(0)
    >>> titles, descs, genres = item_texts(topic_vocabularies(2), np.array([0, 1]),
    ...                                    np.array([1, -1]), True, rng)
    >>> genres
    ['space|cooking', 'cooking']
    >>> 3 <= len(titles[0].split()) <= 6
    True
    """
    n = len(primary)
    title_len = rng.integers(3, _MAX_TITLE_WORDS + 1, n)
    n_sentences = rng.integers(1, _MAX_SENTENCES + 1, n)
    template = rng.integers(0, len(_TEMPLATES), (n, _MAX_SENTENCES))
    n_slots = _MAX_TITLE_WORDS + _MAX_SENTENCES * _MAX_SLOTS
    u_source = rng.random((n, n_slots)).tolist()
    u_word = rng.random((n, n_slots)).tolist()
    random_genres = rng.integers(0, len(vocabs), (n, 2))
    pool = _pooled(vocabs)

    titles, descriptions, genres = [], [], []
    for i in range(n):
        topics = (vocabs[primary[i]], vocabs[secondary[i]] if secondary[i] >= 0 else None)
        src, wrd = u_source[i], u_word[i]
        if informative:
            words = [
                _topic_or_neutral(topics, "W", src[s], wrd[s]) for s in range(title_len[i])
            ]
        else:
            words = [_pick(pool, wrd[s]) for s in range(title_len[i])]
        titles.append(" ".join(w.capitalize() for w in words))

        sentences, slot = [], _MAX_TITLE_WORDS
        for t in template[i, : n_sentences[i]]:
            parts = _TEMPLATE_PARTS[t]
            out = [parts[0]]
            for kind, text in zip(parts[1::2], parts[2::2]):
                if informative:
                    out.append(_topic_or_neutral(topics, kind, src[slot], wrd[slot]))
                else:
                    out.append(_pick(pool, wrd[slot]))
                out.append(text)
                slot += 1
            sentences.append(_AN.sub(r"\1n \2", "".join(out)))
        descriptions.append(" ".join(sentences))

        if informative:
            genres.append("|".join(t.name for t in topics if t is not None))
        else:
            picked = random_genres[i, : 1 + (secondary[i] >= 0)]
            genres.append("|".join(dict.fromkeys(vocabs[g].name for g in picked)))
    return titles, descriptions, genres


def _pooled(vocabs: list[TopicVocabulary]) -> list[str]:
    words = {w for v in vocabs for w in (*v.nouns, *v.adjectives)}
    return sorted(words | set(NEUTRAL_NOUNS) | set(NEUTRAL_ADJECTIVES))


def _pick(words, u: float) -> str:
    return words[int(u * len(words))]


def _topic_or_neutral(topics, kind: str, u_source: float, u_word: float) -> str:
    """A word for one slot: N/A topic noun/adjective, X/Y neutral, W (title) mostly topic."""
    if kind == "X":
        return _pick(NEUTRAL_NOUNS, u_word)
    if kind == "Y":
        return _pick(NEUTRAL_ADJECTIVES, u_word)
    if kind == "W":
        if u_source >= _TOPIC_WORD_SHARE:
            neutral = NEUTRAL_NOUNS if u_source < 0.92 else NEUTRAL_ADJECTIVES
            return _pick(neutral, u_word)
        u_source /= _TOPIC_WORD_SHARE  # below the share, the draw is uniform again on [0, 1)
    primary, secondary = topics
    topic = secondary if secondary is not None and u_source < _SECONDARY_WORD_SHARE else primary
    if kind == "A":
        return _pick(topic.adjectives, u_word)
    if kind == "N":
        return _pick(topic.nouns, u_word)
    words = topic.nouns + topic.adjectives
    return _pick(words, u_word)
