"""Terminal output for the CLI and the demo: tables, boxed panels and a few colours, in
plain Python, so the base install carries no terminal library.

Text may hold markup tags: ``[bold]``, ``[dim]``, ``[red]``, ``[green]``, ``[yellow]``,
``[cyan]``, ``[magenta]``, ``[bold red]``, ``[bold green]``, closed by ``[/]`` or
``[/name]``. Brackets that are not one of these tags print as they are. Colours are
written only to a terminal, and never under ``NO_COLOR`` or ``TERM=dumb``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

__all__ = ["Panel", "Styled", "Table", "Terminal", "clean", "plain", "visible_width"]

STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "magenta": "35", "cyan": "36",
          "bold red": "1;31", "bold green": "1;32"}
_TAG = re.compile(r"\[(/?)(" + "|".join(sorted(map(re.escape, STYLES), key=len, reverse=True)) + r")?\]")


def _render_markup(text: str, colour: bool) -> str:
    """``text`` with its tags turned into ANSI codes (``colour``) or removed."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for tag in _TAG.finditer(text):
        closing, name = tag.group(1), tag.group(2)
        if not closing and not name:  # "[]": not a tag
            continue
        out.append(text[pos:tag.start()])
        pos = tag.end()
        if closing:
            if stack:
                stack.pop()
        else:
            stack.append(STYLES[name])
        if colour:
            out.append("\x1b[0m" + "".join(f"\x1b[{code}m" for code in stack))
    out.append(text[pos:])
    if colour and stack:
        out.append("\x1b[0m")
    return "".join(out)


def plain(text: str) -> str:
    """``text`` without its markup tags."""
    return _render_markup(text, colour=False)


