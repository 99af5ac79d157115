"""rmcore app entry point: `streamlit run app.py` (or `make run`).

Page config, navigation and the sidebar are ui.nav.main(); each page is a short script
under pages/, listed in ui/nav.py.
"""
import sys
from pathlib import Path

# `streamlit run app.py` puts this folder on sys.path; AppTest and other launchers may not.
ROOT = str(Path(__file__).resolve().parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ui.nav import main  # noqa: E402

main()
