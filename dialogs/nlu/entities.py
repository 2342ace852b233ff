"""Entities in normalised text: order numbers, e-mail addresses, postal addresses, postcodes, dates,
yes/no, PINs, phone numbers and return reasons.

Postal addresses are parsed into their parts (:class:`Address`: street line, city, US state, postcode) from
text without punctuation, as speech recognition gives it: "21 oak street chicago illinois 60614".
Numeric dates are read in the US order, month first ("04/12/1985" is April 12); a first number above 12
can only be a day ("13/04/1985" is April 13).

All finders work on :class:`~dialogs.nlu.normalize.Normalized` text, so number words are already digits
and spelled-out e-mail addresses already joined. Offsets (``start``, ``end``) are character offsets in
that normalised text. Dates resolve against a ``today`` passed in, never the clock.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from dialogs.nlu.normalize import Normalized, normalize

MASK = "****"
# Values that prove who a caller is or could pay with: never stored, shown or logged, only ``MASK``.
SECRET_TYPES = frozenset({"pin", "cvv", "card_number"})


@dataclass
class Entity:
    """One value found in an utterance. ``type`` is a slot type (order_number, email, date, yes_no ...)."""

    type: str
    value: Any
    text: str
    start: int
    end: int


# ---------------------------------------------------------------------------------------------- regexes

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_UK_POSTCODE = re.compile(r"\b[a-z]{1,2}\d[a-z\d]? \d[a-z]{2}\b")
_POSTCODE_KEYWORD = re.compile(r"\bpostcode (?:is |it is |of |would be )?(\d{4,6})\b")
_STREET = (
    r"street|st|road|rd|avenue|ave|lane|ln|drive|dr|way|close|court|ct|place|pl|boulevard|blvd|crescent|"
    r"terrace|square|gardens|grove|hill|row|walk|parkway|mews|highway|circle|park"
)
_ADDR_STOP = (
    r"and|so|please|postcode|the|my|also|then|but|i|it|is|thanks|thank|to|for|in|because|can|could|"
    r"would|where|what|how|tell|check|update|change|with|from|on|at|as|apartment|flat|unit|you|yes|no|ok|"
    r"yesterday|today|tomorrow|last|next|this|now|since|ago|monday|tuesday|wednesday|thursday|friday|saturday|"
    r"sunday|please|thanks|which|when|we|they|he|she|was|were|will|has|have|had"
)
_ADDRESS = re.compile(
    rf"\b(?:(?:apartment|flat|unit) \d+[a-z]? )?\d{{1,5}}[a-z]? (?:(?!(?:{_ADDR_STOP})\b)[a-z]+ ){{1,3}}"
    rf"(?:{_STREET})\b"
    rf"(?: (?:apartment|flat|unit) \d+[a-z]?)?"
    rf"(?: (?!(?:{_ADDR_STOP})\b)[a-z]+){{0,2}}"  # town
    r"(?: [a-z]{1,2}\d[a-z\d]? \d[a-z]{2}| \d{5})?\b"
)
# A number split by dots into pieces ("452.2.1", a garbled reading; "49.99", a price) is not one value: no piece of
# it is an order number or a PIN.
_DIGITS = re.compile(r"(?<!\d\.)\b\d{3,14}\b(?!\.\d)")
_YEAR_CONTEXT = re.compile(r"\b(?:in|since|from|of|year|born) ((?:19|20)\d\d)\b")
_CVV_CONTEXT = re.compile(
    r"\b(?:cvv2?|cvc2?|csc|security code|card verification (?:code|value)|card code)(?: number)?"
    r"(?: on (?:my|the|your) card)?(?: is| it is| would be)? (\d{3,4})\b"
)
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_PIN_CONTEXT = re.compile(r"\b(?:pin|passcode|pin code|pin number|security code)(?: number)?(?: is| it is)? (\d{4,8})\b")
_PHONE_CONTEXT = re.compile(r"\b(?:phone|mobile|cell|telephone|landline)(?: number)?(?: is| it is)? (\+?\d{6,14})\b")

_YES = re.compile(
    r"^(?:ok )?(?:yes|yeah|yep|yup|yea|ya|sure|correct|right|that is right|that is correct|absolutely|"
    r"of course|ok|alright|all right|please do|go ahead|affirmative|definitely|certainly|sounds good|"
    r"exactly|indeed|fine|do it|it is|that is it|perfect|please)\b"
)
_NO = re.compile(
    r"^(?:oh )?(?:no|nope|nah|not really|negative|no way|wrong|incorrect|that is wrong|that is not right|"
    r"that is not it|not that|do not|never|no thanks|no thank you|cancel that|i do not think so|not at all)\b"
)

_REASONS: list[tuple[str, str]] = [
    ("wrong_size", r"too (?:small|big|large|tight|loose|short|long|narrow|wide)|(?:do|does|did) not fit|"
                   r"wrong size|not (?:the right|my) size|does not fit|fits? badly|size is wrong"),
    ("damaged", r"damaged|broken|cracked|torn|scratched|smashed|dented|ripped|stained|shattered|leaking|"
                r"arrived broken|in pieces"),
    ("defective", r"defective|faulty|(?:do|does|did) not work|stop(?:ped)? working|not working|will not (?:turn|switch) on|"
                  r"dead on arrival|malfunction\w*|keeps? (?:breaking|crashing)"),
    ("wrong_item", r"wrong (?:item|product|thing|colou?r|model|one|order)|not what i ordered|sent me the wrong|"
                   r"different (?:item|product)|missing parts?"),
    ("not_as_described", r"not as described|(?:looks|look) (?:nothing like|different)|not like the (?:picture|photo)|"
                         r"poor quality|bad quality|cheap(?:ly made)?|low quality"),
    ("changed_mind", r"change?d? my mind|do not (?:like|want|need) it|no longer (?:need|want)|do not need|"
                     r"found it cheaper|cheaper elsewhere|not needed|ordered (?:two|2|by mistake|twice)|by mistake"),
    ("late", r"(?:arrived|came|was) (?:too )?late|took too long|too late"),
]
_REASON_RES = [(label, re.compile(rf"\b(?:{pat})\b")) for label, pat in _REASONS]

# --------------------------------------------------------------------------------------------- addresses

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts",
    "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico",
    "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
}
_STATE_NAMES = {name.lower(): code for code, name in US_STATES.items()}
_STREET_WORDS = {
    "st": "Street", "rd": "Road", "ave": "Avenue", "ln": "Lane", "dr": "Drive", "ct": "Court", "pl": "Place",
    "blvd": "Boulevard", "sq": "Square", "hwy": "Highway", "pkwy": "Parkway", "cir": "Circle", "ter": "Terrace",
}
_UNIT = r"(?:apartment|apt|flat|unit|suite)"
# house number, one to three name words ("oak", "west 31st"), a street word, an optional flat
_ADDRESS_HEAD = re.compile(
    rf"\b(?:{_UNIT} \d+[a-z]? )?\d{{1,5}}[a-z]? (?:(?!(?:{_ADDR_STOP})\b)(?:\d{{1,3}}(?:st|nd|rd|th)|[a-z]+) ){{1,3}}"
    rf"(?:{_STREET})\b(?: {_UNIT} \d+[a-z]?)?"
)
_PLACE_WORD = re.compile(rf"(?!(?:{_ADDR_STOP})\b)[a-z]+")
_ZIP = re.compile(r"\d{5}(?:\d{4})?")
_MAX_PLACE_WORDS = 5  # a city of up to three words and a state of up to two


@dataclass(frozen=True)
class Address:
    """A postal address as the caller gave it: the street line and what else was said. ``state`` is a US
    state's two-letter code ("IL"); ``postcode`` a ZIP code ("60614", "60614-1234") or a UK postcode."""

    line: str
    city: str | None = None
    state: str | None = None
    postcode: str | None = None

    def missing(self) -> list[str]:
        """The parts a complete address still needs, of ``city`` and ``postcode``."""
        return [name for name, value in (("city", self.city), ("postcode", self.postcode)) if not value]

    def __str__(self) -> str:
        place = " ".join(p for p in (self.state, self.postcode) if p)
        return ", ".join(p for p in (self.line, self.city, place) if p)


