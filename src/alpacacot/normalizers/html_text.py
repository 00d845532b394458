"""HTML answers (ShareGPT's saved ChatGPT pages) turned into plain text, with the standard
library's `html.parser` (no dependency): paragraphs and list items on their own lines, code blocks
fenced (with the language label the page shows above them) and their whitespace kept, entities
decoded, and the page's chrome (buttons such as "Copy code", SVG icons, scripts, styles) dropped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCKS = frozenset(
    {"p", "div", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "blockquote", "hr"}
)
SKIPPED = frozenset({"button", "svg", "script", "style", "head", "title"})
_LOOKS_LIKE_HTML = re.compile(r"^\s*<(?:div|p|ol|ul|pre|h[1-6]|table|blockquote|span)\b", re.I)
_SPACES = re.compile(r"[ \t\r\n\f]+")


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0  # depth inside tags whose content is dropped
        self.pre = 0  # depth inside <pre>: whitespace is kept
        self.lists: list[int | None] = []  # per open list: the next number (ol) or None (ul)
        self.label: list[str] | None = None  # text of a <pre> before its <code>: the language

    def _newlines(self, n: int) -> None:
        text = "".join(self.out)
        have = len(text) - len(text.rstrip("\n"))
        if text.strip() and have < n:
            self.out.append("\n" * (n - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED:
            self.skip += 1
        elif self.skip:
            return
        elif tag == "pre":
            self._newlines(2)
            self.out.append("```")
            self.pre += 1
            self.label = []
        elif tag == "code" and self.label is not None:
            self.out.append(" ".join("".join(self.label).split()) + "\n")
            self.label = None
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("ul", "ol"):
            self._newlines(1)
            self.lists.append(1 if tag == "ol" else None)
        elif tag == "li":
            self._newlines(1)
            number = self.lists[-1] if self.lists else None
            if number is None:
                self.out.append("- ")
            else:
                self.out.append(f"{number}. ")
                self.lists[-1] = number + 1
        elif tag in BLOCKS and not self.pre:
            self._newlines(2 if tag != "div" else 1)
        elif tag == "code" and not self.pre:
            self.out.append("`")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED:
            self.skip = max(0, self.skip - 1)
        elif self.skip:
            return
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            if self.label is not None:  # a <pre> without <code>: its text is the code
                self.out.append("\n" + "".join(self.label))
                self.label = None
            if not "".join(self.out).endswith("\n"):
                self.out.append("\n")
            self.out.append("```")
            self._newlines(2)
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._newlines(2)
        elif tag in BLOCKS and not self.pre:
            self._newlines(2 if tag == "p" else 1)
        elif tag == "code" and not self.pre:
            self.out.append("`")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.label is not None:
            self.label.append(data)
            return
        if self.pre:
            self.out.append(data)
            return
        text = _SPACES.sub(" ", data)
        if text.strip() or (self.out and not self.out[-1].endswith((" ", "\n"))):
            at_line_start = not self.out or self.out[-1].endswith("\n")
            self.out.append(text.lstrip() if at_line_start else text)


def looks_like_html(text: str) -> bool:
    """A saved-page answer starts with a block tag; plain user text does not."""
    return bool(_LOOKS_LIKE_HTML.match(text))


def html_to_text(html: str) -> str:
    """The readable text of an HTML fragment (see the module docstring)."""
    builder = _TextBuilder()
    builder.feed(html)
    builder.close()
    lines = [line.rstrip() for line in "".join(builder.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
