"""The console's input line keeps in view what is typed after moving back (Home, Left)."""

from __future__ import annotations

from twisted.trial import unittest

from p2pchat.console.input_line import InputLine


def shown(line: InputLine, cols: int = 40) -> str:
    canvas = line.render((cols,), focus=True)
    return "".join(row.decode("utf-8") for row in canvas.text)


class MovingBack(unittest.TestCase):
    def setUp(self) -> None:
        self.line = InputLine(lambda text: True, lambda text, pos: [])
        self.line.insert("x" * 1000)
        shown(self.line)  # drawn at its end

    def test_typing_after_home_in_one_read_is_shown(self) -> None:
        for key in ("home", "R", "R", "R"):  # one read: no drawing in between
            self.line.keypress((40,), key)
        self.assertIn("RRR", shown(self.line))

    def test_moving_back_past_the_view_shows_what_is_left_of_the_cursor(self) -> None:
        line = InputLine(lambda text: True, lambda text, pos: [])
        line.insert("y" * 500 + "MARK" + "z" * 500)
        shown(line)  # drawn at its end
        line.set_edit_pos(504)  # just after MARK, far before the view
        self.assertIn("MARK", shown(line))