def state_name(code: str | None) -> str | None:
    """The full name of a US state code ("IL" -> "Illinois"); any other text as it is."""
    return US_STATES.get(code.upper(), code) if code else None


def _street_line(text: str) -> str:
    words = []
    for w in text.split():
        words.append(_STREET_WORDS.get(w) or (w.upper() if re.fullmatch(r"\d+[a-z]", w) else w.capitalize()))
    return " ".join(words)


def _zip(digits: str) -> str:
    return f"{digits[:5]}-{digits[5:]}" if len(digits) == 9 else digits


def _split_place(words: list[str], has_zip: bool) -> tuple[str | None, str | None]:
    """(city, state code) from the words between the street and the postcode: a state is the last one or
    two words naming a US state (a two-letter code only right before a ZIP code), and only if a city is left."""
    for n in (3, 2, 1):
        if len(words) <= n:
            continue
        tail = " ".join(words[-n:])
        code = _STATE_NAMES.get(tail)
        if code is None and n == 1 and has_zip and tail.upper() in US_STATES:
            code = tail.upper()
        if code is not None:
            return _title(" ".join(words[:-n])), code
    return (_title(" ".join(words)) if words else None), None


def _address_at(text: str, m: re.Match[str]) -> tuple[Address, int]:
    """The address whose street line ``m`` matched, and where it ends in ``text``: the place words after
    the street (up to a stop word) and a ZIP or UK postcode."""
    pos = m.end()
    words: list[str] = []
    postcode: str | None = None
    for w in re.finditer(r"\S+", text[m.end():]):
        start, tok = m.end() + w.start(), w.group(0)
        uk = _UK_POSTCODE.match(text, start)
        if uk is not None:
            postcode, pos = uk.group(0).upper(), uk.end()
            break
        if _ZIP.fullmatch(tok):
            postcode, pos = _zip(tok), start + len(tok)
            break
        if len(words) >= _MAX_PLACE_WORDS or not _PLACE_WORD.fullmatch(tok):
            break
        words.append(tok)
        pos = start + len(tok)
    city, state = _split_place(words, postcode is not None and postcode[0].isdigit())
    return Address(_street_line(m.group(0)), city, state, postcode), pos


