"""rmcore app entry point: `streamlit run app.py` (or `make run`).

Page config, navigation and the sidebar live here; each page is a short script under
pages/. The page list is ui/nav.py.
"""
import sys
from pathlib import Path

import streamlit as st

# `streamlit run app.py` puts this folder on sys.path; AppTest and other launchers may not.
ROOT = str(Path(__file__).resolve().parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ui.nav import available_pages  # noqa: E402
from ui.runtime import sidebar  # noqa: E402

st.set_page_config(page_title="rmcore: RL for language models", page_icon=":material/model_training:",
                   layout="wide")
pages = [st.Page(p.path, title=p.title, icon=p.icon, default=p.default) for p in available_pages()]
page = st.navigation(pages)
sidebar()
page.run()
