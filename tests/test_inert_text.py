"""Untrusted text is inert (issue item 6): run names, dataset rows, completions, references,
error messages and anything from the URL show as text, never as links, images or HTML.

Two tiers. A source test reads every page and ui module (ast) and fails on any call that
hands Streamlit Markdown, or Plotly a name or title, built from a value that is neither a
literal, a number, md_escape(...) / plotly_escape(...) nor on the short list of the app's own
constants below. AppTest then opens the pages with crafted run names, errors, generations
and query parameters and checks what they draw. tests/test_browser.py checks the same in
Chromium.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
PLOTLY_SOURCES = [ROOT / "rmcore" / "viz.py", ROOT / "rmcore" / "rm_figures.py", *APP_SOURCES]

# Streamlit 1.67 calls whose text renders as Markdown: position and keyword of each such argument.
BODY = ((0, "body"),)
LABEL = ((0, "label"),)
MARKDOWN_ARGS = {
    **dict.fromkeys(("markdown", "caption", "error", "warning", "info", "success", "toast", "header", "subheader",
                     "title"), BODY),
    **dict.fromkeys(("button", "download_button", "link_button", "checkbox", "toggle", "radio", "selectbox",
                     "multiselect", "slider", "select_slider", "number_input", "text_input", "text_area",
                     "file_uploader", "segmented_control", "pills", "date_input", "time_input", "color_picker",
                     "expander", "popover", "status", "spinner"), LABEL),
    "metric": ((0, "label"), (1, "value"), (2, "delta")),
    "progress": ((1, "text"),),
    "page_link": ((1, "label"),),
}
# Options drawn as Markdown (checked in Chromium: selectbox and multiselect options are plain
# text). Their format_func, or without one the options themselves, must be safe.
MARKDOWN_OPTIONS = ("radio", "segmented_control", "pills", "select_slider")
# The app's own text, shown as Markdown unescaped. Keep it short; say where each value comes from.
APP_CONSTANTS = {
    "preset.title", "preset.description", "preset.expect",  # ui/presets.py: the app's one-click experiments
    "POLICY_LOSSES[loss].description",                      # rmcore.algorithms registry: the loss's docs
    "BACKBONES[choice].description",                        # rmcore.backbones registry
    "viz.X_AXES.get",                                       # a literal dict of axis labels
    "LABELS[name]", "TASK_SOURCES",                         # ui/forms.py: literal labels and options
    "label",  # the label parameter of ui/forms.loss_input and ui/rm_form.number: literals at every call
    "name.replace('_', ' ').capitalize()",                  # ui/rm_form.py: a field name of a literal
    "fmt.upper()",                                          # pages/runs.py: "csv" or "parquet"
    "gpu",                                                  # ui/live.py: gpu_text(metrics), numbers only
}
APP_FUNCTIONS = {
    "field_help",    # a config field's docstring: the app's own help text (also the CLI's --help)
    "duration_text",  # "3m 05s", from a number
}
# Plotly trace dicts of the Loss playground: their names are the engine's registry keys
# (REWARD_MODEL_LOSSES, POLICY_LOSSES labels, the KL estimators k1-k3, the advantage estimators).
PLOTLY_CONSTANTS = {"name", "label", "term"}
PLOTLY_TEXT = ("name", "title", "text", "hovertext", "xaxis_title", "yaxis_title")
NUMERIC_SPEC = re.compile(r"[<>=^]?[+\- ]?#?0?\d*[,_]?(\.\d+)?[bdeEfFgGnoxX%]")
NUMBER_FUNCS = {"int", "float", "len", "round", "abs"}


def is_safe(node: ast.AST | None, escape: str, allowed: set[str]) -> bool:
    """True when ``node`` can only produce literal text, numbers, or text passed through ``escape``."""
    if node is None or isinstance(node, (ast.Constant, ast.Compare)):
        return True
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(is_safe(item, escape, allowed) for item in node.elts)
    if isinstance(node, ast.JoinedStr):
        return all(is_safe(part, escape, allowed) for part in node.values)
    if isinstance(node, ast.FormattedValue):
        if node.conversion != -1:  # !r, !s, !a: the text of any object
            return False
        spec = node.format_spec  # a number format (.3f, d, .0%) fails on text: the value is a number
        numeric = (isinstance(spec, ast.JoinedStr) and len(spec.values) == 1
                   and NUMERIC_SPEC.fullmatch(str(getattr(spec.values[0], "value", ""))))
        return bool(numeric) or is_safe(node.value, escape, allowed)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, (ast.Add, ast.Mult)) or isinstance(node.left, (ast.Constant, ast.JoinedStr)):
            return is_safe(node.left, escape, allowed) and is_safe(node.right, escape, allowed)
        return True  # -, /, //, **, % of numbers: a number
    if isinstance(node, ast.IfExp):
        return is_safe(node.body, escape, allowed) and is_safe(node.orelse, escape, allowed)
    if isinstance(node, ast.BoolOp):
        return all(is_safe(value, escape, allowed) for value in node.values)
    if isinstance(node, ast.Lambda):
        return is_safe(node.body, escape, allowed)
    if isinstance(node, (ast.Name, ast.Attribute)) and ast.unparse(node).split(".")[-1] == escape:
        return True  # format_func=md_escape
    if isinstance(node, ast.Call):
        func = ast.unparse(node.func)
        app_text = escape == "md_escape" and func in APP_FUNCTIONS
        if func.split(".")[-1] == escape or func in NUMBER_FUNCS or app_text:
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr == "join" and len(node.args) == 1:
            items = node.args[0]
            return (is_safe(node.func.value, escape, allowed) and isinstance(items, (ast.GeneratorExp, ast.ListComp))
                    and is_safe(items.elt, escape, allowed))
    return ast.unparse(node) in allowed


def argument(call: ast.Call, position: int, keyword: str) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[position] if len(call.args) > position else None


def markdown_problems(source: str, name: str) -> list[str]:
    """Every call of ``source`` that gives Streamlit Markdown built from unescaped data."""
    problems = []
    for call in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)):
        method = call.func.attr if isinstance(call.func, ast.Attribute) else None
        texts = [argument(call, pos, kw) for pos, kw in MARKDOWN_ARGS.get(method, ())]
        if method in MARKDOWN_ARGS:
            texts.append(argument(call, 99, "help"))
        if method in MARKDOWN_OPTIONS:
            texts.append(argument(call, 99, "format_func") or argument(call, 1, "options"))
        if method == "write":
            texts += call.args
        if any(kw.arg == "unsafe_allow_html" for kw in call.keywords):
            problems.append(f"{name}:{call.lineno}: unsafe_allow_html")
        problems += [f"{name}:{call.lineno}: {ast.unparse(text)}" for text in texts
                     if not is_safe(text, "md_escape", APP_CONSTANTS)]
    return problems


def plotly_problems(source: str, name: str) -> list[str]:
    """Every Plotly trace or layout call of ``source`` with a name or title built from unescaped data."""
    problems = []
    for call in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)):
        func = ast.unparse(call.func)
        trace_dict = func == "dict" and any(kw.arg == "type" for kw in call.keywords)
        if not (func.startswith("go.") or func.endswith(".update_layout") or trace_dict):
            continue
        problems += [f"{name}:{call.lineno}: {kw.arg}={ast.unparse(kw.value)}" for kw in call.keywords
                     if kw.arg in PLOTLY_TEXT and not is_safe(kw.value, "plotly_escape",
                                                              PLOTLY_CONSTANTS if trace_dict else set())]
    return problems


def test_every_markdown_call_escapes_its_data() -> None:
    problems = [p for path in APP_SOURCES for p in markdown_problems(path.read_text(), path.relative_to(ROOT))]
    assert not problems, "Markdown built from unescaped data (wrap the value in ui.text.md_escape):\n" + "\n".join(
        problems)


def test_every_plotly_name_and_title_escapes_its_data() -> None:
    problems = [p for path in PLOTLY_SOURCES for p in plotly_problems(path.read_text(), path.relative_to(ROOT))]
    assert not problems, "Plotly text built from unescaped data (wrap it in viz.plotly_escape):\n" + "\n".join(
        problems)


@pytest.mark.parametrize("line", [
    'st.error(f"... {run[\'name\']}")', "st.error(str(err))", "st.caption(name)", 'st.markdown("**" + name + "**")',
    'col.metric("Device", run.get("device") or "—")', 'st.progress(0.5, text=message)',
    'st.toast(f"{x!r}")', 'st.info(" ".join(problems))', 'st.write(row["completion"])',
    'st.page_link("pages/train.py", label=f"{name} · running")', 'st.segmented_control("t", o, format_func=str)',
    'st.select_slider("Step", options=steps)', 'st.caption(f"Step {step}")',
    'st.markdown(md_escape(a) + b)', 'st.markdown(text, unsafe_allow_html=True)'])
def test_source_check_catches_unescaped_data(line) -> None:
    assert markdown_problems(line, "x.py"), line


@pytest.mark.parametrize("line", [
    'st.error(f"**Failed:** {md_escape(run[\'error\'])}")', 'st.caption(f"step {int(s)} · reward {r:.3f}")',
    'st.markdown("**Reference**")', 'st.caption(" · ".join(f"{md_escape(t)} {v:.3f}" for t, v in x))',
    'st.info(f"Queued (#{p:d})" if p else "x")', 'st.segmented_control("t", ["a", "b"])',
    'st.segmented_control("t", terms, format_func=md_escape)', 'st.error(ui.text.md_escape(str(err)))'])
def test_source_check_passes_escaped_data(line) -> None:
    assert not markdown_problems(line, "x.py"), line


def test_plotly_check_catches_unescaped_names() -> None:
    assert plotly_problems("go.Bar(x=[1], name=names.get(r, r))", "x.py")
    assert plotly_problems("fig.update_layout(title=f'{term} reward')", "x.py")
    assert not plotly_problems("go.Bar(x=[1], name=plotly_escape(names.get(r, r)))", "x.py")


@pytest.mark.parametrize("text, escaped", [
    ("temperature must be positive, got 0.0.", "temperature must be positive, got 0.0."),  # plain: unchanged
    ("batch_size (5000) on cuda:1", "batch_size (5000) on cuda:1"),  # "_" inside a word cannot emphasise
    ("[a](b) ![i](j) <b>x</b> & $x$", "\\[a\\](b) !\\[i\\](j) \\<b\\>x\\</b\\> \\& \\$x\\$"),
    ("*a* _b_ `c` ~d~ |e|", "\\*a\\* \\_b\\_ \\`c\\` \\~d\\~ \\|e\\|"),
    ("# h\n1. i\n\n- j", "\\# h 1. i - j"),   # one line; only its start can open a block
    ("1. x", "1\\. x"), ("- x", "\\- x"),
    ("https://e.x www.e.x a@e.x :smile: :red[r]",  # joiners: no autolink, emoji or directive
     "https:\u2060//e.x www\u2060.e.x a\u2060@e.x :\u2060smile: :\u2060red\\[r\\]"),
])
def test_md_escape(text, escaped) -> None:
    from ui.text import md_escape

    assert md_escape(text) == escaped
    assert shown(escaped) == " ".join(text.split())


# --------------------------------------------------------------------------- the pages, with crafted text
EVIL_LINK = "[Session expired: log in](https://evil.example)"
EVIL = f"{EVIL_LINK} ![t](https://evil.example/t.png) <b>x</b>"
EVIL_HTML = '<a href="https://evil.example">click</a> www.evil.example me@evil.example'
EVIL_TERM = "[t](https://evil.example)"
LIVE_MARKUP = re.compile(r"(?<!\\)[\[<]|https?://|www\.|\w@", re.IGNORECASE)


def shown(body: str) -> str:
    """What a Markdown body made by md_escape displays: its text without escapes and word joiners."""
    from ui.text import WORD_JOINER

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", body).replace(WORD_JOINER, "")


def nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from nodes(child)


def markdown_texts(at) -> list[str]:
    """Every string of the page that Streamlit renders as Markdown: bodies, labels, help, metric
    values, progress texts, expander labels, and the options of segmented controls and select
    sliders (st.text, st.code, tables and selectbox/multiselect options are plain text)."""
    texts = []
    for node in (n for root in (at.main, at.sidebar) for n in nodes(root)):
        proto = getattr(node, "proto", None)
        if proto is None or node.type in ("text", "code", "latex", "plotly_chart", "arrow_data_frame", "dataframe"):
            continue
        if node.type == "expandable" or hasattr(proto, "expandable"):
            texts.append(getattr(getattr(proto, "expandable", None), "label", ""))
        texts += [getattr(proto, f) for f in ("body", "label", "help", "text", "delta") if isinstance(
            getattr(proto, f, None), str)]
        if node.type in ("button_group", "select_slider", "radio"):
            texts += [o if isinstance(o, str) else o.content for o in proto.options]
    return [t for t in texts if t]


def assert_inert(at, *shown_texts: str) -> None:
    """No live link, image or HTML in any Markdown of the page, and each text displayed as typed."""
    from ui.text import md_escape

    assert not at.exception, [e.value for e in at.exception]
    texts = markdown_texts(at)
    assert not [t for t in texts if LIVE_MARKUP.search(t)], [t for t in texts if LIVE_MARKUP.search(t)]
    for text in shown_texts:
        assert any(md_escape(text) in t and text in shown(t) for t in texts), (text, texts)


def plotly_names(at) -> list[str]:
    import json

    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    return [str(text) for spec in specs for text in (
        *(t.get("name", "") for t in spec["data"]), *(x for t in spec["data"] for x in t.get("x", [])
                                                      if isinstance(x, str)),
        spec["layout"].get("title", {}).get("text", ""))]


def app(page: str, **query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update(query)
    return at.switch_page(page).run()


def crafted_run(store, name: str, status: str = "done", kind: str = "policy", **fields) -> str:
    """A run written straight into the store whose name, generations and reward term are crafted."""
    from rmcore.config import RewardModelConfig, TrainConfig
    from rmcore.events import StepReport

    config = (TrainConfig(steps=2) if kind == "policy" else RewardModelConfig(steps=2)).to_dict()
    run_id = store.create_run(kind=kind, config=config, name=name, total_steps=2)
    store.set_status(run_id, "running")
    for step in (1, 2):
        metrics = {"loss/total": 1.0 / step, "reward/total": 0.1 * step, f"reward/{EVIL_TERM}": 0.2,
                   "eval/accuracy": 0.8, f"eval/accuracy/{EVIL_TERM}": 0.7, "eval/ece": 0.1}
        store.record_step(run_id, StepReport(
            step, 2, metrics, sample_rewards={"total": [0.1, 0.2], EVIL_TERM: [0.3, 0.4], "chosen": [1.0],
                                              "rejected": [0.0]},
            generations=[{"split": "eval", "prompt": EVIL, "completion": EVIL, "reference": EVIL,
                          "reward": 0.5, "terms": {EVIL_TERM: 0.5}}]), time=1000.0 + step)
    store.set_status(run_id, status, **fields)
    return run_id


@pytest.mark.usefixtures("fresh_runner")
@pytest.mark.parametrize("page, query, literal", [
    ("pages/train.py", {"run": EVIL_LINK}, EVIL_LINK),
    ("pages/train.py", {"run": "www.evil.example"}, "www.evil.example"),  # a valid id: "no run ..."
    ("pages/compare.py", {"runs": f"{EVIL_LINK},me@evil.example", "metric": EVIL, "x": EVIL}, EVIL_LINK),
    ("pages/reward_model.py", {"run": EVIL, "compare": EVIL_LINK}, None),
    ("pages/playground.py", {"kl_family": "Categoricals", "kl_lp": EVIL_LINK}, EVIL_LINK),
])
def test_crafted_query_params_show_as_text(page, query, literal, runs_dir) -> None:
    from rmcore.store import RunStore

    store = RunStore(runs_dir)
    crafted_run(store, "plain")
    crafted_run(store, "plain rm", kind="reward_model")
    at = app(page, **query)
    if page == "pages/playground.py":  # its own explanations quote intervals ("[1 − ε, 1 + ε]"): its errors only
        assert not at.exception and [shown(e.value) for e in at.error] == [
            f"logits of p must be numbers separated by commas, got {EVIL_LINK!r}."]
        assert not LIVE_MARKUP.search(at.error[0].value)
        return
    assert_inert(at, *([literal] if literal else []))
    if literal:
        assert any(literal in shown(e.value) for e in at.error)


@pytest.mark.usefixtures("fresh_runner")
def test_crafted_run_name_error_and_generations_on_train(runs_dir, monkeypatch) -> None:
    from rmcore.runner import Runner
    from rmcore.store import RunStore

    store = RunStore(runs_dir)
    failed = crafted_run(store, EVIL, status="failed", error=EVIL, traceback=f"Traceback\n{EVIL}")
    stopped = crafted_run(store, EVIL_HTML, status="stopped", message=EVIL)
    # The sidebar lists live runs by name: pretend the failed one is running.
    monkeypatch.setattr(Runner, "active", lambda self: [{"run_id": failed, "status": "running", "device": "cpu",
                                                        "position": 0}])
    at = app("pages/train.py", run=failed)
    assert_inert(at, EVIL, EVIL_TERM)                        # the banner; the reward-term picker
    assert at.error[0].value.startswith("**This run failed:** ") and EVIL in shown(at.error[0].value)
    assert EVIL in at.code[0].value                          # the traceback, verbatim in a code block
    assert at.selectbox(key="train_run").options == [f"{EVIL_HTML} · {stopped}", f"{EVIL} · {failed}"]
    labels = [link.proto.label for link in at.sidebar.get("page_link")]
    assert len(labels) == 1 and EVIL in shown(labels[0]) and not LIVE_MARKUP.search(labels[0])
    assert all("<" not in name for name in plotly_names(at))
    at = app("pages/train.py", run=stopped)
    assert_inert(at, EVIL)                                   # the stopped run's message
    assert at.warning and EVIL in shown(at.warning[0].value)


@pytest.mark.usefixtures("fresh_runner")
def test_crafted_names_and_eval_answers_on_compare_runs_and_reward_model(runs_dir) -> None:
    import html

    from rmcore.store import RunStore

    store = RunStore(runs_dir)
    ids = [crafted_run(store, EVIL), crafted_run(store, EVIL_HTML)]
    at = app("pages/compare.py", runs=",".join(ids), metric="reward/total")
    assert_inert(at, EVIL, EVIL_HTML, f"{EVIL_TERM} 0.500")  # card titles, the answer, the reward terms
    assert EVIL in [t.value for t in at.text]                # the prompt and the reference, verbatim
    names = plotly_names(at)
    assert all("<" not in name for name in names)            # escaped: Plotly draws them as typed
    assert {EVIL, EVIL_HTML} <= {html.unescape(name) for name in names}

    at = app("pages/runs.py")
    assert_inert(at)
    assert at.multiselect(key="runs_pick").options == [f"{EVIL_HTML} · {ids[1]}", f"{EVIL} · {ids[0]}"]

    rm = crafted_run(store, EVIL, kind="reward_model")
    at = app("pages/reward_model.py", run=rm, compare=rm)
    assert_inert(at)
    names = plotly_names(at)
    assert all("<" not in name for name in names) and EVIL_TERM in names  # corruption types on the x axis
    assert EVIL in {html.unescape(name) for name in names}