def find_addresses(text: str) -> list[Entity]:
    """Postal addresses in normalised text, parsed into an :class:`Address` each."""
    found = []
    for m in _ADDRESS_HEAD.finditer(text):
        address, end = _address_at(text, m)
        found.append(Entity("address", address, text[m.start():end], m.start(), end))
    return found


# "it is ...", "my new address is ...": the words before an address given as an answer
_ANSWER_LEAD = (r"^(?:(?:so |well |ok )?(?:it is|my (?:new )?address is|the (?:new )?address is|"
                r"i (?:now )?live (?:at|in)|i moved to|we moved to|move it to|to) )")


def _address_in(text: str) -> Address | None:
    found = find_addresses(text)
    if found:
        address: Address = found[0].value
        return address
    body = re.sub(_ANSWER_LEAD, "", text)
    m = re.fullmatch(r"(\d{1,5}[a-z]?(?: [a-z]+){1,4})(?: (\d{5}(?:\d{4})?))?", body)
    if m is None:
        return None
    return Address(_street_line(m.group(1)), None, None, _zip(m.group(2)) if m.group(2) else None)


def _place_in(text: str) -> Address | None:
    words = re.sub(r"^(?:(?:so |well |ok )?(?:it is|the city is|city is|that is|in) )", "", text).split()
    code = _zip(words.pop()) if words and _ZIP.fullmatch(words[-1]) else None
    if not words or len(words) > _MAX_PLACE_WORDS or any(not _PLACE_WORD.fullmatch(w) for w in words):
        return None
    city, state = _split_place(words, code is not None)
    return Address("", city, state, code)


