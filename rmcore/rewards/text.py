"""Reward terms computed from text alone: ROUGE, BLEU, diversity and length.

Each parameterised reward is a small callable class (picklable, TRL ``rewards/`` style):

    reward(prompts: list[str], completions: list[str], references: list[str]) -> list[float]

The batch-level metrics the trainer logs (``distinct_n``, ``self_bleu``) are plain functions.
rouge_score and sacrebleu are imported inside the classes so importing rmcore stays light.
"""
from __future__ import annotations

from typing import Any

from rmcore.errors import ConfigError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _sentence_bleu_metric() -> Any:
    """One sacrebleu BLEU object configured exactly as ``sacrebleu.sentence_bleu``'s defaults.

    ``sentence_bleu`` builds a fresh ``BLEU`` on every call; we build it once and reuse it.
    Defaults: 13a tokenizer, case-sensitive, 'exp' smoothing, effective order on.
    """
    from sacrebleu.metrics import BLEU

    return BLEU(smooth_method="exp", effective_order=True)


def _bleu01(metric: Any, hypothesis: str, references: list[str]) -> float:
    # sacrebleu reports 0..100; a perfect match comes out as 100.00000000000004 from the
    # exp/log round trip, so clamp to keep the documented [0, 1] range exact.
    return min(1.0, metric.sentence_score(hypothesis, references).score / 100.0)


class Rouge:
    """ROUGE F1 of the completion against the reference, via Google's ``rouge-score``.

        r(y) = F1 = 2·P·R / (P + R),  P = overlap / |y|,  R = overlap / |y*|

    where the overlap counts shared unigrams (rouge1), bigrams (rouge2) or the longest common
    subsequence (rougeL) of the tokenised texts. An empty completion scores 0.0.
    Ref: Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries".

    Example:
        >>> Rouge("rouge1")(["p"], ["the cat sat"], ["the cat sat down"])
        [0.8571428571428571]
    """

    def __init__(self, rouge_type: str = "rougeL", use_stemmer: bool = True) -> None:
        if rouge_type not in ROUGE_TYPES:
            raise ConfigError(f"rouge_type must be one of {', '.join(ROUGE_TYPES)}; got {rouge_type!r}.")
        from rouge_score import rouge_scorer

        self.rouge_type = rouge_type
        self.use_stemmer = use_stemmer
        self._scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)

    def __call__(self, prompts: list[str], completions: list[str], references: list[str]) -> list[float]:
        scores = []
        for completion, reference in zip(completions, references, strict=True):
            if not completion.strip():
                scores.append(0.0)
                continue
            # rouge-score's argument order is (target, prediction).
            score = self._scorer.score(reference, completion)[self.rouge_type]
            scores.append(float(score.fmeasure))
        return scores


class Bleu:
    """Sentence BLEU of the completion against the reference, via ``sacrebleu``, in [0, 1].

        r(y) = BP · exp( (1/N) Σ_{n=1..N} log p_n ) ,  BP = min(1, exp(1 - |y*| / |y|))

    Same numbers as ``sacrebleu.sentence_bleu(y, [y*]).score / 100``: 13a tokenisation,
    case-sensitive, and its default smoothing 'exp' (Chen & Cherry 2014, method 3, as in
    mteval-v13a): an order n with no matching n-gram gets p_n = 1 / (2^k · total_n), k
    counting the zero-match orders so far; effective order is on, so N stops at the longest
    n-gram the hypothesis has. No match at any order gives 0.
    Ref: Papineni et al. (2002); Post (2018), "A Call for Clarity in Reporting BLEU Scores".

    Example:
        >>> Bleu()(["p"], ["the cat sat on the mat"], ["the cat sat on the mat"])
        [1.0]
    """

    def __init__(self) -> None:
        self._metric = _sentence_bleu_metric()

    def __call__(self, prompts: list[str], completions: list[str], references: list[str]) -> list[float]:
        return [_bleu01(self._metric, completion, [reference])
                for completion, reference in zip(completions, references, strict=True)]


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    """Word n-grams of one text: lowercased, whitespace-split; [] when it has fewer than n words."""
    words = text.lower().split()
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"distinct-n needs a whole number n of at least 1, got {n!r}.")


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Batch distinct-n: unique n-grams / all n-grams, pooled over every text, in [0, 1].

        distinct-n = |∪_i ngrams(y_i)| / Σ_i |ngrams(y_i)|

    N-grams never cross text boundaries. 0.0 when the batch has no n-gram at all.
    Ref: Li et al. (2016), "A Diversity-Promoting Objective Function for Neural Conversation
    Models", arXiv:1510.03055.

    Example:
        >>> distinct_n(["a b", "a b", "b c"], n=2)
        0.6666666666666666
    """
    _check_n(n)
    pooled = [gram for text in texts for gram in _ngrams(text, n)]
    if not pooled:
        return 0.0
    return len(set(pooled)) / len(pooled)


def self_bleu(texts: list[str]) -> float:
    """Self-BLEU of a batch: mean sentence BLEU of each text against all the others, in [0, 1].

        self-BLEU = (1/B) Σ_i BLEU(y_i, {y_j : j ≠ i})

    High means the samples repeat each other (low diversity). 0.0 for fewer than 2 texts.
    Same sacrebleu settings as ``Bleu`` (13a, 'exp' smoothing, effective order).
    Ref: Zhu et al. (2018), "Texygen: A Benchmarking Platform for Text Generation Models".

    Example:
        >>> self_bleu(["the cat sat", "the cat sat"])
        1.0
    """
    if len(texts) < 2:
        return 0.0
    metric = _sentence_bleu_metric()
    scores = [_bleu01(metric, text, texts[:i] + texts[i + 1:]) for i, text in enumerate(texts)]
    return sum(scores) / len(scores)


class Diversity:
    """Distinct-n of one sample: unique n-grams / all n-grams of its words, in [0, 1].

        r(y) = |set(ngrams(y))| / |ngrams(y)|

    Words are the lowercased, whitespace-split tokens. An empty completion, or one with fewer
    than n words, has no n-grams and scores 0.0: no diversity credit, so a near-empty output
    cannot hack the term. Ref: Li et al. (2016), arXiv:1510.03055.

    Example:
        >>> Diversity(n=2)(["p", "p"], ["a a a a", "a b a b"], ["", ""])
        [0.3333333333333333, 0.6666666666666666]
    """

    def __init__(self, n: int = 2) -> None:
        _check_n(n)
        self.n = n

    def __call__(self, prompts: list[str], completions: list[str], references: list[str]) -> list[float]:
        scores = []
        for completion in completions:
            grams = _ngrams(completion, self.n)
            scores.append(len(set(grams)) / len(grams) if grams else 0.0)
        return scores


class LengthPenalty:
    """Penalty for the distance between the completion's word count and a target, ≤ 0.

        r(y) = -| |y|_words - target | / target

    0 at the target length, -1 for an empty completion, unbounded below for long ones.
    Words are whitespace-split tokens.

    Example:
        >>> LengthPenalty(target=4)(["p", "p"], ["one two three four", "one two"], ["", ""])
        [0.0, -0.5]
    """

    def __init__(self, target: int = 20) -> None:
        if isinstance(target, bool) or not isinstance(target, int) or target < 1:
            raise ConfigError(f"target_length must be a whole number of at least 1, got {target!r}.")
        self.target = target

    def __call__(self, prompts: list[str], completions: list[str], references: list[str]) -> list[float]:
        # 0.0 - x rather than -x, so hitting the target logs 0.0 and not -0.0.
        return [0.0 - abs(len(completion.split()) - self.target) / self.target for completion in completions]
