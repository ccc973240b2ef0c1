"""The CLI's terminal output (sutram_adapters._term, which replaced rich in the base install):
tables keep every word and line up whatever the cells hold, markup never eats user text, and
colours go only to a terminal that wants them."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from sutram_adapters._term import Panel, Styled, Table, Terminal, plain, visible_width

cells = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Mn", "Me", "Cf", "Zl", "Zp")), max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(cells, cells, cells), max_size=6), width=st.integers(20, 160))
def test_a_table_keeps_every_word_and_its_lines_align(rows: list[tuple[str, str, str]], width: int) -> None:
    table = Table(title="t")
    table.add_column("id", no_wrap=True)
    table.add_column("text")
    table.add_column("n", justify="right")
    for a, b, c in rows:
        table.add_row(a.replace(" ", "_").replace("\n", "_"), b, Styled(c, "green"))
    lines = table.lines(Terminal(width=width, colour=False))[1:]
    assert len({visible_width(line) for line in lines}) == 1, lines
    body = "\n".join(lines)
    for _, b, c in rows:
        for word in (b + " " + c).split():
            # a word wider than its column is cut across lines; every character is still there
            assert word in body or all(ch in body for ch in word)


def test_markup_is_only_the_known_tags_and_colour_only_on_a_terminal() -> None:
    out = io.StringIO()
    term = Terminal(out, width=80)  # a StringIO is no terminal: no colour
    term.print("[red]SIGKILL[/] sent [1, 2] to [bold]brief[/bold] [link=x]")
    assert out.getvalue() == "SIGKILL sent [1, 2] to brief [link=x]\n"
    assert plain("[bold green]ok[/] [dim]") == "ok "
    coloured = io.StringIO()
    Terminal(coloured, width=80, colour=True).print("[red]x[/] y")
    assert coloured.getvalue() == "\x1b[0m\x1b[31mx\x1b[0m y\n"


def test_wide_characters_take_two_columns_and_a_panel_fits_them() -> None:
    assert visible_width("日本") == 4
    lines = Panel.fit("注文 A-1042 は [bold]リスボン[/] に届きます", title="状態").lines(Terminal(width=30, colour=False))
    assert len({visible_width(line) for line in lines}) == 1, lines
    assert "リスボン" in "".join(lines)


def test_a_table_that_cannot_fit_is_drawn_whole_not_squeezed() -> None:
    table = Table()
    table.add_column("run", no_wrap=True)
    table.add_column("name")
    table.add_row("x" * 90, "LangGraph")
    lines = table.lines(Terminal(width=60, colour=False))
    assert any("LangGraph" in line for line in lines) and len(lines) == 5


def test_user_text_cannot_colour_move_or_break_the_output() -> None:
    term = Terminal(width=40, colour=False)
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("text")
    table.add_row("a\nb", "\x1b[31mred\x1b[0m\ttab \u200bzero [/] kept")
    lines = table.lines(term)
    assert len({visible_width(line) for line in lines}) == 1, lines
    body = "\n".join(lines)
    assert "\x1b" not in body and "red" in body and "[/]" in body and "kept" in body
    assert visible_width("👨\u200d👩\u200d👧") <= 6 and visible_width("e\u0301") == 1
    panel = Panel.fit("aaaaaaaaaaaaaa [bold red]x[/] tail", title="two\nlines").lines(Terminal(width=24, colour=False))
    assert len({visible_width(line) for line in panel}) == 1, panel
    assert "[bold" not in "".join(panel) and "red]" not in "".join(panel)
    out = io.StringIO()
    Terminal(out, width=40).print("thread run[/]1 against [red]x", markup=False)
    assert out.getvalue() == "thread run[/]1 against [red]x\n"
    assert Table(title="t").lines(term) == ["t"]