def parse_address(text: str) -> Address | None:
    """The postal address in what a caller said or typed ("21 oak street chicago 60614", "21 Oak St.,
    Chicago, IL 60614"), or None without a house number and street. An answer to "what is the address"
    needs no street word: "12 main" is the line "12 Main"."""
    return _address_in(normalize(text).text)


def parse_place(text: str) -> Address | None:
    """The answer to "and the city?": a city with an optional state and postcode ("springfield illinois
    62704"), as an :class:`Address` with an empty street line; None if it is not a place name."""
    return _place_in(normalize(text).text)


# ------------------------------------------------------------------------------------------------- dates

_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({"jan": 1, "feb": 2, "sept": 9, "sep": 9, "oct": 10, "nov": 11, "dec": 12, "aug": 8, "apr": 4})
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}
_ORD_WORD = "|".join(sorted(_ORDINALS, key=len, reverse=True))
_MONTH_WORD = "|".join(sorted(_MONTHS, key=len, reverse=True))
# a day: "20 first" (twenty first after normalisation), "third", "3rd", "3"
_DAY = rf"(?:(?:20|30) (?:{_ORD_WORD})|(?:{_ORD_WORD})|\d{{1,2}}(?:st|nd|rd|th)?)"
_YEAR = r"(?:19|20)\d\d"
_DATE_RES: list[tuple[str, re.Pattern[str]]] = [
    ("dmy", re.compile(rf"\b(?:the )?(?P<day>{_DAY})(?: of)? (?P<month>{_MONTH_WORD})(?: (?P<year>{_YEAR}))?\b")),
    ("mdy", re.compile(rf"\b(?P<month>{_MONTH_WORD}) (?:the )?(?P<day>{_DAY})(?P<year>{_YEAR})?(?: (?P<year2>{_YEAR}))?\b")),
    ("numeric", re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{2,4}))?\b")),
    ("numeric", re.compile(r"\b(?P<a>\d{1,2})[.-](?P<b>\d{1,2})[.-](?P<y>(?:19|20)?\d\d)\b")),  # "12.04.1985"
    ("iso", re.compile(r"\b(?P<y>(?:19|20)\d\d)[./-](?P<m>\d{1,2})[./-](?P<d>\d{1,2})\b")),
    # "1985-04-12" and "04-12-1985" come out of normalisation as one number: "19850412", "04121985"
    ("compact", re.compile(r"\b(?P<n>\d{8})\b")),
    ("relative", re.compile(
        r"\b(?:the )?(?:day before yesterday|yesterday|today|tonight|this morning|tomorrow|day after tomorrow)\b")),
    ("ago", re.compile(r"\b(?P<n>\d+|a|an|a couple of|couple of|a few|few) (?P<unit>days?|weeks?|months?|years?) ago\b")),
    ("lastunit", re.compile(r"\b(?P<which>last|this|next) (?P<unit>week|month|year)\b")),
    ("weekday", re.compile(
        r"\b(?:(?P<which>last|this past|past|this|next|this coming|on|since) )?(?P<wd>monday|tuesday|wednesday|"
        r"thursday|friday|saturday|sunday)\b")),
    ("dayonly", re.compile(rf"\bon the (?P<day>{_DAY})\b")),
]
_BIRTH = re.compile(r"\b(?:born|birth|birthday|dob|d o b)\b")


