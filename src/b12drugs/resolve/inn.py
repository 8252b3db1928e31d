"""International spellings of INN names, with the false-friend guard.

Prescriptions outside the English-speaking world write the same INN in their own
language: Latin ``doxorubicinum``, Spanish/Portuguese/Italian ``ciclofosfamida``,
``fenitoína``, ``metotrexato``, ``fenobarbitale``, French ``doxorubicine``, German and
Nordic ``Cyclophosphamid``, ``cyklofosfamid``, ``Zytarabin``, ``ácido fólico`` for folic
acid.  :func:`inn_key` reduces a name to a spelling-neutral key, the same way for the
knowledge base's names and for the query:

* accents folded (``í`` -> ``i``, ``ß`` -> ``ss``, ``æ`` -> ``ae``, ``ø`` -> ``o``);
* salt words of other languages dropped (``natricum``, ``clorhidrato``, ``sódica``,
  ``chlorhydrate``, ``Hydrochlorid`` ...);
* Latin and Romance endings: ``-um``/``-us`` (``doxorubicinum``), final ``-a``/``-o``/
  ``-e`` (``ciclofosfamida``, ``metotrexato``, ``doxorubicine``, English ``-ine``/``-ide``
  alike), French ``-ique`` and Romance ``-ico`` as English ``-ic``;
* letters: ``ph`` -> ``f``, ``th`` -> ``t``, ``rh`` -> ``r``, ``ch`` -> ``c`` (``clorambucilo``),
  ``y`` -> ``i``, ``k`` -> ``c``, ``z`` -> ``c``, ``ae``/``oe`` -> ``e``, ``mc`` -> ``nc``
  (``gencitabina``), doubled letters single (``doxorrubicina``), a leading ``es`` before a
  consonant dropped (``estreptomicina``);
* words sorted, and ``acido``/``acide``/``acidum`` read as ``acid`` (``ácido fólico`` and
  ``folic acid`` meet).

The guard (:class:`InnIndex`): a key is used only when every knowledge-base name and
synonym with that key names the same ingredient, and it is dropped when it is also the
key of a name, synonym or brand of a drug of another class or of a known drug without a
B12 class (``other_drugs.csv``).  So a variant is accepted only when it lands exactly on
one knowledge-base name or synonym, and no spelling of a known non-B12 drug can reach a
B12 class.  Keys shorter than :data:`MIN_KEY` are not used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

#: Shortest key used: short words collide too easily across languages.
MIN_KEY = 6

#: Salt and hydrate words of other languages (INN Latin, es, pt, it, fr, de, nordic).
def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


FOREIGN_SALTS = _wordset(
    """
    natricum natrium natrii sodico sodica sodique sodio sodiumsalz dinatrium
    kalium kalii potasico potassico potassique potassio calcicum calcii calcico
    magnesii magnesico hydrochloridum hydrochloricum chlorhydrate clorhidrato cloridrato
    hidrocloruro hydrochlorid hidroclorido dihydrochloridum
    mesilas mesilato mesylat maleas maleato sulfas sulfato solfato sulfat phosphas fosfato
    phosphat acetas acetato acetat citras citrato citrat tartras tartrato fumaras fumarato
    succinas succinato besilas besilato bromhidrato hydrobromidum monohydricum monohidrato
    monoidrato dihydricum dihidrato diidrato trihydricum trihidrato anhydricum anhidro
    hemihidrato sesquihidrato lactas lactato gluconas gluconato
    """
)
_ACID = frozenset({"acido", "acide", "acidum", "acid", "saure", "syra", "syre"})
_LETTERS = (
    ("ph", "f"), ("th", "t"), ("rh", "r"), ("k", "c"), ("ch", "c"), ("ae", "e"), ("oe", "e"),
    ("y", "i"), ("z", "c"), ("qu", "c"), ("mc", "nc"),
)
_DOUBLE = re.compile(r"(.)\1+")
_NON_LETTER = re.compile(r"[^a-z]+")


def fold_accents(text: str) -> str:
    """Lower case without accents (``Fenitoína`` -> ``fenitoina``, ``ß`` -> ``ss``)."""
    s = text[:2000].casefold().replace("ß", "ss").replace("æ", "ae").replace("ø", "o")
    s = s.replace("œ", "oe").replace("ð", "d").replace("þ", "th").replace("ł", "l")
    s = unicodedata.normalize("NFKD", s)
    return "".join(ch for ch in s if not unicodedata.combining(ch))


def _word(w: str) -> str:
    if len(w) > 6 and w.endswith(("um", "us")):
        w = w[:-2]
    if w.endswith("ique"):
        w = w[:-4] + "ic"
    elif w.endswith("ico") or w.endswith("ica"):
        w = w[:-1]
    if len(w) > 4 and w[-1] in "aoe":
        w = w[:-1]
    if len(w) > 6 and w.startswith("es") and w[2] not in "aeiouy":
        w = w[1:]  # es/pt: estreptomicina = streptomycin (English "estradiol" alike)
    for a, b in _LETTERS:
        w = w.replace(a, b)
    w = _DOUBLE.sub(r"\1", w)
    if len(w) > 4 and w[-1] in "aoe":  # again after letter changes ("-iae")
        w = w[:-1]
    return w


def inn_key(name: str) -> str:
    """The spelling-neutral key of a drug name ("" when nothing is left).

    ``inn_key("Ciclofosfamida") == inn_key("cyclophosphamide")``;
    ``inn_key("ácido fólico") == inn_key("folic acid")``.
    """
    words = [w for w in _NON_LETTER.split(fold_accents(name)) if w]
    out: list[str] = []
    for w in words:
        if w in FOREIGN_SALTS:
            continue
        if w in _ACID:
            out.append("acid")
            continue
        if w.endswith(("saure", "syra", "syre")) and len(w) > 8:  # Ascorbinsaure
            out.append("acid")
            w = w[: -5 if w.endswith("saure") else -4]
            w = w[:-2] + "ic" if w.endswith("in") else w
        k = _word(w)
        if k:
            out.append(k)
    return " ".join(sorted(out))


class InnIndex:
    """Spelling-neutral keys of the knowledge base's names and synonyms, guarded.

    :param names: ``lookup key -> ingredient names`` for every name and synonym the
        query may land on (vocabulary keys of method ``exact_name``/``synonym``).
    :param guards: every key (names, synonyms, brands) with the ingredients it names,
        used only to refuse keys shared by ingredients of different classes.
    :param class_of: ``ingredient -> frozenset of class ids`` (empty: no B12 class).
    """

    def __init__(
        self,
        names: Mapping[str, Iterable[str]],
        guards: Mapping[str, Iterable[str]],
        class_of: Mapping[str, frozenset[str]],
    ):
        owners: dict[str, set[str]] = {}
        targets: dict[str, set[str]] = {}
        for key, ingredients in guards.items():
            k = inn_key(key)
            if len(k.replace(" ", "")) >= MIN_KEY:
                owners.setdefault(k, set()).update(ingredients)
        for key, ingredients in names.items():
            k = inn_key(key)
            if len(k.replace(" ", "")) >= MIN_KEY:
                targets.setdefault(k, set()).update(ingredients)
        self.keys: dict[str, str] = {}
        self.refused: dict[str, tuple[str, ...]] = {}
        for k, ings in targets.items():
            everyone = ings | owners.get(k, set())
            if len(ings) == 1 and len({class_of.get(i, frozenset()) for i in everyone}) == 1:
                self.keys[k] = next(iter(ings))
            else:
                self.refused[k] = tuple(sorted(everyone))

    def get(self, text: str) -> str | None:
        """The ingredient whose name or synonym ``text`` spells, if unambiguous."""
        k = inn_key(text)
        return self.keys.get(k) if len(k.replace(" ", "")) >= MIN_KEY else None


__all__ = ["FOREIGN_SALTS", "MIN_KEY", "InnIndex", "fold_accents", "inn_key"]
