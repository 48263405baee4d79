"""The Grader: (conversation, completion, response type) x proposition names -> P(yes).

Readouts of the grader LLM (one prefix forward per item, question suffixes where a mode asks them; cached on disk if
enabled), turned into probabilities by the mode's reader (_modes.py); P(category) of a prompt for category 'auto';
deployment rules. Only the propositions an item's response type needs are graded, unless names are given.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from propositions import (
    AUTO,
    RULE_HARM_PROMPT,
    RULE_HARM_QUESTION,
    RULE_HARMFUL,
    RULE_PROPOSITIONS,
    Policy,
    PropositionSpec,
    Rule,
    rule_propositions,
)
from reward_service.config import Mode
from reward_service.errors import HeadsError, InputError
from reward_service.grader._engine import READOUT_VERSION, GraderEngine, Readout, sigmoid
from reward_service.grader._loading import engine_call as _engine_call
from reward_service.grader._loading import load_engine
from reward_service.grader._modes import make_reader
from reward_service.grader._prompt import PromptFormat
from reward_service.grader._readout_cache import load_readout, save_readout
from reward_service.grader.items import GradeItem
from reward_service.grader.rule_reading import (
    NO_RULES,
    RuleReading,
    head_row,
    rule_reading,
    rule_rows,
)

__all__ = ["READOUT_CHUNK", "Grader"]

READOUT_CHUNK = 32  # items per engine call when questions are asked (progress and cache writes between calls)


class Grader:
    """Grades items with one grader LLM, under one policy, in one mode."""

    def __init__(
        self,
        policy: Policy,
        engine: GraderEngine,
        prompt_format: PromptFormat,
        mode: Mode = "prompted",
        heads=None,  # heads.GraderHeads, needed for 'calibrated' and 'heads'
        engine_id: str = "",
        cache: Path | None = None,
        rules: RuleReading = NO_RULES,
        classifier=None,  # categories.CategoryClassifier: P(category) of a prompt, for category 'auto'
    ) -> None:
        self.reader = make_reader(mode, heads)  # how a readout becomes P(yes): _modes.py
        if self.reader.heads is not None:
            self.reader.heads.check_compatible(engine_id, prompt_format.version, engine.layers)
        self.policy, self.engine, self.fmt = policy, engine, prompt_format
        self.engine_id = engine_id
        self.cache = cache
        self.rules = rules
        if classifier is not None:
            classifier.check_compatible(engine_id, prompt_format.version, engine.layers, policy.categories)
        self.classifier = classifier

    @property
    def mode(self) -> Mode:
        return self.reader.mode

    @property
    def heads(self):  # heads.GraderHeads | None: the fitted heads of modes 'calibrated' and 'heads'
        return self.reader.heads

    @property
    def mode_id(self) -> str:
        """The mode, and for fitted modes which fit: 'heads@3f2a…' (part of every feature cache key)."""
        return self.mode if self.heads is None else f"{self.mode}@{self.heads.fingerprint}"

    @property
    def identity(self) -> str:
        """'engine:mode': who grades (a reward model that reads the grader names it in its own identity)."""
        return f"{self.engine_id}:{self.mode_id}"

    @classmethod
    def from_settings(cls, settings, mode: Mode | None = None, policy: Policy | None = None) -> Grader:
        """Load the grader LLM, the policy and (if the mode needs them) the fitted heads."""
        from propositions import load_policy
        from reward_service.grader.heads import GraderHeads
        from reward_service.paths import cache_dir

        policy = policy or load_policy(settings.policy_file)
        mode = mode or settings.mode
        s = settings
        if s.grader_backend != "transformers" and mode == "heads":
            raise HeadsError(
                f"mode 'heads' reads hidden states, which only grader_backend 'transformers' has; "
                f"grader_backend {s.grader_backend!r} grades in mode 'prompted' (or 'calibrated')"
            )
        tok, engine, engine_id = load_engine(s)
        fmt = PromptFormat(tok, s.max_conversation_tokens, s.max_completion_tokens)
        heads = GraderHeads.load(s.heads_path) if mode != "prompted" else None
        cache = cache_dir() / "readouts" if settings.readout_cache else None
        classifier = _classifier(s, policy, engine, engine_id, fmt)
        rules = rule_reading(s, engine, engine_id, fmt)
        return cls(policy, engine, fmt, mode, heads, engine_id, cache, rules, classifier)

    def with_policy(self, policy: Policy) -> Grader:
        """The same LLM, prompt format and heads under another policy (checked: heads must know its questions)."""
        keep = self.classifier if self.classifier and self.classifier.categories == tuple(policy.categories) else None
        g = Grader(policy, self.engine, self.fmt, self.mode, self.heads, self.engine_id, self.cache, self.rules, keep)
        names = sorted({n for rt in policy.response_types for n in policy.required_propositions(rt)})
        self.reader.check_questions(g.question_hashes(), names)
        return g

    def fit_heads(
        self,
        readouts: Sequence[Readout],
        labels: Sequence[Mapping[str, bool]],
        weights: Sequence[float] | None,
        names: Sequence[str],
        spec,
        overrides=None,
        info: dict | None = None,
        questions: Mapping[str, str] | None = None,
    ):
        """Heads and calibrators fitted on this grader's readouts (heads.fit_heads, stamped with its identity);
        `questions`: hashes of what was asked (default: the policy's questions)."""
        from reward_service.grader.heads import fit_heads

        return fit_heads(
            readouts,
            labels,
            names,
            spec,
            engine_id=self.engine_id,
            prompt_version=self.fmt.version,
            layers=self.engine.layers,
            questions=self.question_hashes() if questions is None else questions,
            info=info,
            overrides=overrides,
            weights=weights,
        )

    def question_hashes(self) -> dict[str, str]:
        """Hash of what the grader LLM is asked for each proposition (heads are fitted per question)."""
        from reward_service.grader.heads import question_hash

        return {n: question_hash(self.fmt.suffix(spec)) for n, spec in self.policy.propositions.items()}

    # -- readouts -------------------------------------------------------------------------------------

    def asked(self, names: Sequence[str]) -> list[str]:
        """The propositions among `names` whose question the grader LLM is asked (readout rows follow it).

        Every one in modes 'prompted' and 'calibrated'; in mode 'heads' only those whose head reads the
        question's answer state or log-odds (each asked question is a suffix forward).
        """
        return self.reader.asked(names)

    def _needs_answer_states(self, names: Sequence[str]) -> bool:
        return self.cache is not None or self.reader.needs_answer_states(names)  # cached: every mode reads it later

    def readouts(
        self,
        items: Sequence[GradeItem],
        names: Sequence[Sequence[str]],
        progress: bool = False,
    ) -> list[Readout]:
        """The grader LLM's readout of each item for its proposition names (cached on disk if enabled)."""
        if self.cache is None and not any(self.asked(p) for p in names):
            encs = [self.fmt.encode(list(it.conversation), it.completion, []) for it in items]
            return _engine_call(self.engine.pooled, encs)
        asks = [self.asked(p) for p in names]
        specs = [[self.policy.propositions[p] for p in ask] for ask in asks]
        return self.ask(items, specs, [self._needs_answer_states(ask) for ask in asks], progress)

    def ask(
        self,
        items: Sequence[GradeItem],
        questions: Sequence[Sequence[PropositionSpec]],
        answer_states: Sequence[bool] | bool = False,
        progress: bool = False,
    ) -> list[Readout]:
        """Readouts of each item for its own questions, any PropositionSpec (a policy's, or a deployment rule's);
        `readout.yes_logit` rows follow the item's questions. Cached on disk if enabled."""
        states_of = [answer_states] * len(items) if isinstance(answer_states, bool) else list(answer_states)
        out: list[Readout | None] = [None] * len(items)
        todo: list[tuple[int, Path | None]] = []
        for i, (item, specs) in enumerate(zip(items, questions, strict=True)):
            path = self._cache_path(item, specs)
            if path is not None and path.exists():
                out[i] = load_readout(path)
            else:
                todo.append((i, path))
        with tqdm(total=len(todo), desc="grading", disable=not progress or not todo, file=sys.stderr) as bar:
            for start in range(0, len(todo), READOUT_CHUNK):
                chunk = todo[start : start + READOUT_CHUNK]
                encs = [
                    self.fmt.encode(list(items[i].conversation), items[i].completion, list(questions[i]))
                    for i, _ in chunk
                ]
                states = self.cache is not None or any(states_of[i] for i, _ in chunk)
                for (i, path), ro in zip(chunk, _engine_call(self.engine.readout_many, encs, states), strict=True):
                    if path is not None:
                        save_readout(path, ro)
                    out[i] = ro
                bar.update(len(chunk))
        return out  # type: ignore[return-value]

    def _cache_path(self, item: GradeItem, specs: Sequence[PropositionSpec]) -> Path | None:
        if self.cache is None:
            return None
        qs = [self.fmt.suffix(spec) for spec in specs]
        key = hashlib.sha256(
            json.dumps([READOUT_VERSION, self.engine_id, self.fmt.version, self.engine.layers, qs]).encode()
        )
        return self.cache / key.hexdigest()[:16] / f"{item.key()}.npz"

    # -- probabilities --------------------------------------------------------------------------------

    def grade(
        self, items: Sequence[GradeItem], propositions: Sequence[str] | None = None, progress: bool = False
    ) -> list[dict[str, float]]:
        """P(yes) per item for `propositions` (default: those the item's response type needs)."""
        return self.grade_with_categories(items, propositions, progress)[0]

    def grade_with_categories(
        self,
        items: Sequence[GradeItem],
        propositions: Sequence[str] | None = None,
        progress: bool = False,
        also: Sequence[str] = (),
    ) -> tuple[list[dict[str, float]], list[dict[str, float] | None]]:
        """`grade`, and P(category) of each AUTO item's prompt (None for a labelled item), read from the same
        forward pass (an AUTO item is graded for every response type's propositions). `also`: propositions graded
        for every item besides its own (what the reward model reads), in the same pass."""
        auto = [i for i, it in enumerate(items) if it.response_type == AUTO]
        if auto:
            self.require_classifier()  # before any forward pass
        self.policy.check_propositions([*(propositions or ()), *also])
        own = [propositions if propositions is not None else self.policy.required_propositions(it.response_type)
               for it in items]  # fmt: skip
        names = [list(ns) + [a for a in also if a not in ns] for ns in own]
        self.reader.check_questions(self.question_hashes(), sorted({n for ns in names for n in ns}))
        ros = self.readouts(items, names, progress=progress)
        probs = [self.probabilities(ro, props) for ro, props in zip(ros, names, strict=True)]
        categories: list[dict[str, float] | None] = [None] * len(items)
        if auto:
            for i, p in zip(auto, self.category_probabilities([ros[i] for i in auto]), strict=True):
                categories[i] = p
        return probs, categories

    def probabilities(self, ro: Readout, props: Sequence[str]) -> dict[str, float]:
        p = self.reader.probabilities(ro, props)
        return {name: float(v) for name, v in zip(props, p, strict=True)}

    # -- the prompt's category (category 'auto') -------------------------------------------------------

    def prompt_readouts(self, conversations: Sequence[Sequence[Mapping[str, str]]], progress: bool = False) -> list:
        """Readouts of prompts alone (no completion, no question): what the prompt classifier reads (cached on
        disk if enabled)."""
        if self.cache is not None:
            items = [GradeItem(tuple(c), "", "comply") for c in conversations]
            return self.ask(items, [[] for _ in items], progress=progress)
        encs = [self.fmt.encode(list(c), "", []) for c in conversations]
        out: list[Readout] = []
        with tqdm(total=len(encs), desc="reading prompts", disable=not progress, file=sys.stderr) as bar:
            for start in range(0, len(encs), READOUT_CHUNK):
                out += _engine_call(self.engine.pooled, encs[start : start + READOUT_CHUNK])
                bar.update(len(encs[start : start + READOUT_CHUNK]))
        return out

    def category_probabilities(self, readouts: Sequence[Readout]) -> list[dict[str, float]]:
        """P(category) from readouts' prompt states (any readout of the item: they do not depend on the completion)."""
        self.require_classifier()
        return self.classifier.predict(readouts) if readouts else []  # type: ignore[union-attr]

    def require_classifier(self, field: str = "category") -> None:
        """InputError naming `field` unless a prompt classifier is loaded (what category 'auto' needs)."""
        if self.classifier is None:
            raise InputError(
                field,
                "'auto' needs a prompt classifier fitted for this grader model and policy "
                "(`rbr fit-classifier`, RBR_CLASSIFIER_FILE); give a response_type or a category",
            )

    # -- deployment rules (SoFA) ----------------------------------------------------------------------

    def _rule_reader(self) -> str:
        if self.rules.how is None:
            raise InputError("rules", f"this grader cannot read deployment rules: {self.rules.refusal}")
        return self.rules.how

    def grade_rules(self, items: Sequence[GradeItem], progress: bool = False) -> list[list[dict[str, float]]]:
        """Per item, per rule: P(rule_relevant), P(follows_rule), P(announces_rule) ([] for an item without rules)."""
        out: list[list[dict[str, float]]] = [[] for _ in items]
        todo = [i for i, it in enumerate(items) if it.rules]
        if not todo:
            return out
        how = self._rule_reader()
        sub = [items[i] for i in todo]
        questions = [[q for r in it.rules for q in rule_propositions(r).values()] for it in sub]
        ros = self.ask(sub, questions, answer_states=how == "heads", progress=progress)
        n = len(RULE_PROPOSITIONS)
        for i, it, ro in zip(todo, sub, ros, strict=True):
            if how == "heads":
                heads = self.rules.heads.heads
                p = np.array(
                    [heads[name].predict(head_row(ro, j, heads[name].spec))[0] for j, name in rule_rows(it.rules)]
                )
            else:
                p = sigmoid(ro.yes_logit)
            out[i] = [
                dict(zip(RULE_PROPOSITIONS, map(float, p[k * n : (k + 1) * n]), strict=True))
                for k in range(len(it.rules))
            ]
        return out

    def rule_harm(self, rules: Sequence[Rule]) -> list[float]:
        """P(the rule is harmful to obey), read from the rule's own text before any completion is graded."""
        if not rules:
            return []
        how = self._rule_reader()
        items = [GradeItem(({"role": "user", "content": RULE_HARM_PROMPT},), r.text, "comply") for r in rules]
        if how == "heads":
            head = self.rules.heads.heads[RULE_HARMFUL]
            ros = _engine_call(
                self.engine.pooled, [self.fmt.encode(list(it.conversation), it.completion, []) for it in items]
            )
            return [float(head.predict(head_row(ro, None, head.spec))[0]) for ro in ros]
        ros = self.ask(items, [[RULE_HARM_QUESTION]] * len(items))
        return [float(sigmoid(ro.yes_logit[0])) for ro in ros]


def _classifier(s, policy: Policy, engine: GraderEngine, engine_id: str, fmt: PromptFormat):
    """The prompt classifier: a configured file (RBR_CLASSIFIER_FILE) must fit this grader and policy; the
    shipped one is used where it fits (the embedded grader, the default policy's categories), else category
    'auto' is refused (422) rather than misread."""
    from reward_service.grader.categories import CategoryClassifier

    if s.classifier_file is None and not (s.classifier_path.exists() and engine.layers):
        return None
    clf = CategoryClassifier.load(s.classifier_path)
    try:
        clf.check_compatible(engine_id, fmt.version, engine.layers, policy.categories)
    except HeadsError:
        if s.classifier_file is not None:
            raise
        return None
    return clf
