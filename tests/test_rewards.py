"""Reward terms: hand-computed values, the reference packages, and naive per-example loops."""
import math
import pickle

import pytest
import sacrebleu
import torch
from rouge_score import rouge_scorer

from rmcore.errors import ConfigError, TrainingError
from rmcore.rewards import (REWARD_TERMS, Bleu, CompositeReward, Diversity, Fluency, LengthPenalty, LMScorer,
                            RewardModelScorer, Rouge, build_composite, distinct_n, fluency_from_logprobs,
                            self_bleu, validate_weights)

PAIRS = [  # (completion, reference)
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("a cat was sitting on a mat", "the cat sat on the mat"),
    ("Shares of Acme rose 5% after earnings.", "Acme shares rose 5 percent after strong earnings."),
    ("rain expected tomorrow in the north", "heavy rain is expected in the north tomorrow"),
    ("completely unrelated words here", "the cat sat on the mat"),
]


def _call(term, completions, references=None):
    references = references if references is not None else [""] * len(completions)
    return term(["prompt"] * len(completions), completions, references)


# --- ROUGE ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL"])
def test_rouge_matches_rouge_score_package(rouge_type):
    completions, references = zip(*PAIRS)
    got = _call(Rouge(rouge_type), list(completions), list(references))
    scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=True)
    want = [scorer.score(ref, hyp)[rouge_type].fmeasure for hyp, ref in PAIRS]
    assert got == pytest.approx(want, abs=1e-12)
    assert all(type(value) is float for value in got)
    assert got[0] == pytest.approx(1.0) and got[-1] == 0.0


def test_rouge_l_hand_computed():
    # reference "the cat sat on the mat" (6 words), completion "the cat on mat" (4 words):
    # LCS = "the cat on mat" = 4, so P = 4/4 = 1, R = 4/6 = 2/3,
    # F1 = 2·P·R / (P + R) = (4/3) / (5/3) = 0.8.
    assert _call(Rouge("rougeL"), ["the cat on mat"], ["the cat sat on the mat"]) == pytest.approx([0.8])
    # rouge2 on the same pair: bigrams of the completion {the cat, cat on, on mat} share only
    # "the cat" with the reference's 5 bigrams: P = 1/3, R = 1/5, F1 = (2/15) / (8/15) = 0.25.
    assert _call(Rouge("rouge2"), ["the cat on mat"], ["the cat sat on the mat"]) == pytest.approx([0.25])


def test_rouge_empty_completion_and_bad_type():
    assert _call(Rouge(), ["", "   "], ["the cat", "the cat"]) == [0.0, 0.0]
    with pytest.raises(ValueError, match="rouge1, rouge2, rougeL"):
        Rouge("rougeLsum")


# --- BLEU, self-BLEU ---------------------------------------------------------------------

def test_bleu_matches_sacrebleu():
    completions, references = zip(*PAIRS)
    got = _call(Bleu(), list(completions), list(references))
    want = [sacrebleu.sentence_bleu(hyp, [ref]).score / 100 for hyp, ref in PAIRS]
    assert got == pytest.approx(want, abs=1e-12)
    assert all(0.0 <= value <= 1.0 for value in got)
    assert got[0] == 1.0  # clamped: sacrebleu gives 100.00000000000004


def test_self_bleu_identities_and_naive_loop():
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(1.0, abs=1e-12)
    assert self_bleu(["a b c d", "e f g h", "i j k l"]) == pytest.approx(0.0, abs=1e-12)
    assert self_bleu(["only one"]) == 0.0 and self_bleu([]) == 0.0
    texts = [hyp for hyp, _ in PAIRS[1:4]]
    naive = sum(sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1:]).score / 100
                for i, t in enumerate(texts)) / len(texts)
    assert self_bleu(texts) == pytest.approx(naive, abs=1e-12)


# --- distinct-n, length ----------------------------------------------------------------------

def test_diversity_hand_values():
    # "a a a a": bigrams (a a) ×3, 1 unique -> 1/3. "a b a b": ab, ba, ab -> 2/3.
    assert _call(Diversity(2), ["a a a a", "a b a b", "A b C d"]) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert _call(Diversity(2), ["", "one"]) == [0.0, 0.0]   # no bigram: no credit
    assert _call(Diversity(1), ["one", "a A a b"]) == [1.0, 0.5]
    with pytest.raises(ConfigError):
        Diversity(0)


