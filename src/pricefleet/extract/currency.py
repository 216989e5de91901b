"""Currency symbols and names as shops write them, mapped to ISO 4217 codes.

Owns the symbol table only; finding a currency inside a price string is `prices.py`'s job.
A symbol that several currencies share (`kr`, `¥`, `R`) maps to the one shops most often mean
(`$` → USD, `¥` → JPY) or, where no choice is safe (`kr`), to nothing.
"""

from __future__ import annotations

import unicodedata

__all__ = ["ISO_CODES", "currency_code"]

_ISO_TEXT = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
    KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
    RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
    TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
    BYR DEM ESP FRF ITL MRO PTE STD VEF
"""
#: Active ISO 4217 codes (plus a few withdrawn ones shops still print: DEM, FRF, PTE, ESP…).
ISO_CODES = frozenset(_ISO_TEXT.split())

# Keys are lower-case, accent-free (see `_key`); ISO codes themselves are handled separately.
_SYMBOLS: dict[str, str] = {
    "€": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "eur.": "EUR",
    "£": "GBP",
    "￡": "GBP",
    "gbp£": "GBP",
    "stg": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "$": "USD",
    "us$": "USD",
    "us $": "USD",
    "u$s": "USD",
    "usd$": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "zł": "PLN",
    "zl": "PLN",
    "zł.": "PLN",
    "fr.": "CHF",
    "sfr": "CHF",
    "sfr.": "CHF",
    "chf.": "CHF",
    "kč": "CZK",
    "kc": "CZK",
    "ft": "HUF",
    "ft.": "HUF",
    "lei": "RON",
    "₽": "RUB",
    "руб": "RUB",
    "руб.": "RUB",
    "рублей": "RUB",
    "р.": "RUB",
    "р": "RUB",
    "₴": "UAH",
    "грн": "UAH",
    "грн.": "UAH",
    "hrn": "UAH",
    "лв": "BGN",
    "лв.": "BGN",
    "₫": "VND",
    "đ": "VND",
    "vnđ": "VND",
    "vnd": "VND",
    "rp": "IDR",
    "rp.": "IDR",
    "₹": "INR",
    "rs": "INR",
    "rs.": "INR",
    "₪": "ILS",
    "nis": "ILS",
    "ש״ח": "ILS",
    """ש"ח""": "ILS",
    "฿": "THB",
    "บาท": "THB",
    "r$": "BRL",
    "c$": "CAD",
    "ca$": "CAD",
    "can$": "CAD",
    "cad$": "CAD",
    "a$": "AUD",
    "au$": "AUD",
    "au $": "AUD",
    "nz$": "NZD",
    "hk$": "HKD",
    "s$": "SGD",
    "mx$": "MXN",
    "nt$": "TWD",
    "nt": "TWD",
    "ar$": "ARS",
    "cl$": "CLP",
    "co$": "COP",
    "rd$": "DOP",
    "j$": "JMD",
    "tt$": "TTD",
    "bz$": "BZD",
    "cuc$": "CUC",
    "mop$": "MOP",
    "$u": "UYU",
    "¥": "JPY",
    "￥": "JPY",
    "円": "JPY",
    "yen": "JPY",
    "元": "CNY",
    "cn¥": "CNY",
    "rmb": "CNY",
    "人民币": "CNY",
    "yuan": "CNY",
    "₩": "KRW",
    "원": "KRW",
    "₺": "TRY",
    "tl": "TRY",
    "rm": "MYR",
    "₱": "PHP",
    "kn": "HRK",
    "din": "RSD",
    "din.": "RSD",
    "дин": "RSD",
    "дин.": "RSD",
    "dinara": "RSD",
    "динар": "RSD",
    "₸": "KZT",
    "тг": "KZT",
    "тңг": "KZT",
    "тңг.": "KZT",
    "₦": "NGN",
    "₭": "LAK",
    "₮": "MNT",
    "₡": "CRC",
    "₲": "PYG",
    "₾": "GEL",
    "lari": "GEL",
    "₼": "AZN",
    "ман.": "AZN",
    "֏": "AMD",
    "դր.": "AMD",
    "৳": "BDT",
    "gh₵": "GHS",
    "₵": "GHS",
    "៛": "KHR",
    "kd": "KWD",
    "د.ك": "KWD",
    "د.ك.": "KWD",
    "دينار كويتي": "KWD",
    "د.إ": "AED",
    "د.إ.": "AED",
    "درهم": "AED",
    "ر.س": "SAR",
    "ر.س.": "SAR",
    "ر.ق": "QAR",
    "ر.ع": "OMR",
    "ر.ي": "YER",
    "د.ب": "BHD",
    ".د.ب": "BHD",
    "bd": "BHD",
    "د.أ": "JOD",
    "دينار أردني": "JOD",
    "د.ت": "TND",
    "dt": "TND",
    "د.ج": "DZD",
    "دج": "DZD",
    "د.م": "MAD",
    "dh": "MAD",
    "dhs": "AED",
    "د.ع": "IQD",
    "ع.د": "IQD",
    "د.ل": "LYD",
    "ل.د": "LYD",
    "ld": "LYD",
    "ل.س": "SYP",
    "ل.ل": "LBP",
    "ج.م": "EGP",
    "e£": "EGP",
    "جنيه": "EGP",
    "ج.س": "SDG",
    "ج.س.": "SDG",
    "تومان": "IRR",
    "ریال": "IRR",
    "ريال": "IRR",
    "﷼": "IRR",
    "؋": "AFN",
    "lek": "ALL",
    "km": "BAM",
    "км": "BAM",
    "br": "BYN",
    "fbu": "BIF",
    "cfa": "XOF",
    "fcfa": "XAF",
    "fdj": "DJF",
    "nfk": "ERN",
    "mk": "MWK",
    "rf": "MVR",
    "um": "MRU",
    "₨": "PKR",
    "b/.": "PAB",
    "s/.": "PEN",
    "s/": "PEN",
    "db": "STN",
    "tsh": "TZS",
    "t$": "TOP",
    "ush": "UGX",
    "ksh": "KES",
    "kshs": "KES",
    "vt": "VUV",
    "bs": "VES",
    "zk": "ZMW",
    "z$": "ZWL",
    "fg": "GNF",
    "nu.": "BTN",
    "nu": "BTN",
    "ден": "MKD",
    "ar": "MGA",
    "mt": "MZN",
    "frw": "RWF",
    "ks": "MMK",
    "so'm": "UZS",
    "som": "KGS",
    "ƒ": "ANG",
    "g$": "GYD",
    "gy$": "GYD",
}

_MAX_LENGTH = 16  # longer strings are sentences, not currency marks


def _key(text: str) -> str:
    folded = text.strip().lower()
    if not folded.isascii():
        # Accents vary (`Kč` / `Kc`), but Cyrillic and Arabic letters must survive, so only
        # combining marks are dropped after decomposition.
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return folded


_FOLDED = {_key(symbol): code for symbol, code in _SYMBOLS.items()}


def currency_code(text: str | None) -> str | None:
    """The ISO 4217 code a currency mark stands for (`€` → EUR, `zł` → PLN), None if unknown."""
    if not text:
        return None
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_LENGTH:
        return None
    upper = stripped.upper()
    if upper in ISO_CODES:
        return upper
    code = _FOLDED.get(_key(stripped))
    if code is not None:
        return code
    # `US$ `, `EUR.`, `(CHF)`: retry without surrounding punctuation.
    trimmed = stripped.strip(" .:()[]")
    if trimmed and trimmed != stripped:
        return currency_code(trimmed)
    return None