def _day_value(text: str) -> int | None:
    parts = text.split()
    if len(parts) == 2:
        return int(parts[0]) + _ORDINALS[parts[1]]
    if text in _ORDINALS:
        return _ORDINALS[text]
    m = re.match(r"\d{1,2}", text)
    return int(m.group(0)) if m else None


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _past_year(m: int, d: int, today: date) -> date | None:
    """A day and month without a year: the latest such date not after today (orders are in the past)."""
    for y in (today.year, today.year - 1):
        got = _safe_date(y, m, d)
        if got and got <= today:
            return got
    return _safe_date(today.year - 1, m, d)


def _full_year(y: int, today: date) -> int:
    """A year said with two digits: the latest such year not after today ("85" -> 1985, "19" -> 2019)."""
    if y >= 100:
        return y
    return 2000 + y if 2000 + y <= today.year else 1900 + y


def _months_back(today: date, n: int) -> date:
    y, m = divmod(today.month - 1 - n, 12)
    year, month = today.year + y, m + 1
    return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))


def _resolve(kind: str, m: re.Match[str], today: date) -> date | None:
    g = m.groupdict()
    if kind in ("dmy", "mdy"):
        day = _day_value(g["day"])
        month = _MONTHS[g["month"]]
        year = g.get("year") or g.get("year2")
        if day is None:
            return None
        if year:
            return _safe_date(int(year), month, day)
        return _past_year(month, day, today)
    if kind == "numeric":
        a, b = int(g["a"]), int(g["b"])
        month, day = (b, a) if a > 12 else (a, b)
        if g["y"]:
            return _safe_date(_full_year(int(g["y"]), today), month, day)
        return _past_year(month, day, today)
    if kind == "compact":
        n = g["n"]
        # year first (ISO) if it reads as a date, else month first (US), else day first
        for y, mo, d in ((n[:4], n[4:6], n[6:]), (n[4:], n[:2], n[2:4]), (n[4:], n[2:4], n[:2])):
            if y[:2] in ("19", "20"):
                got = _safe_date(int(y), int(mo), int(d))
                if got is not None:
                    return got
        return None
    if kind == "iso":
        return _safe_date(int(g["y"]), int(g["m"]), int(g["d"]))
    if kind == "relative":
        word = m.group(0).removeprefix("the ")
        offsets = {"day before yesterday": -2, "yesterday": -1, "today": 0, "tonight": 0, "this morning": 0,
                   "tomorrow": 1, "day after tomorrow": 2}
        return today + timedelta(days=offsets[word])
    if kind == "ago":
        n_text = g["n"]
        n = int(n_text) if n_text.isdigit() else {"a": 1, "an": 1}.get(n_text, 2 if "couple" in n_text else 3)
        unit = g["unit"].rstrip("s")
        if unit == "day":
            return today - timedelta(days=n)
        if unit == "week":
            return today - timedelta(weeks=n)
        if unit == "month":
            return _months_back(today, n)
        return _safe_date(today.year - n, today.month, min(today.day, 28))
    if kind == "lastunit":
        sign = {"last": -1, "this": 0, "next": 1}[g["which"]]
        if g["unit"] == "week":
            return today + timedelta(weeks=sign)
        if g["unit"] == "month":
            return _months_back(today, -sign)
        return _safe_date(today.year + sign, today.month, min(today.day, 28))
    if kind == "weekday":
        wd = _WEEKDAYS[g["wd"]]
        which = g["which"] or ""
        if which in ("next", "this coming"):
            return today + timedelta(days=(wd - today.weekday() - 1) % 7 + 1)
        if which == "this":
            return today + timedelta(days=wd - today.weekday())
        # "last tuesday", "on tuesday", bare "tuesday": the most recent one before today
        return today - timedelta(days=(today.weekday() - wd - 1) % 7 + 1)
    if kind == "dayonly":
        day = _day_value(g["day"])
        if day is None:
            return None
        got = _safe_date(today.year, today.month, day)
        if got and got <= today:
            return got
        prev = _months_back(today.replace(day=1), 1)
        return _safe_date(prev.year, prev.month, day)
    return None