def test_distinct_n_pools_without_crossing_texts():
    # Pooled bigrams: ab, ab, bc -> 2 unique / 3. Joining the texts would give 4/5 instead.
    assert distinct_n(["a b", "a b", "b c"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a b c", "x"], 1) == pytest.approx(1.0)
    assert distinct_n(["a", ""], 2) == 0.0 and distinct_n([], 2) == 0.0


def test_length_penalty_hand_values():
    got = _call(LengthPenalty(target=4), ["one two three four", "one two", "", " ".join(["w"] * 10)])
    assert got == [0.0, -0.5, -1.0, -1.5]
    with pytest.raises(ConfigError):
        LengthPenalty(0)


# --- fluency and model scorers ----------------------------------------------------------------

def test_fluency_from_logprobs_hand_values():
    ref_logprobs = torch.tensor([[-1.0, -3.0, -math.inf],
                                 [-0.5, math.nan, math.nan],
                                 [-2.0, -2.0, -2.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    got = fluency_from_logprobs(ref_logprobs, mask)
    assert got == pytest.approx([math.exp(-2.0), math.exp(-0.5), 0.0], abs=1e-12)
    assert all(type(value) is float for value in got)


def test_fluency_wraps_mean_logprob_scorer():
    fluency = Fluency(lambda prompts, completions: [-1.0, 0.0, -math.inf][:len(prompts)])
    assert _call(fluency, ["x", "y", ""]) == [math.exp(-1.0), 1.0, 0.0]


SENTENCES = ["the cat sat on the mat", "acme shares rose five percent after earnings",
             "heavy rain is expected in the north tomorrow", "the team won the final match"]


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES, trainer)
    # No pad token on purpose: the scorers must fall back to EOS / the model's pad id.
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


def _gpt2_config(tokenizer, **kwargs):
    from transformers import GPT2Config

    torch.manual_seed(0)
    return GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tokenizer), **kwargs)


def _naive_mean_logprob(model, prompt_ids, completion_ids):
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    total = sum(logprobs[len(prompt_ids) + t - 1, token] for t, token in enumerate(completion_ids))
    return float(total / len(completion_ids))


def test_lm_scorer_matches_naive_forward(tokenizer):
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(_gpt2_config(tokenizer))
    prompts = ["the cat", "heavy rain is expected in the north", "", "acme shares"]
    completions = [" sat on the mat", " tomorrow", "the team won", " rose five percent after earnings"]
    got = LMScorer(model, tokenizer, "cpu", batch_size=3)(prompts, completions)  # puts model in eval
    assert not model.training
    eos = tokenizer.eos_token_id
    want = [_naive_mean_logprob(model, tokenizer(p)["input_ids"] or [eos],
                                tokenizer(c, add_special_tokens=False)["input_ids"])
            for p, c in zip(prompts, completions)]
    assert got == pytest.approx(want, abs=1e-5)
    assert all(value < 0 for value in got)
    assert LMScorer(model, tokenizer, "cpu")(["the cat"], [""]) == [-math.inf]


def test_lm_scorer_drops_prompt_tokens_beyond_context(tokenizer):
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(_gpt2_config(tokenizer, n_positions=12))
    prompt, completion = " ".join(SENTENCES), " the cat sat"
    prompt_ids = tokenizer(prompt)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert len(prompt_ids) + len(completion_ids) > 12
    got = LMScorer(model, tokenizer, "cpu")([prompt], [completion])
    kept_prompt = prompt_ids[-(12 - len(completion_ids)):]
    assert got == pytest.approx([_naive_mean_logprob(model, kept_prompt, completion_ids)], abs=1e-5)


@pytest.mark.parametrize("pad_token_id", ["eos", None])
def test_reward_model_scorer_matches_naive_forward(tokenizer, pad_token_id):
    from transformers import GPT2ForSequenceClassification

    pad = tokenizer.eos_token_id if pad_token_id == "eos" else None
    model = GPT2ForSequenceClassification(_gpt2_config(tokenizer, num_labels=1, pad_token_id=pad))
    prompts = ["the cat", "heavy rain", "acme shares rose", "the"]
    completions = [" sat on the mat", " is expected", " five percent after earnings", " team won the final match"]
    got = RewardModelScorer(model, tokenizer, "cpu", batch_size=3)(prompts, completions, [""] * 4)
    with torch.no_grad():
        want = [float(model(input_ids=torch.tensor([tokenizer(p + c)["input_ids"]])).logits[0, 0])
                for p, c in zip(prompts, completions)]
    assert got == pytest.approx(want, abs=1e-5)
    assert all(type(value) is float for value in got)
    assert len(set(got)) == 4  # a random head gives distinct scores: the order was restored


# --- composite ---------------------------------------------------------------------------------

def _boom(prompts, completions, references):
    raise RuntimeError("boom")


def test_registry_names():
    assert list(REWARD_TERMS) == ["rouge", "fluency", "diversity", "rm", "bleu", "length"]
    assert [REWARD_TERMS[n].symbol for n in ("rouge", "fluency", "diversity", "rm")] == ["α", "β", "γ", "δ"]
    assert REWARD_TERMS["rouge"].needs_reference and not REWARD_TERMS["fluency"].needs_reference


def test_composite_weighted_sum_equals_manual_sum():
    weights = {"rouge": 0.7, "bleu": 0.2, "diversity": 0.3, "length": -0.1, "fluency": 0.0}
    completions, references = (list(x) for x in zip(*PAIRS))
    reward = build_composite(weights, rouge_type="rouge1", distinct_n=1, target_length=5)
    out = reward(["p"] * len(PAIRS), completions, references)
    parts = {"rouge": _call(Rouge("rouge1"), completions, references),
             "bleu": _call(Bleu(), completions, references),
             "diversity": _call(Diversity(1), completions), "length": _call(LengthPenalty(5), completions)}
    manual = [sum(weights[name] * parts[name][b] for name in parts) for b in range(len(PAIRS))]
    assert out.total == pytest.approx(manual, abs=1e-12)
    assert set(out.terms) == set(parts) and out.terms["rouge"] == parts["rouge"]
    assert "fluency" not in out.weights


def test_zero_weight_terms_are_not_computed():
    reward = CompositeReward({"rm": 0.0, "diversity": 1.0}, {"rm": _boom, "diversity": Diversity(2)})
    out = reward(["p"], ["a b a b"], ["r"])
    assert out.total == pytest.approx([2 / 3]) and list(out.terms) == ["diversity"]


def test_precomputed_values_are_used():
    reward = CompositeReward({"fluency": 0.5, "length": 1.0}, {"fluency": _boom, "length": LengthPenalty(2)})
    out = reward(["p", "p"], ["a b", "a"], ["", ""], precomputed={"fluency": [0.2, 0.6]})
    assert out.terms["fluency"] == [0.2, 0.6]
    assert out.total == pytest.approx([0.1, 0.3 - 0.5])
    built = build_composite({"fluency": 1.0})
    with pytest.raises(TrainingError, match="'fluency'"):
        built(["p"], ["a"], ["r"])
    assert built(["p"], ["a"], ["r"], precomputed={"fluency": [0.25]}).total == [0.25]


def test_raising_or_bad_term_is_a_training_error():
    reward = CompositeReward({"rm": 1.0}, {"rm": _boom})
    with pytest.raises(TrainingError, match="Reward term 'rm' failed: boom") as info:
        reward(["p"], ["a"], ["r"])
    assert isinstance(info.value.__cause__, RuntimeError)
    nan_term = CompositeReward({"rm": 1.0}, {"rm": lambda p, c, r: [math.nan]})
    with pytest.raises(TrainingError, match="'rm'"):
        nan_term(["p"], ["a"], ["r"])
    with pytest.raises(TrainingError, match="differ in length"):
        CompositeReward({"length": 1.0}, {"length": LengthPenalty(2)})(["p"], ["a", "b"], ["r", "r"])


def test_build_composite_uses_given_scorers():
    reward = build_composite({"fluency": 1.0, "rm": 2.0}, fluency_scorer=lambda p, c: [-1.0] * len(c),
                             rm_scorer=lambda p, c, r: [0.5] * len(c))
    assert reward(["p"], ["a"], ["r"]).total == pytest.approx([math.exp(-1.0) + 1.0])
    with pytest.raises(ConfigError, match="δ"):
        build_composite({"rm": 1.0})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "abc", True, None])
def test_validate_weights_rejects_non_finite_and_non_numbers(bad):
    with pytest.raises(ConfigError, match="'diversity'"):
        validate_weights({"rouge": 1.0, "diversity": bad}, needs_reward=True)


def test_validate_weights_zero_and_unknown():
    message = ("All reward weights are zero; set at least one of α, β, γ, δ (or BLEU/length) "
               "for a loss that learns from a reward.")
    with pytest.raises(ConfigError) as info:
        validate_weights({"rouge": 0.0, "fluency": 0}, needs_reward=True)
    assert str(info.value) == message
    assert validate_weights({"rouge": 0, "length": -1}, needs_reward=False) == {"rouge": 0.0, "length": -1.0}
    with pytest.raises(ConfigError, match="rouge, fluency, diversity, rm, bleu, length"):
        validate_weights({"rogue": 1.0}, needs_reward=True)


def test_text_rewards_pickle():
    reward = build_composite({"rouge": 1.0, "bleu": 1.0, "diversity": 1.0, "length": 1.0})
    clone = pickle.loads(pickle.dumps(reward))
    args = (["p"], ["the cat sat"], ["the cat sat down"])
    assert clone(*args).total == reward(*args).total