def visible_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (wide East Asian characters take two; combining
    marks, joiners and other format characters none)."""
    return sum(0 if unicodedata.category(c) in ("Mn", "Me", "Cf") else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """``text`` as it may be drawn: tabs as spaces, terminal escape sequences and other
    control characters removed (user data must not colour or move the terminal)."""
    return _CONTROL.sub("", text.replace("\t", "    "))


@dataclass(frozen=True)
class Styled:
    """A table cell drawn in one style (its text is not read as markup)."""

    text: str
    style: str


class _Renderable(Protocol):
    def lines(self, term: Terminal) -> list[str]: ...


class Terminal:
    """Where output goes: a file (stdout by default), its width in columns, and whether
    it shows colours."""

    def __init__(self, file: IO[str] | None = None, width: int | None = None, colour: bool | None = None) -> None:
        self.file = file if file is not None else sys.stdout
        self.width = width or shutil.get_terminal_size((100, 24)).columns
        if colour is None:
            isatty = getattr(self.file, "isatty", None)
            colour = bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and \
                os.environ.get("TERM") != "dumb"
        self.colour = colour

    def wider(self, width: int) -> Terminal:
        """The same output at least ``width`` columns wide (for ids that must not be cut)."""
        return self if self.width >= width else Terminal(self.file, width, self.colour)

    def paint(self, text: str, style: str) -> str:
        """``text`` in ``style`` (one of :data:`STYLES`), when colours are on."""
        return f"\x1b[{STYLES[style]}m{text}\x1b[0m" if self.colour and style in STYLES else text

    def rule(self, title: str = "") -> None:
        """A line across the terminal, with ``title`` in its middle."""
        label = f" {title} " if title else ""
        side = max(2, (self.width - visible_width(label)) // 2)
        self.print(self.paint("─" * side + label + "─" * max(2, self.width - side - visible_width(label)), "dim"))

    def print(self, what: str | _Renderable = "", *, markup: bool = True) -> None:
        """Write a line of text (with markup, unless ``markup=False``: text that holds user
        data, coloured with :meth:`paint`), a :class:`Table` or a :class:`Panel`."""
        if isinstance(what, str):
            text = _render_markup(what, self.colour) if markup else what
        else:
            text = "\n".join(what.lines(self))
        self.file.write(text + "\n")
        self.file.flush()


def _fold(word: str, width: int) -> list[str]:
    """A word wider than ``width`` columns cut into pieces that fit."""
    pieces, piece, size = [], "", 0
    for ch in word:
        w = visible_width(ch)
        if piece and size + w > width:
            pieces.append(piece)
            piece, size = "", 0
        piece, size = piece + ch, size + w
    return [*pieces, piece]


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` columns, broken at spaces (a longer word is cut)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        pieces = [p for word in paragraph.split() for p in (_fold(word, width) if visible_width(word) > width
                                                            else [word])]
        lines.extend(_pack(pieces, width, visible_width))
    return lines


def _pack(words: list[str], width: int, measure: Callable[[str], int]) -> list[str]:
    """One paragraph's ``words`` joined by spaces into as few lines of at most ``width``
    columns (as ``measure`` counts them) as taking them in order allows."""
    lines: list[str] = []
    line, size = "", 0
    for word in words:
        w = measure(word)
        if line and size + 1 + w > width:
            lines.append(line)
            line, size = word, w
        else:
            line, size = (f"{line} {word}", size + 1 + w) if line else (word, w)
    lines.append(line)
    return lines


def _pad(text: str, width: int, justify: str) -> str:
    gap = max(0, width - visible_width(text))
    return " " * gap + text if justify == "right" else text + " " * gap


@dataclass
class _Column:
    header: str
    justify: str = "left"
    no_wrap: bool = False


@dataclass
class Table:
    """Rows under a header, in a box; columns that do not fit the terminal wrap their text
    (``no_wrap`` ones, such as ids, are never cut)."""

    title: str | None = None
    columns: list[_Column] = field(default_factory=list)
    rows: list[list[str | Styled]] = field(default_factory=list)

    def add_column(self, header: str, *, justify: str = "left", no_wrap: bool = False) -> None:
        """A column: ``justify`` "left" or "right"."""
        self.columns.append(_Column(header, justify, no_wrap))

    def add_row(self, *cells: str | Styled) -> None:
        """One row: a string or a :class:`Styled` per column (drawn as text: tags, escape
        sequences and control characters in it are not obeyed)."""
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([Styled(clean(c.text), c.style) if isinstance(c, Styled) else clean(c) for c in cells])

    def _widths(self, available: int) -> list[int]:
        """Each column's width: its widest line, narrowed (widest first) while the table is
        wider than ``available``, down to its longest word: text wraps at spaces, and a
        table that still does not fit is drawn wider than the terminal rather than cut."""
        columns = [[col.header] + [c.text if isinstance(c, Styled) else c for c in (row[i] for row in self.rows)]
                   for i, col in enumerate(self.columns)]
        widths = [max(visible_width(line) for text in texts for line in text.split("\n")) for texts in columns]
        floors = [w if col.no_wrap else min(w, max(6, max((visible_width(word) for text in texts
                                                             for word in text.split()), default=0)))
                  for col, w, texts in zip(self.columns, widths, columns, strict=True)]
        room = available - (3 * len(widths) + 1)
        if sum(floors) > room:  # it cannot fit: wrapping would only make it taller
            return widths
        while sum(widths) > room:  # narrow the widest column, down to the next widest, in turn
            shrinkable = sorted((i for i in range(len(widths)) if widths[i] > floors[i]), key=lambda i: -widths[i])
            widest = shrinkable[0]
            nxt = max([widths[i] for i in shrinkable[1:]] + [floors[widest]])
            widths[widest] -= max(1, min(widths[widest] - nxt, sum(widths) - room))
        return widths

    def lines(self, term: Terminal) -> list[str]:
        """The table drawn for ``term``."""
        if not self.columns:
            return [self.title] if self.title else []
        widths = self._widths(term.width)
        total = sum(widths) + 3 * len(widths) + 1
        out: list[str] = []
        if self.title:
            out.append(_pad(" " * max(0, (total - visible_width(self.title)) // 2) + self.title, total, "left").rstrip())
        out.append("┏" + "┳".join("━" * (w + 2) for w in widths) + "┓")
        heads = [_wrap(col.header, w) for col, w in zip(self.columns, widths, strict=True)]
        for i in range(max(len(h) for h in heads)):
            out.append("┃ " + " ┃ ".join(term.paint(_pad(h[i] if i < len(h) else "", w, col.justify), "bold")
                                         for h, col, w in zip(heads, self.columns, widths, strict=True)) + " ┃")
        out.append("┡" + "╇".join("━" * (w + 2) for w in widths) + "┩")
        for row in self.rows:
            cells = []
            for cell, col, w in zip(row, self.columns, widths, strict=True):
                text, style = (cell.text, cell.style) if isinstance(cell, Styled) else (cell, "")
                cells.append((text.split("\n") if col.no_wrap else _wrap(text, w), style))
            height = max(len(lines) for lines, _ in cells)
            for i in range(height):
                parts = []
                for (lines, style), col, w in zip(cells, self.columns, widths, strict=True):
                    piece = _pad(lines[i] if i < len(lines) else "", w, col.justify)
                    parts.append(term.paint(piece, style) if style else piece)
                out.append("│ " + " │ ".join(parts) + " │")
        out.append("└" + "┴".join("─" * (w + 2) for w in widths) + "┘")
        return out


@dataclass
class Panel:
    """Text (with markup) in a rounded box fitted to it, with an optional title on the top edge."""

    text: str
    title: str | None = None

    def __post_init__(self) -> None:
        self.text = "\n".join(clean(line) for line in self.text.split("\n"))
        self.title = None if self.title is None else clean(" ".join(self.title.split()))

    @classmethod
    def fit(cls, text: str, title: str | None = None) -> Panel:
        """A panel as wide as its text (within the terminal)."""
        return cls(text, title)

    def lines(self, term: Terminal) -> list[str]:
        """The panel drawn for ``term``."""
        wrapped = _wrap_markup(self.text, max(20, term.width - 4))
        sizes = [visible_width(plain(line)) for line in wrapped]
        width = max([*sizes, visible_width(self.title or "") + 2])
        top = "─" * (width + 2)
        if self.title:
            label = f" {self.title} "
            left = (width + 2 - visible_width(label)) // 2
            top = "─" * left + label + "─" * (width + 2 - left - visible_width(label))
        out = ["╭" + top + "╮"]
        for line, size in zip(wrapped, sizes, strict=True):
            out.append("│ " + _render_markup(line, term.colour) + " " * (width - size) + " │")
        out.append("╰" + "─" * (width + 2) + "╯")
        return out


def _wrap_markup(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` visible columns, each with its markup closed and reopened
    so that it renders on its own."""
    lines: list[str] = []
    # a tag of two words ("[bold red]") is one word here
    text = _TAG.sub(lambda tag: tag.group(0).replace(" ", "\x01"), text)
    for paragraph in text.split("\n"):
        words = [w.replace("\x01", " ") for w in paragraph.split(" ")]
        lines.extend(_pack(words, width, lambda word: visible_width(plain(word))))
    # carry open tags across line breaks
    fixed: list[str] = []
    carry: list[str] = []
    for line in lines:
        opened = list(carry)
        for tag in _TAG.finditer(line):
            closing, name = tag.group(1), tag.group(2)
            if closing:
                if opened:
                    opened.pop()
            elif name:
                opened.append(name)
        fixed.append("".join(f"[{name}]" for name in carry) + line + "[/]" * len(opened))
        carry = opened
    return fixed
