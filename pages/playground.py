"""Loss Playground (issue 5): what every loss does, exactly and instantly, for teaching.

Eight sections, each a fragment (a slider reruns only its own section) with its formula, its
controls, a live chart and a few plain sentences: ui/playground_sections.py draws the loss
curves of reward models, PPO and the preference losses (1, 2, 5), ui/playground_policy.py what
GRPO's successors change (3: the length normaliser, 4: the ratio clip), ui/playground_sampling.py
the sampled estimators and the reward (6–8). All numbers come from rmcore.playground and
rmcore.playground_policy, which call the engine's own losses, KL estimators, advantages and
rewards. Every control lives in the URL under its key, so a link reopens the
exact view; teaching mode hides the advanced controls (their values still come from the
URL). Each section records its wall and CPU render time in st.session_state["_playground_ms"]
and ["_playground_cpu_ms"] (the test reads them; the page lists them at the end).
"""
import pandas as pd
import streamlit as st

from ui.nav import require_entrypoint
from ui.playground_controls import TIMINGS, TIMINGS_CPU, teaching_toggle
from ui.playground_policy import length_section, ratio_section
from ui.playground_sampling import bandit_section, kl_section, reward_section
from ui.playground_sections import ppo_section, preference_section, rm_section

require_entrypoint()

st.title("Loss playground")
st.caption("Every curve is computed by the engine's own loss, KL, advantage and reward functions; move a control "
           "and only its section recomputes. The URL holds every control: copy it to share this exact view.")
teaching_toggle()
for section in (rm_section, ppo_section, length_section, ratio_section, preference_section, kl_section, bandit_section,
                reward_section):
    section()
    st.divider()
with st.expander("Render time of each section (budget: 300 ms)"):
    st.dataframe(pd.DataFrame({"wall ms": st.session_state.get(TIMINGS, {}),
                               "CPU ms": st.session_state.get(TIMINGS_CPU, {})}).round(1), width="stretch")
