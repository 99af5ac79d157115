"""View state in the URL: selections that survive a reload and can be shared as a link.

Pattern: a widget's session-state value is seeded from ``st.query_params`` the first time
the page renders it (or when the URL changed under it, e.g. after ``st.switch_page`` with
query params), and the widget's value is written back to the URL after it is drawn.
A copy in session state covers page switches through the sidebar, which clear the URL.
"""
from __future__ import annotations

from typing import Any, Callable, Collection

import streamlit as st

from rmcore.errors import ConfigError
from rmcore.safety import validate_run_id

_SEEN = "_url_seen"  # widget key -> URL value it was last seeded from


def url_list(param: str) -> list[str]:
    """A comma-separated list parameter (?runs=a,b,c); also accepts repeated parameters."""
    values = st.query_params.get_all(param)
    return [item for value in values for item in value.split(",") if item]


def url_run_problem(run_id: str | None, known: Collection[str]) -> str | None:
    """One sentence about a run id from the URL that this page cannot show, else None.

    Links are typed, edited and shared, so an id from the URL is checked like any input:
    an unsafe one ("../x") gets validate_run_id's sentence, an unknown one says so. The
    page then shows another run (seed_from_url) instead of raising.
    """
    if not run_id or run_id in known:
        return None
    try:
        validate_run_id(run_id)
    except ConfigError as err:
        return str(err)
    return f"There is no run {run_id!r} to show here (deleted, or not this kind of run)."


def seed_from_url(key: str, url_value: Any, valid: Callable[[Any], bool], default: Any) -> None:
    """Set st.session_state[key] before its widget is drawn.

    The URL wins when it holds a valid value that this widget has not been seeded from yet
    (fresh load, shared link, switch_page); otherwise the widget keeps its own value, and
    falls back to the session copy or ``default`` when that value is missing or stale.
    """
    seen = st.session_state.setdefault(_SEEN, {})
    url_is_new = url_value not in (None, [], "") and seen.get(key) != url_value
    if url_is_new and valid(url_value):
        st.session_state[key] = url_value
    elif key not in st.session_state or not valid(st.session_state[key]):
        copy = st.session_state.get(f"{key}__copy")
        st.session_state[key] = copy if copy is not None and valid(copy) else default
    seen[key] = url_value


def write_url(key: str, param: str, value: Any) -> None:
    """Put the widget's value in the URL (lists comma-joined) and keep a session copy."""
    st.session_state[f"{key}__copy"] = value
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else ("" if value is None else str(value))
    if text:
        if st.query_params.get(param) != text:
            st.query_params[param] = text
    elif param in st.query_params:
        del st.query_params[param]
    st.session_state.setdefault(_SEEN, {})[key] = _parsed(value)


def _parsed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
