"""Every Plotly chart of the app goes through `plotly_chart`: one config, one look.

``theme=None`` with the figure's own template (rmcore.viz.TEMPLATE) rather than Streamlit's
Plotly theme, which the browser merges into each figure on every draw (see viz._template).
"""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from rmcore.viz import TEMPLATE

PLOTLY_CONFIG = {"displaylogo": False}


def plotly_chart(fig: go.Figure, key: str, container: Any = None) -> None:
    """Draw ``fig`` full width in ``container`` (default: where the caller is)."""
    fig.update_layout(template=TEMPLATE)
    (st if container is None else container).plotly_chart(fig, key=key, width="stretch", config=PLOTLY_CONFIG, theme=None)
