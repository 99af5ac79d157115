"""The app's pages, in sidebar order: app.py builds ``st.navigation`` from this list.

To add a page, add a NavPage to PAGES, and make ``require_entrypoint()`` the page's first call.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

APP_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NavPage:
    path: str                 # relative to the app root, e.g. "pages/train.py"
    title: str
    icon: str
    default: bool = False


PAGES: list[NavPage] = [
    NavPage("pages/home.py", "Home", ":material/home:", default=True),
    NavPage("pages/train.py", "Train", ":material/model_training:"),
    NavPage("pages/reward_model.py", "Reward model", ":material/balance:"),
    NavPage("pages/compare.py", "Compare", ":material/stacked_line_chart:"),
    NavPage("pages/runs.py", "Runs", ":material/table_rows:"),
    NavPage("pages/playground.py", "Loss playground", ":material/functions:"),
]


# True while main() runs the chosen page: tells a page it runs inside the navigation.
_ENTRY = threading.local()


def main() -> None:
    """The whole entry point (app.py): page config, navigation, sidebar, then the page."""
    from ui.runtime import sidebar

    st.set_page_config(page_title="rmcore: RL for language models", page_icon=":material/model_training:",
                       layout="wide")
    page = st.navigation([st.Page(str(APP_ROOT / p.path), title=p.title, icon=p.icon, default=p.default)
                          for p in PAGES])
    sidebar()
    _ENTRY.active = True
    try:
        page.run()
    finally:
        _ENTRY.active = False


def require_entrypoint() -> None:
    """First line of every page: make sure the entry point (config, sidebar) wraps it.

    A folder named pages/ puts Streamlit in its legacy multipage mode until a script calls
    st.navigation, and AppTest re-arms that mode before every run: then Streamlit runs
    pages/x.py alone (a fresh server's first request for /compare, or any AppTest run).
    Running the entry point from here, in the same script run, draws the page inside it
    and keeps that run's widget events (a clicked button); st.stop() then ends the outer,
    legacy run of this page, which has drawn nothing yet.
    """
    if getattr(_ENTRY, "active", False):
        return
    main()
    st.stop()
