"""Home: what this is, the reward, and one-click experiments."""
import streamlit as st

from rmcore.errors import RmcoreError
from ui.nav import require_entrypoint
from ui.presets import PRESETS
from ui.runtime import runner
from ui.text import md_escape

require_entrypoint()

st.title("rmcore")
st.markdown(
    "Fine-tune a language model with reinforcement learning, **live, in your browser**.  \n"
    "Pick a backbone, a task and a loss (REINFORCE, PPO, GRPO, RLOO, DPO…), launch, and watch "
    "the loss, the rewards, their distribution and the model's own samples change step by step.  \n"
    "Then compare runs side by side, or train a reward model and plug it into the reward.")
st.markdown("**The reward** of a sampled summary *y* for a document *x* with reference *y\\**:")
st.latex(r"r(y) = \alpha\,\mathrm{ROUGE}(y, y^*) + \beta\,\mathrm{Fluency}(y) + \gamma\,\mathrm{Diversity}(y)"
         r" + \delta\,\mathrm{RM}(x, y) \;-\; \text{KL penalty to the starting model}")
st.caption("Fluency = exp(mean token log-prob under the frozen starting model); Diversity = distinct-2 "
           "of the sample; RM = a reward model you trained. Every term is logged on its own.")

st.subheader("One-click experiments")
st.caption("Each queues a few small runs on the built-in task and model (no downloads), then opens "
           "Compare. The first run on a fresh machine also builds the built-in model (a few minutes).")
columns = st.columns(len(PRESETS))
for column, preset in zip(columns, PRESETS):
    with column.container(border=True):
        st.markdown(f"**{preset.title}**")
        st.caption(preset.description)
        st.caption(f"What you should see: {preset.expect}")
        if st.button("Launch", key=f"preset-{preset.key}", type="primary"):
            try:
                configs = preset.configs()
                run_ids = runner().submit_many(configs, [cfg.name for cfg in configs])
            except RmcoreError as err:
                st.error(md_escape(str(err)))
            else:
                st.switch_page("pages/compare.py", query_params={"runs": ",".join(run_ids)})

left, right = st.columns(2)
left.page_link("pages/train.py", label="Configure your own run", icon=":material/tune:")
right.page_link("pages/runs.py", label="All runs", icon=":material/table_rows:")