def find_dates(text: str, today: date) -> list[Entity]:
    """Dates in normalised text, resolved against ``today``; overlapping matches keep the longest."""
    found: list[Entity] = []
    for kind, rx in _DATE_RES:
        for m in rx.finditer(text):
            value = _resolve(kind, m, today)
            if value is not None:
                found.append(Entity("date", value, m.group(0), m.start(), m.end()))
    return _non_overlapping(found)


def is_birth_context(text: str, start: int, after: int = 0) -> bool:
    """True if a date at ``start`` is introduced as a birth date ("born on", "date of birth is").

    Only the text from ``after`` (e.g. the end of the previous date) up to ``start`` counts."""
    return bool(_BIRTH.search(text[max(after, start - 40):start]))


# ----------------------------------------------------------------------------------------------- helpers

def _luhn(digits: str) -> bool:
    """The mod-10 check of payment card numbers."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def secret_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` (normalised) holds a security code or a card number: digits no other entity may take."""
    spans = [(m.start(1), m.end(1)) for m in _CVV_CONTEXT.finditer(text)]
    spans += [(m.start(), m.end()) for m in _CARD.finditer(text) if _luhn(re.sub(r"\D", "", m.group(0)))]
    return spans


def _non_overlapping(entities: list[Entity]) -> list[Entity]:
    """Longest first, then by position; drop anything overlapping an entity already kept."""
    kept: list[Entity] = []
    for e in sorted(entities, key=lambda e: (-(e.end - e.start), e.start)):
        if all(e.end <= k.start or e.start >= k.end for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: e.start)


def _title(text: str) -> str:
    words = []
    for w in text.split():
        words.append(w.upper() if re.fullmatch(r"[a-z]{1,2}\d[a-z\d]?|\d[a-z]{2}", w) else w.capitalize())
    return " ".join(words)


def mask_addresses(text: str) -> str:
    """Normalised text with every postal address replaced by the word ``addressval``."""
    return _ADDRESS.sub("addressval", text) if any(c.isdigit() for c in text) else text


def yes_no(text: str) -> Entity | None:
    """A yes or no at the start of normalised text ("yeah sure" -> True, "no thanks" -> False)."""
    m = _NO.match(text)
    if m:
        return Entity("yes_no", False, m.group(0), m.start(), m.end())
    m = _YES.match(text)
    if m:
        return Entity("yes_no", True, m.group(0), m.start(), m.end())
    return None


def find_reason(text: str) -> Entity | None:
    """A return reason, as a label (wrong_size, damaged, defective, wrong_item, not_as_described,
    changed_mind, late)."""
    best: Entity | None = None
    for label, rx in _REASON_RES:
        m = rx.search(text)
        if m and (best is None or m.start() < best.start):
            best = Entity("reason", label, m.group(0), m.start(), m.end())
    return best


