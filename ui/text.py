"""Untrusted text shown as text: run names, dataset rows, completions, errors, the URL.

Streamlit renders Markdown in st.markdown, st.caption, st.error and the other message boxes,
in widget, expander, page-link and metric labels, metric values, progress texts, and the
options of radios, segmented controls and select sliders (selectbox and multiselect options
are plain text). A run named ``[Session expired: log in](https://evil.example)`` would
otherwise draw a live link inside the app's own banner. So every value that did not come
from the app itself goes through ``md_escape`` on its way to Markdown, Plotly names through
rmcore.viz.plotly_escape, and blocks of raw text go to ``st.text`` / ``st.code``.
tests/test_inert_text.py checks every call site; tests/test_browser.py checks Chromium.
"""
from __future__ import annotations

import re
from typing import Any

WORD_JOINER = "\u2060"  # invisible, no width, no line break
# Characters that start a construct anywhere in a line: emphasis and strikethrough (* _ ~),
# code (`), links and images ([ ]), HTML and autolinks (< >), entities (&), math ($),
# tables (|) and escapes (\). A backslash makes each literal (CommonMark §2.4). An "_"
# between two letters or digits cannot open or close emphasis, so "batch_size" stays as is.
_ANYWHERE = re.compile(r"[\\`*~\[\]<>&$|]|(?<![^\W_])_|_(?![^\W_])")
# Characters that only act at the start of a line (headings, lists, quotes, thematic breaks);
# line breaks become spaces, so that is the start of the value.
_LINE_START = re.compile(r"^([#+=-]|\d{1,9}(?=[.)]))")
# GFM's literal autolinks (https://…, www.…, a@b.c) and Streamlit's shortcodes (:smile:,
# :material/home:, :red[…]) are found in the text *after* backslashes are resolved, so an
# escape does not stop them. A word joiner after such a ":", before "@" and after "www" does.
_JOINTS = re.compile(r"(?<=:)(?=[A-Za-z/+-])|(?=@)|(?i:(?<=www))(?=\.)")
_BREAKS = re.compile(r"\s*[\r\n\t\f\v]+\s*")


def md_escape(value: Any) -> str:
    """``value`` as Markdown that renders as exactly its text, on one line.

    Line breaks become spaces: in a sentence or a label they would start a heading, a list
    or a code block. Show text whose lines matter with st.text or st.code instead. Plain
    sentences come out unchanged ("temperature must be positive, got 0.0.").

    >>> md_escape("[x](https://e.example) **hi**")
    '\\\\[x\\\\](https:\\u2060//e.example) \\\\*\\\\*hi\\\\*\\\\*'
    """
    text = _BREAKS.sub(" ", str(value)).strip()
    text = _ANYWHERE.sub(lambda m: "\\" + m.group(0), text)
    text = _LINE_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0), text)
    return _JOINTS.sub(WORD_JOINER, text)
