"""Progress lines: on a terminal they rewrite one status line; otherwise nothing is written."""

import io

from p2pdetect.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line():
    out = _Tty()
    p = Progress(stream=out)
    p.update("extract: 1/2 captures")
    p.update("extract: 2/2 captures")
    p.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("2/2 captures\n")


def test_progress_is_quiet_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(stream=out)
    p.update("extract: 1/2 captures")
    p.close()
    assert out.getvalue() == ""
