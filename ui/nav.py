"""The app's pages, in sidebar order: app.py builds ``st.navigation`` from this list.

To add a page, append a NavPage (or list it in OPTIONAL_PAGES: it appears once its file
exists, so a page landing in another change needs no edit here).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    NavPage("pages/compare.py", "Compare", ":material/stacked_line_chart:"),
    NavPage("pages/runs.py", "Runs", ":material/table_rows:"),
]

# Pages owned by other parts of the project; listed as soon as their file is there.
OPTIONAL_PAGES: list[tuple[int, NavPage]] = [
    (2, NavPage("pages/reward_model.py", "Reward model", ":material/balance:")),
    (99, NavPage("pages/playground.py", "Loss playground", ":material/functions:")),
]


def available_pages() -> list[NavPage]:
    """PAGES plus the optional pages whose files exist, each at its intended position."""
    pages = list(PAGES)
    for position, page in OPTIONAL_PAGES:
        if (APP_ROOT / page.path).is_file():
            pages.insert(min(position, len(pages)), page)
    return pages
