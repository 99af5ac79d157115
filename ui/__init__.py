"""Streamlit helpers shared by the pages: runner access, URL state, forms, the live panel.

Everything here may import Streamlit; ``rmcore`` never does. Pages stay short scripts that
call these helpers and ``rmcore`` readers, and hold no training logic.
"""
