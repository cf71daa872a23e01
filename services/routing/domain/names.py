"""Name normalisation and fuzzy village matching.

Citizens write village names loosely: 村 for 新村, no suffix at all, a homophone character, stray spaces,
full-width characters. We compare the *core* of a name (suffixes stripped) with rapidfuzz's normalised
Indel similarity, and accept the best village only when it is both good enough (MIN_SCORE) and clearly
better than the next village (MIN_MARGIN); anything else is ambiguous and goes to human triage, because
a wrong automatic dispatch costs more than a manual one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz

from .model import Village

# One substituted character in a three-character core scores 66.7, so 60 tolerates a single homophone
# in the shortest common names; the margin keeps 王庄 from picking one of 大王庄 / 小王庄.
MIN_SCORE = 60.0
MIN_MARGIN = 10.0

# Longest first, so 社区居委会 is removed whole rather than leaving 社区.
_VILLAGE_SUFFIXES = tuple(
    sorted(("村民委员会", "居民委员会", "社区居委会", "村委会", "居委会", "社区", "新村", "村"), key=len, reverse=True)
)
_TOWN_SUFFIXES = ("街道办事处", "街道办", "街道", "镇", "乡")

_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), case-folded, without whitespace or punctuation."""
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def _strip_suffixes(name: str, suffixes: tuple[str, ...]) -> str:
    stripped = True
    while stripped:
        stripped = False
        for suffix in suffixes:
            # Never strip a name down to nothing: a village may be called just 新村.
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                stripped = True
                break
    return name


def village_core(text: str) -> str:
    """大王庄新村, 大王庄村, 大王庄村委会, ' 大王庄 ' → 大王庄."""
    return _strip_suffixes(normalise(text), _VILLAGE_SUFFIXES)


def town_core(text: str) -> str:
    """王台镇, 王台 → 王台."""
    return _strip_suffixes(normalise(text), _TOWN_SUFFIXES)


@dataclass(frozen=True, slots=True)
class Candidate:
    village: Village
    score: float


@dataclass(frozen=True, slots=True)
class VillageLookup:
    """The outcome of matching a free-text village name, with enough detail to explain it."""

    outcome: Literal["matched", "ambiguous", "no_match"]
    best: Candidate | None
    runner_up: Candidate | None


class VillageMatcher:
    def __init__(self, villages: Iterable[Village]) -> None:
        self._villages = tuple(sorted(villages, key=lambda v: v.village_id))
        # Exact full spellings (name or alias, normalised but with suffix) win outright: they are how
        # two villages whose cores coincide (幸福村, 幸福社区) are told apart.
        self._exact: dict[str, list[Village]] = {}
        self._cores: list[tuple[str, Village]] = []
        for village in self._villages:
            spellings = {village.name, *village.aliases}
            for key in {normalise(s) for s in spellings} - {""}:
                self._exact.setdefault(key, []).append(village)
            for key in {village_core(s) for s in spellings} - {""}:
                self._cores.append((key, village))
        self._towns: dict[str, str] = {}  # normalised town name, core or id → town_id
        self._town_names: dict[str, str] = {}  # normalised full town name (王台镇) → town_id
        for village in self._villages:
            for key in (normalise(village.town), town_core(village.town), normalise(village.town_id)):
                self._towns.setdefault(key, village.town_id)
            self._town_names.setdefault(normalise(village.town), village.town_id)

    def town_id(self, text: object) -> str | None:
        """The town a free-text town name or id refers to (exact after normalisation), or None."""
        if not isinstance(text, str) or not text.strip():
            return None
        return self._towns.get(normalise(text)) or self._towns.get(town_core(text))

    def lookup(self, text: str, town: str | None = None) -> VillageLookup:
        query = normalise(text)
        town_id = self.town_id(town)
        # 王台镇大王庄新村: a leading town name is a town hint, not part of the village name. Only the
        # full name (with 镇/街道) is stripped: the town seat village is often called like the town (王台村).
        for key, tid in self._town_names.items():
            if len(key) > 1 and query.startswith(key) and len(query) > len(key):
                query, town_id = query[len(key) :], town_id or tid
                break
        if not query:
            return VillageLookup("no_match", None, None)
        if town_id is not None:
            in_town = self._lookup(query, lambda v: v.town_id == town_id)
            if in_town.outcome == "matched":
                return in_town
        # The citizen may name the wrong town; the whole county is the fallback, with the same bar.
        return self._lookup(query, lambda v: True)

    def _lookup(self, query: str, keep: Callable[[Village], bool]) -> VillageLookup:
        exact = [v for v in self._exact.get(query, ()) if keep(v)]
        if len(exact) == 1:
            return VillageLookup("matched", Candidate(exact[0], 100.0), None)
        core = _strip_suffixes(query, _VILLAGE_SUFFIXES)
        best: dict[str, Candidate] = {}
        for key, village in self._cores:
            if not keep(village):
                continue
            score = fuzz.ratio(core, key)
            seen = best.get(village.village_id)
            if seen is None or score > seen.score:
                best[village.village_id] = Candidate(village, score)
        # Ties are broken by village_id only to make the explanation stable; a tie is never a match.
        ranked = sorted(best.values(), key=lambda c: (-c.score, c.village.village_id))
        if not ranked:
            return VillageLookup("no_match", None, None)
        top = ranked[0]
        runner_up = ranked[1] if len(ranked) > 1 else None
        if top.score < MIN_SCORE:
            return VillageLookup("no_match", top, runner_up)
        if runner_up is not None and top.score - runner_up.score < MIN_MARGIN:
            return VillageLookup("ambiguous", top, runner_up)
        return VillageLookup("matched", top, runner_up)


_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
GRID_NUMBER = re.compile(r"第?\s*([0-9]+|[零〇一二两三四五六七八九十]+)\s*号?\s*网格")


def cn_number(text: str) -> int | None:
    """'3', '三', '十二', '二十三', '一二' → int; None if it is not a number we understand."""
    if text.isascii() and text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        if "十" in ones or (tens and tens not in _CN_DIGITS) or (ones and ones not in _CN_DIGITS):
            return None
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    if text and all(c in _CN_DIGITS for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    return None


def grid_number_in(text: str) -> int | None:
    """The grid number written in a free text such as an address: '第3网格', '三号网格', '12网格'."""
    match = GRID_NUMBER.search(unicodedata.normalize("NFKC", text))
    return cn_number(match.group(1)) if match else None
