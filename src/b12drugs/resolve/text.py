"""Normalising pharmacy free text into ingredient-name candidates.

Dispensing systems send drug names as people and formularies write them:
``"METFORMIN HCL 500MG TAB"``, ``"glipizide / metformin 5/500"``,
``"24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"``,
``"Colchicine 0.6 MG [Colcrys]"``.  The functions here turn such a string into the
pieces a knowledge-base lookup can match exactly: strengths, units, dose forms, routes,
release and package words are dropped; salts and esters are removed in a second,
"base" form (the form with the salt is kept too, because for some drugs the salt *is*
the drug: potassium chloride, magnesium sulfate); combination products are split into
their components; bracketed brand hints are kept apart; a few unambiguous prescription
abbreviations are expanded.

Everything here is a pure function of its input, runs once per *distinct* drug string
(the resolver caches), bounds its input to :data:`MAX_INPUT` characters and never
raises on any ``str``.  The same pipeline normalises the knowledge base's names,
synonyms and brands, so both sides of a lookup are spelled the same way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

#: Longest input considered; longer text is cut (the model layer bounds fields to 2000 too).
MAX_INPUT = 2000

# --------------------------------------------------------------------------- folding

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Invisible format characters (zero-width space/joiners, bidi marks, BOM, soft hyphen).
_INVISIBLE = re.compile(r"[\xad\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")
_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """Unicode NFKC, case-fold, control characters to spaces, dashes unified.

    Idempotent: ``fold(fold(x)) == fold(x)``.  British ``sulph-`` is spelled ``sulf-``.
    """
    s = unicodedata.normalize("NFKC", text[:MAX_INPUT]).casefold()
    s = _INVISIBLE.sub("", _CONTROL.sub(" ", s))
    s = _DASHES.sub("-", s)
    s = s.replace("sulph", "sulf")
    # NFKC and case-folding can expand a character (e.g. ligatures); fold again after
    # cutting so that the function is idempotent.
    s = _SPACES.sub(" ", s).strip()[:MAX_INPUT]
    return unicodedata.normalize("NFKC", s).casefold().strip()


# ---------------------------------------------------------------- abbreviations

#: Prescription abbreviations expanded before anything else.  Only unambiguous ones:
#: "MS"/"MSO4" (morphine or magnesium sulfate) and "CTX" (cyclophosphamide or
#: ceftriaxone) are on the ISMP list of error-prone abbreviations and are left alone.
#: "5-ASA" is mesalamine and must not fall through to "ASA" (aspirin); "PAS"/"4-ASA" is
#: para-aminosalicylic acid; "5-aminosalicylate" is mesalamine too, not the PAS salt
#: "aminosalicylate".  "Zantac 360" is famotidine (the brand name was reused after
#: ranitidine's withdrawal), while bare "Zantac" stays ranitidine.
#: "salicylic" as other languages write it too (salicílico, salicilico, salicylique).
_SALICYL = r"salic[iyí]l"
ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    (r"5[\s-]?asa", "mesalamine"),
    (rf"5[\s-]?amino[\s-]?{_SALICYL}at(?:es?|os?)?", "mesalamine"),
    (r"zantac[\s-]?360", "famotidine"),
    (rf"(?:[aá]cid[oe]?\s+)?5[\s-]?amino[\s-]?{_SALICYL}(?:[ií]c[oa]?|ique)(?:\s+acid)?",
     "mesalamine"),
    (rf"(?:[aá]cid[oe]?\s+)?(?:4|p|para)[\s-]?amino[\s-]?{_SALICYL}(?:[ií]c[oa]?|ique)"
     r"(?:\s+acid)?", "aminosalicylic acid"),
    (r"4[\s-]?asa", "aminosalicylic acid"),
    (r"pas", "aminosalicylic acid"),
    (rf"(?:[aá]cid[oe]?\s+)?ac[eé]t[iy]l[\s-]?{_SALICYL}(?:[ií]c[oa]?|ique)(?:\s+acid)?",
     "aspirin"),
    (r"asa", "aspirin"),
    (r"5[\s-]?fu", "fluorouracil"),
    (r"5[\s-]?fluorouracil", "fluorouracil"),
    (r"6[\s-]?mp", "mercaptopurine"),
    (r"6[\s-]?mercaptopurine", "mercaptopurine"),
    (r"6[\s-]?tg", "thioguanine"),
    (r"6[\s-]?thioguanine", "thioguanine"),
    (r"ara[\s-]?c", "cytarabine"),
    (r"mtx", "methotrexate"),
    (r"hctz", "hydrochlorothiazide"),
    (r"n2o", "nitrous oxide"),
    (r"methyl[\s-]?b-?12", "methylcobalamin"),
    (r"vit(?:amin|\.)?\s*b[\s-]?12", "cyanocobalamin"),
    (r"b-?12", "cyanocobalamin"),
    (r"vit(?:amin|\.)?\s*b[\s-]?9", "folic acid"),
    (r"vit(?:amin|\.)?\s*c", "ascorbic acid"),
    (r"apap", "acetaminophen"),
    (r"(?:tmp[\s/-]*smx|smx[\s/-]*tmp)", "sulfamethoxazole / trimethoprim"),
    (r"hcq", "hydroxychloroquine"),
    (r"ntg", "nitroglycerin"),
    (r"kcl", "potassium chloride"),
)

_ABBREV = re.compile(
    r"(?<![\w-])(?:" + "|".join(f"({p})" for p, _ in ABBREVIATIONS) + r")(?![\w-])"
)
_ABBREV_TO = tuple(t for _, t in ABBREVIATIONS)


def expand_abbreviations(folded: str, applied: list[str] | None = None) -> str:
    """Replace whole-word abbreviations (input already :func:`fold`-ed).

    :param applied: if given, receives the expansion of every abbreviation replaced.
    """

    def repl(m: re.Match[str]) -> str:
        to = _ABBREV_TO[(m.lastindex or 1) - 1]
        if applied is not None:
            applied.append(to)
        return f" {to} "

    return _ABBREV.sub(repl, folded)


# ---------------------------------------------------------------- strengths & words

_NUM = r"(?:\d+(?:[.,]\d+)*|[.,]\d+)"
_UNIT = (
    r"(?:mg|mcg|μg|ug|gm?|grams?|kg|ml|dl|l|%|iu|units?|unt|u|meq|mmol|mol|ng|"
    r"actuat(?:ions?)?|puffs?|doses?|sprays?|drops?|hrs?|hours?|h|days?|d|wks?|weeks?|"
    r"months?|min|ct|counts?|tabs?|tablets?|caps?|capsules?|m2|million|billion)"
)
_STRENGTH = re.compile(
    rf"(?<![\w.])(?<![a-z]-){_NUM}(?:\s*[-:]\s*{_NUM})*\s*{_UNIT}?"
    rf"(?:\s*/\s*(?:{_NUM}\s*{_UNIT}?|{_UNIT}))*(?!\w)(?!-[a-z])"
)
_CODES = re.compile(r"(?<!\w)(?:n?da|bla)\d+(?!\w)|#\s*\d+")
#: Canadian/EU generic-manufacturer prefixes written as "Apo-Metformin", "Teva-...".
_MAKER_PREFIX = re.compile(
    r"(?<![\w-])(?:apo|teva|novo|pms|ratio|sandoz|mylan|jamp|auro|mint|sdz|taro|riva|"
    r"sivem|accel|zym|nat|dom|phl|ran|mar|act)-(?=[a-z])"
)
#: "metformin500mg": a name glued to its strength.
_GLUED = re.compile(r"(?<=[a-z]{3})(?=\d+(?:[.,]\d+)?\s*(?:mg|mcg|g|ml|%|iu|units?|meq)(?!\w))")
_WITH = re.compile(r"(?<!\w)w/(?=\s|\w)")
#: Short codes with a number ("VP-16", "CPT-11", "IL-2", "alfa-2b") are one word.
_CODE_NUMBER = re.compile(r"(?<![\w-])([a-z]{1,5})-(\d{1,4}[a-z]?)(?![\w-])")
#: Combination separators, also "y", "con" (es), "et", "avec" (fr), "und", "mit" (de),
#: "och" (sv), "og" (da/no).
_STRONG_SPLIT = re.compile(
    r"\s*(?:/|\+|&|;|\band\b|\bwith\b)\s*|\s+(?:y|con|et|avec|und|mit|och|og)\s+"
)
_WEAK_SPLIT = re.compile(r"\s*,\s*")
_TOKEN = re.compile(r"\w+")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]|\(([^()]*)\)|\{([^{}]*)\}")

def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: Dose forms, routes, release, package and unit words: never part of an ingredient name.
STOP_WORDS: frozenset[str] = _wordset(
    """
    tablet tablets tab tabs tabl caplet caplets capsule capsules cap caps capsule
    oral orally po solution solutions soln sol suspension susp susps injection injections inj
    injectable injectables infusion iv ivpb im sc sq subq subcut subcutaneous intravenous
    intramuscular intrathecal intradermal vial vials ampule ampules ampoule ampoules amp syrup
    elixir cream creams ointment oint gel jelly lotion patch patches transdermal system
    inhalation inhalant inhaler inhal gas liquid liquids film films coated filmcoated
    chewable chew chewables odt disintegrating dispersible effervescent powder pwd powders
    granule granules packet packets sachet sachets drop drops suppository suppositories rectal
    topical ophthalmic otic nasal spray sprays enema kit pen pens prefilled syringe syringes
    auto autoinjector injector cartridge cartridges concentrate emulsion lozenge lozenges troche
    buccal sublingual sl mucosal vaginal ring implant intrauterine metered dose doses actuat
    actuation actuations dry pump reconstitution reconstituted diluent premix premixed bag bags
    bolus device pellet pellets wafer strip strips foam shampoo paste mouthwash rinse gum
    irrigation nebulizer nebuliser nebule nebules respules aerosol
    er xr xl sr cr dr ec la cd xt ir mr ta pr extended delayed sustained modified controlled
    immediate release released rel ext prolonged enteric hr hrs hour hours abuse deterrent
    bottle bottles btl pack packs pk pkg package blister blisters box boxes carton ud unit
    units count ct each ea supply day days week weeks month months qty quantity dispense
    mg mcg μg ug gm ml iu unt meq mmol ng percent
    usp nf bp ep generic brand per as of strength regular
    take takes daily bid tid qid qd qod qhs hs prn once twice by mouth meal meals food
    bedtime weekly every needed directed sig
    """
)
#: The same words in other languages (es, pt, it, fr, de, nordic), accents folded and not:
#: dose forms, routes and release words of international prescriptions.
FOREIGN_STOP_WORDS: frozenset[str] = _wordset(
    """
    comprimido comprimidos comprime comprimé comprimes comprimés compresse compressa
    compresse compresses tabletten tablette tabletter tabl kapseln kapsel kapsler kapslar
    capsula capsulas cápsula cápsulas capsule gelule gélule gelules gélules
    solucion solución soluzione solucao solução losung lösung injektionslosung
    injektionslösung inyectable iniettabile injetavel injetável injectable ampolla
    ampollas ampola ampolas fiala fiale jarabe xarope sciroppo sirop saft gotas gouttes
    gocce tropfen augentropfen colirio colírio collyre collirio crema pomada pommade
    salbe creme crème unguento ungüento inyeccion inyección iniezione injecao injeção
    recubierto recubiertos recubierta recubiertas revestido revestidos rivestite pelicula
    película filmtabletten filmtablette filmdragerade retard liberacion liberación
    prolongada prolongado prolungato prolongee prolongée uso via vía sobres sobre
    bustine bustina polvo pulver poudre suspensión sospensione suspensao suspensão
    efervescente efervescentes effervescente brausetabletten masticable masticables
    kautabletten orale oral oftalmico oftálmico oftalmica oftálmica ophtalmique
    cutaneo cutáneo cutanea cutánea cutanee cutanée topico tópico de del da di du des
    """
)

#: Salts, esters, hydrates and similar words stripped in the "base" form.
SALT_WORDS: frozenset[str] = _wordset(
    """
    hydrochloride hcl dihydrochloride hydrobromide hbr hydroiodide sodium disodium
    monosodium trisodium potassium dipotassium magnesium calcium sulfate bisulfate
    hydrogensulfate phosphate diphosphate dihydrogen mesylate mesilate dimesylate maleate
    dimaleate tartrate bitartrate hemitartrate succinate besylate besilate acetate citrate
    bromide chloride iodide fumarate hemifumarate lactate gluconate malate oxalate pamoate
    stearate tosylate napsylate hyclate erbumine tromethamine trometamol meglumine
    monohydrate dihydrate trihydrate hemihydrate sesquihydrate hydrate anhydrous
    propionate dipropionate valerate butyrate acetonide furoate decanoate enanthate
    cypionate palmitate undecanoate pivalate hexanoate benzoate mofetil base resin
    lysinate arginine olamine
    """
)


# ------------------------------------------------------------------- structures


@dataclass(frozen=True)
class Piece:
    """A comma-separated part of a component.

    ``text`` keeps salt words (``"metformin hydrochloride"``); ``base`` drops them
    (``"metformin"``), or equals ``text`` when only salt words were left
    (``"magnesium sulfate"``).
    """

    text: str
    base: str

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self.base.split())


@dataclass(frozen=True)
class Component:
    """One ingredient slot of a (possibly combination) product."""

    pieces: tuple[Piece, ...]

    @property
    def text(self) -> str:
        return ", ".join(p.text for p in self.pieces)

    @property
    def base(self) -> str:
        return ", ".join(p.base for p in self.pieces)


@dataclass(frozen=True)
class ParsedText:
    """The result of :func:`parse`: everything the resolver looks up."""

    folded: str
    components: tuple[Component, ...]
    hints: tuple[str, ...]
    #: What abbreviations were expanded to ("methotrexate" for "MTX").
    expansions: tuple[str, ...] = ()

    @property
    def whole(self) -> str:
        """All components with salts kept, joined by ``" / "``."""
        return " / ".join(c.text for c in self.components)

    @property
    def whole_base(self) -> str:
        return " / ".join(c.base for c in self.components)


CandidateKind = Literal["whole", "component", "base", "hint"]


@dataclass(frozen=True)
class Candidate:
    """A string to look up, where it came from, and which component it stands for."""

    text: str
    kind: CandidateKind
    component: int | None = None


# ------------------------------------------------------------------- functions


_ALL_STOP = STOP_WORDS | FOREIGN_STOP_WORDS


def _words(fragment: str) -> list[str]:
    """Tokens of a fragment without stop words and bare numbers (hyphens split words).

    When only a single letter would be left ("K-Tab", "Gas-X"), the stop words stay:
    the name is the whole brand.
    """
    tokens = [t for t in _TOKEN.findall(fragment.replace("_", " ")) if not t.isdigit()]
    words = [t for t in tokens if t not in _ALL_STOP]
    if len(words) == 1 and len(words[0]) == 1 and len(tokens) > 1:
        return tokens
    return words


def _piece(fragment: str) -> Piece | None:
    words = _words(fragment)
    if not words:
        return None
    text = " ".join(words)
    base_words = [w for w in words if w not in SALT_WORDS]
    return Piece(text, " ".join(base_words) if base_words else text)


def _join_code(m: re.Match[str]) -> str:
    return m.group(0) if m.group(1) in STOP_WORDS else m.group(1) + m.group(2)


#: "5-aminosalicylic": a position number glued to a chemical name is part of the name
#: (5-ASA is not 4-ASA); kept as one word so that it is never read without its number.
_POSITION = re.compile(r"(?<![\w.,-])(\d{1,2})-(?=[a-z]{4,})")


def _strip(fragment: str) -> str:
    fragment = _CODES.sub(" ", fragment)
    fragment = _CODE_NUMBER.sub(_join_code, fragment)
    fragment = _POSITION.sub(r"\1", fragment)
    fragment = _MAKER_PREFIX.sub(" ", fragment)
    fragment = _GLUED.sub(" ", fragment)
    fragment = _STRENGTH.sub(" ", fragment)
    return _WITH.sub(" with ", fragment)


def _components(main: str) -> tuple[Component, ...]:
    out = []
    for part in _STRONG_SPLIT.split(main):
        pieces = tuple(p for p in (_piece(x) for x in _WEAK_SPLIT.split(part)) if p)
        if pieces:
            out.append(Component(pieces))
    return tuple(out)


def parse(text: str, *, folded: bool = False) -> ParsedText:
    """Fold, expand abbreviations, cut out bracketed hints, strip and split ``text``.

    :param folded: ``text`` is already the output of :func:`fold` (skip folding again).
    """
    if not folded:
        text = fold(text)
    hints: list[str] = []

    def _hint(m: re.Match[str]) -> str:
        inner = next((g for g in m.groups() if g is not None), "")
        hints.append(inner)
        return " "

    main = text
    for _ in range(3):  # nested brackets: innermost first, a few levels are plenty
        new = _BRACKETS.sub(_hint, main)
        if new == main:
            break
        main = new
    main = re.sub(r"[\[\](){}<>]", " ", main)
    applied: list[str] = []
    main = _strip(expand_abbreviations(main, applied))
    hint_texts: list[str] = []
    for h in hints:
        for comp in _components(_strip(expand_abbreviations(h))):
            for p in comp.pieces:
                if p.base not in hint_texts:
                    hint_texts.append(p.base)
    expansions = tuple(dict.fromkeys(" ".join(_words(a)) for a in applied))
    return ParsedText(text, _components(main), tuple(hint_texts), expansions)


def name_key(name: str) -> str:
    """The lookup key of a knowledge-base name, synonym or brand (salts kept).

    Same pipeline as :func:`parse` without splitting combinations, so that
    ``name_key("Nexium 24HR") == "nexium"`` and ``name_key("5-FU") == "fluorouracil"``.
    """
    main = re.sub(r"[\[\](){}<>]", " ", fold(name))
    main = _strip(expand_abbreviations(main))
    return " ".join(_words(main))


def base_key(key: str) -> str:
    """A key without salt words ("" when nothing else is left)."""
    return " ".join(w for w in key.split() if w not in SALT_WORDS)


def normalize(text: str) -> str:
    """The salt-free normal form of ``text``: components joined by ``" / "``.

    ``normalize("METFORMIN HCL 500MG TAB") == "metformin"``;
    ``normalize("glipizide / metformin 5/500") == "glipizide / metformin"``.
    """
    # Punctuation removed by one pass can reveal an abbreviation ("ara:c" -> "ara c");
    # apply until stable (two passes suffice in practice, three bound it).
    out = parse(text).whole_base
    for _ in range(2):
        again = parse(out).whole_base
        if again == out:
            break
        out = again
    return out


def components(text: str) -> list[str]:
    """The salt-free components of a combination product (one item for a single drug)."""
    return [c.base for c in parse(text).components]


def candidates(text: str) -> list[Candidate]:
    """Every string worth looking up for ``text``, most specific first, no repeats."""
    parsed = parse(text)
    out: list[Candidate] = []
    seen: set[str] = set()

    def add(t: str, kind: CandidateKind, comp: int | None) -> None:
        if t and t not in seen:
            seen.add(t)
            out.append(Candidate(t, kind, comp))

    if len(parsed.components) > 1:
        add(parsed.whole, "whole", None)
    for i, c in enumerate(parsed.components):
        for p in c.pieces:
            add(p.text, "component", i)
            add(p.base, "base", i)
    for h in parsed.hints:
        add(h, "hint", None)
    return out
