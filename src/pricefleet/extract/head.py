"""When a page's head alone says what its whole tree would: the cheap path of `page.py`.

Most of lexbor's time on a product page goes to the body (navigation menus of a hundred links
and more), while what `page.py` reads first (JSON-LD scripts, the canonical link, OpenGraph and
other metas) usually sits in the head. The body is needed only for what structured data leaves
out, and for one check made on nearly every page: a struck-through regular price shown next to
the price (`visible.struck_price`), which looks at `<del>`, `<s>` and `<strike>` elements.

So `head_of` reads the page's text once, without parsing it, and says whether the text up to
its first `</head>` (the *head*) can stand for the whole page:

- after the head, no `<meta`, no `<link` and no `<script` start tag other than a bare
  `<script>` (no attributes, so no JSON-LD type): the whole page's scripts, links and metas
  are then all in the head;
- whether a `<del`, `<s` or `<strike` start tag appears anywhere (`struck`): without one, the
  page has no such element (lexbor makes none that its text does not spell out).

`page.py` then parses the head alone and checks, on that small tree, that the cut fell between
tags (`whole_in`): every `<script`, `<meta` and `<link` start tag of the head is an element of
its tree (none was swallowed by a comment or a script, or cut in the middle of its attributes),
and the last script does not end at the cut (cut in the middle of its text). Anything unusual
sends the page down the full parse: results are the same either way, only the cost differs.

This module only reads the text and a head's tree; it must not decide what to extract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

__all__ = ["Head", "head_of", "whole_in"]

# A start tag of one of these names: `<`, the name, then what ends a tag name (HTML whitespace,
# `/`, `>`; a carriage return is read as a line feed). Spelled as a trie of explicit letter
# classes, without groups: sre then tries one branch per `<` instead of one per name, which
# makes this scan (it runs over every page) about a third cheaper; the few matches are
# classified afterwards.
_TAGS_TEXT = re.compile(
    r"<(?:[sS](?:[cC][rR][iI][pP][tT]|[tT][rR][iI][kK][eE])?|[dD][eE][lL]"
    r"|[mM][eE][tT][aA]|[lL][iI][nN][kK])[\t\n\f\r />]"
)
_TAGS_BYTES = re.compile(_TAGS_TEXT.pattern.encode())
_STRUCK = frozenset({"<del", "<s", "<strike"})
_BARE_SCRIPT = "<script>"
_HEAD_END = "</head>"


@dataclass(frozen=True, slots=True)
class Head:
    """What the page's text says without parsing it."""

    #: The text up to and including the first `</head>`, when no script, meta or link that
    #: could matter follows it; else None (parse the whole page).
    text: bytes | str | None
    #: `<script`, `<meta` and `<link` start tags in `text` (each should be an element).
    tags: int
    #: A `<del`, `<s` or `<strike` start tag appears somewhere in the page.
    struck: bool


def _cut(body: bytes | str) -> int:
    """Where the first `</head>` (either case) ends; -1 when there is none."""
    if isinstance(body, bytes):
        lower, upper = _HEAD_END.encode(), _HEAD_END.upper().encode()
        end = body.find(lower)
        if end < 0:
            end = body.find(upper)
    else:
        end = body.find(_HEAD_END)
        if end < 0:
            end = body.find(_HEAD_END.upper())
    return end + len(_HEAD_END) if end >= 0 else -1


def head_of(body: bytes | str) -> Head:
    """The page's head, if it can stand for the page, and whether the page strikes anything
    through. `body` is UTF-8 (or ASCII-compatible) bytes, or text."""
    cut = _cut(body)
    whole = cut >= 0
    tags = 0
    struck = False
    found: list[tuple[int, str]] = (
        [(m.start(), m[0].decode("ascii").lower()) for m in _TAGS_BYTES.finditer(body)]
        if isinstance(body, bytes)
        else [(m.start(), m[0].lower()) for m in _TAGS_TEXT.finditer(body)]
    )
    for start, tag in found:
        if tag[:-1] in _STRUCK:
            struck = True
        elif start < cut:
            tags += 1
        elif tag != _BARE_SCRIPT:
            whole = False  # after the head, a script that may be JSON-LD, a meta or a link
    text = body[:cut] if whole else None
    return Head(text=text, tags=tags, struck=struck)


def whole_in(tree: LexborHTMLParser, head: Head) -> bool:
    """Whether `tree`, parsed from `head.text` alone, holds every script, meta and link of the
    whole page as the whole page's tree would: each start tag counted became an element, and
    no script's text was cut short."""
    scripts = tree.tags("script")
    if len(scripts) + len(tree.tags("meta")) + len(tree.tags("link")) != head.tags:
        return False
    if scripts:
        text = scripts[-1].text(deep=True)
        if text[-len(_HEAD_END) :].lower() == _HEAD_END:
            return False
    return True
