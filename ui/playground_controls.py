"""The Loss playground's controls: every widget lives in the URL under its key, and each
section records how long it took to draw.

A control is seeded from ``?key=…`` on a fresh load or a shared link (ui.state), falls back
to its default when the URL value does not parse or is out of range, and writes its value
back after it is drawn. Teaching mode hides the advanced controls but keeps their values
(from the URL or the session), so a shared link still reproduces the exact view.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import streamlit as st

from ui.state import seed_from_url, url_list, write_url

TIMINGS, TIMINGS_CPU = "_playground_ms", "_playground_cpu_ms"
TEACHING = "teach"  # the toggle's key and URL parameter


def control(widget: Callable[..., Any], label: str, key: str, default: Any, *, parse: Callable[[Any], Any] = str,
            valid: Callable[[Any], bool] | None = None, advanced: bool = False, **kwargs: Any) -> Any:
    """Draw `widget` under `key`, seeded from ?key=… and written back; hidden when advanced in teaching mode."""
    raw = url_list(key) if isinstance(default, list) else st.query_params.get(key)
    try:
        url_value = parse(raw) if raw not in (None, []) else None
    except (TypeError, ValueError):
        url_value = None
    seed_from_url(key, url_value, valid or (lambda v: True), default)
    if advanced and st.session_state.get(TEACHING, False):
        value = st.session_state[key]
    else:
        value = widget(label, key=key, **kwargs)
    write_url(key, key, round(value, 6) if isinstance(value, float) else value)
    return value


def slider(label: str, key: str, low: float, high: float, default: float, step: float, at: Any = st,
           **kwargs: Any) -> Any:
    """A numeric slider in the URL, drawn in container `at`; ints stay ints (type of `default`)."""
    kind = type(default)
    return control(at.slider, label, key, default, parse=lambda s: kind(float(s)),
                   valid=lambda v: isinstance(v, (int, float)) and low <= v <= high,
                   min_value=low, max_value=high, step=step, **kwargs)


def choice(widget: Callable[..., Any], label: str, key: str, options: list, default: Any, **kwargs: Any) -> Any:
    """A select-like widget in the URL: one option, or a list of them when `default` is a list."""
    if isinstance(default, list):
        return control(widget, label, key, default, parse=list, valid=lambda v: set(v) <= set(options),
                       options=options, **kwargs)
    return control(widget, label, key, default, valid=lambda v: v in options, options=options, **kwargs)


def seed_input(key: str, at: Any = st) -> int:
    """A random seed: an advanced control (hidden in teaching mode)."""
    return int(control(at.number_input, "seed", key, 0, parse=int, valid=lambda v: isinstance(v, int),
                       advanced=True, step=1))


def text(widget: Callable[..., Any], label: str, key: str, default: str, **kwargs: Any) -> str:
    """A text box in the URL; at most 2,000 characters come from a link."""
    return control(widget, label, key, default, valid=lambda v: isinstance(v, str) and len(v) <= 2000, **kwargs)


def teaching_toggle() -> bool:
    return control(st.toggle, "Teaching mode (hide advanced controls)", TEACHING, False,
                   parse=lambda s: s == "True", valid=lambda v: isinstance(v, bool))


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Record the section's wall time and this thread's CPU time, in ms (on a busy machine the
    two differ by the time other processes held the cores)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    yield
    st.session_state.setdefault(TIMINGS, {})[name] = 1000 * (time.perf_counter() - wall)
    st.session_state.setdefault(TIMINGS_CPU, {})[name] = 1000 * (time.thread_time() - cpu)