def find_entities(norm: Normalized, today: date) -> list[Entity]:
    """Every entity in an utterance, non-overlapping, in text order.

    Digit strings become order numbers unless they belong to an address, date, postcode, phone number, PIN
    ("my pin is 1234"), card security code ("cvv 123") or card number (Luhn-checked); ten digits or more are a
    phone number.
    """
    text = norm.text
    found: list[Entity] = []
    for m in _EMAIL.finditer(text):
        found.append(Entity("email", m.group(0), m.group(0), m.start(), m.end()))
    found.extend(find_addresses(text))
    for m in _UK_POSTCODE.finditer(text):
        found.append(Entity("postcode", m.group(0).upper(), m.group(0), m.start(), m.end()))
    for m in _POSTCODE_KEYWORD.finditer(text):
        found.append(Entity("postcode", m.group(1), m.group(1), m.start(1), m.end(1)))
    # a card and its security code before the PIN: "security code is 1234" is a CVV, never an order number
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if _luhn(digits):
            found.append(Entity("card_number", digits, m.group(0), m.start(), m.end()))
    for m in _CVV_CONTEXT.finditer(text):
        found.append(Entity("cvv", m.group(1), m.group(1), m.start(1), m.end(1)))
    for m in _PIN_CONTEXT.finditer(text):
        found.append(Entity("pin", m.group(1), m.group(1), m.start(1), m.end(1)))
    for m in _PHONE_CONTEXT.finditer(text):
        found.append(Entity("phone", m.group(1), m.group(1), m.start(1), m.end(1)))
    found.extend(find_dates(text, today))
    reason = find_reason(text)
    if reason:
        found.append(reason)
    kept = _non_overlapping(found)
    # the city and postcode inside an address are also reported on their own: change_address has their slots
    for e in list(kept):
        if e.type == "address" and isinstance(e.value, Address):
            if e.value.city:
                kept.append(Entity("city", Address("", e.value.city, e.value.state), e.text, e.start, e.end))
            if e.value.postcode:
                at = e.start + max(0, e.text.rfind(e.value.postcode.lower().replace("-", "")))
                kept.append(Entity("postcode", e.value.postcode, text[at:e.end], at, e.end))
    # "in 1985", "since 2019": a year, not an order number
    years = [(m.start(1), m.end(1)) for m in _YEAR_CONTEXT.finditer(text)]
    for m in _DIGITS.finditer(text):
        if any(not (m.end() <= k.start or m.start() >= k.end) for k in kept) or (m.start(), m.end()) in years:
            continue
        digits = m.group(0)
        kind = "phone" if len(digits) >= 10 else "order_number"
        kept.append(Entity(kind, digits, digits, m.start(), m.end()))
    yn = yes_no(text)
    if yn:
        kept.append(yn)
    return sorted(kept, key=lambda e: (e.start, e.type))


def extract(norm: Normalized, slot_type: str, today: date) -> Entity | None:
    """The value of one slot type in an answer to a prompt, with looser rules than :func:`find_entities`:
    any digit string is an order number or PIN, any date counts, and an address needs no street word."""
    text = norm.text
    if not text:
        return None
    if slot_type == "yes_no":
        return yes_no(text)
    if slot_type == "reason":
        return find_reason(text) or Entity("reason", "other", text, 0, len(text))
    if slot_type == "date":
        dates = find_dates(text, today)
        return dates[0] if dates else None
    if slot_type in ("order_number", "pin", "phone"):
        date_spans = [(d.start, d.end) for d in find_dates(text, today)]
        candidates = [m for m in re.finditer(r"(?<!\d\.)\b\+?\d{3,14}\b(?!\.\d)", text)
                      if all(m.end() <= a or m.start() >= b for a, b in date_spans)]
        if slot_type != "pin":  # a security code or card number read out is never an order or phone number
            spans = secret_spans(text)
            candidates = [m for m in candidates if all(m.end() <= a or m.start() >= b for a, b in spans)]
        if slot_type == "pin":
            candidates = [m for m in candidates if 4 <= len(m.group(0)) <= 8] or candidates
        if slot_type == "phone":
            candidates = [m for m in candidates if len(m.group(0).lstrip("+")) >= 6]
        if not candidates:
            return None
        m = max(candidates, key=lambda m: len(m.group(0)))
        return Entity(slot_type, m.group(0), m.group(0), m.start(), m.end())
    if slot_type == "postcode":
        date_spans = [(d.start, d.end) for d in find_dates(text, today)]
        code = _UK_POSTCODE.search(text) or next(
            (m for m in re.finditer(r"\b\d{4,6}\b", text)
             if all(m.end() <= a or m.start() >= b for a, b in date_spans)), None)
        return Entity("postcode", code.group(0).upper(), code.group(0), code.start(), code.end()) if code else None
    if slot_type == "address":
        address = _address_in(text)
        return Entity("address", address, text, 0, len(text)) if address is not None else None
    if slot_type == "city":
        place = _place_in(text)
        return Entity("city", place, text, 0, len(text)) if place is not None and place.city else None
    entities = [e for e in find_entities(norm, today) if e.type == slot_type]
    return entities[0] if entities else None
