"""The service's request and response bodies: the wire contract shared by the server and its clients.

Only pydantic here (no model code), so a trainer process can import it without torch or the grader.

The reward contract, as every client sees it:

    reward = R_rm(prompt, completion) + w[response_type] . features(prompt, completion)

one float per (prompt, completion) pair; the response type comes from the item, else from its
category through the content policy, else from the service's configured default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

__all__ = [
    "Components",
    "ErrorBody",
    "ErrorDetail",
    "GradeRequest",
    "GradeResponse",
    "GradeResult",
    "Health",
    "Message",
    "OpenRLHFRequest",
    "OpenRLHFResponse",
    "PolicyInfo",
    "Prompt",
    "ReloadRequest",
    "ReloadResponse",
    "RuleIn",
    "RuleScore",
    "RewardFn",
    "RewardItem",
    "RewardsRequest",
    "RewardsResponse",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: The chat roles trainers send (OpenAI's and vLLM's chat formats); any other role is a 422 naming the field.
Role = Literal["system", "developer", "user", "assistant", "tool"]


class Message(_Strict):
    role: Role
    content: str


#: A prompt: one user message as text, or the conversation so far as chat messages.
Prompt = str | list[Message]

#: The reward contract as a function: (prompts, completions, response types or categories) -> rewards.
#: `response_types[i]` may be None when the service has a default response type.
RewardFn = Callable[[Sequence[Prompt | list[dict]], Sequence[str], Sequence[str | None]], list[float]]


#: A rule's text: 1 to 1000 characters, not all whitespace.
RuleText = Annotated[
    str, Field(min_length=1, max_length=1000, pattern=r"\S", description="The rule, in plain language.")
]


class RuleIn(_Strict):
    """A deployment rule that outranks the user (SoFA)."""

    text: RuleText
    priority: int = Field(1, ge=1, le=10, description="Weight of the rule's term: 1 normal, higher weighs more.")


class RuleScore(BaseModel):
    """One deployment rule as graded for one completion."""

    text: str
    priority: int
    rule_relevant: float = Field(description="P(the rule applies to the user's request).")
    follows_rule: float = Field(description="P(the response obeys the rule).")
    announces_rule: float = Field(description="P(the response says a rule or restriction is why it holds back).")
    term: float | None = Field(None, description="priority * v . rule_features: this rule's part of the reward.")


class RewardItem(_Strict):
    """One (prompt, completion) pair to score."""

    id: str | None = Field(None, description="Echoed back in components; free-form.")
    prompt: Annotated[str, Field(min_length=1)] | Annotated[list[Message], Field(min_length=1)] = Field(
        description="One user message as text, or the conversation so far (at most RBR_MAX_MESSAGES messages)."
    )
    completion: str | Message | Annotated[list[Message], Field(min_length=1, max_length=1)] = Field(
        description="The response to score: text, an assistant message, or a list holding one."
    )
    response_type: str | None = Field(None, description="comply, hard_refuse, safe_refuse_1, safe_refuse_2.")
    category: str | None = Field(
        None, description="Content-policy category; maps to a response type. 'auto': read from the prompt."
    )
    rules: list[RuleText | RuleIn] | None = Field(
        None, description="Deployment rules that outrank the user (at most RBR_MAX_RULES); a string is priority 1."
    )
    rules_from_system: StrictBool = Field(
        False, description="Also take rules from the prompt's system messages, one per non-empty line."
    )


#: What to do with a rule the grader finds harmful to obey: refuse the request (422), or drop the rule and warn.
HarmfulRules = Literal["reject", "ignore"]


class RewardsRequest(_Strict):
    items: list[RewardItem] = Field(description="At most RBR_MAX_ITEMS items.")
    return_components: StrictBool = Field(False, description="Also return RM, RBR, class and proposition values.")
    harmful_rules: HarmfulRules = Field(
        "reject", description="A harmful rule: 422 naming it, or ignored with a warning."
    )


class Components(BaseModel):
    id: str | None = None
    response_type: str
    rm: float = Field(description="The helpful-only reward model's score R_rm.")
    rbr: float = Field(description="w[response_type] . features.")
    classes: dict[str, float] = Field(description="Completion class probabilities.")
    top_class: str = Field(description="The most probable completion class.")
    propositions: dict[str, float] = Field(description="Proposition probabilities from the grader.")
    rule_term: float | None = Field(None, description="The deployment rules' part of the reward (items with rules).")
    rules: list[RuleScore] | None = Field(None, description="Per deployment rule: its probabilities and term.")
    category_probabilities: dict[str, float] | None = Field(
        None, description="Category 'auto': P(category) read from the prompt."
    )
    response_type_probabilities: dict[str, float] | None = Field(
        None, description="Category 'auto': P(response type); response_type is the most likely one."
    )


class RewardsResponse(BaseModel):
    rewards: list[float]
    components: list[Components] | None = None
    policy_hash: str
    weights_version: str
    warnings: list[str] | None = Field(None, description="E.g. harmful rules ignored (harmful_rules: ignore).")


class GradeRequest(_Strict):
    items: list[RewardItem] = Field(description="At most RBR_MAX_ITEMS items.")
    propositions: list[str] | None = Field(None, description="Grade only these; default: the response type's.")
    harmful_rules: HarmfulRules = Field(
        "reject", description="A harmful rule: 422 naming it, or ignored with a warning."
    )


class GradeResult(BaseModel):
    id: str | None = None
    response_type: str
    propositions: dict[str, float]
    classes: dict[str, float]
    top_class: str | None
    rules: list[RuleScore] | None = Field(None, description="Per deployment rule: its probabilities (term 0 here).")
    category_probabilities: dict[str, float] | None = Field(
        None, description="Category 'auto': P(category) read from the prompt."
    )
    response_type_probabilities: dict[str, float] | None = Field(
        None, description="Category 'auto': P(response type); response_type is the most likely one."
    )


class GradeResponse(BaseModel):
    results: list[GradeResult]
    policy_hash: str
    warnings: list[str] | None = None


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's remote reward model request (`--remote_rm_url http://host:port/get_reward`)."""

    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(description="Prompt + response text, as the policy's chat template rendered it.")
    prompts: list[str] = Field(
        description="Each query's whole prompt (the query may hold only its end: OpenRLHF left-truncates long prompts)."
    )
    labels: list[Any] | None = Field(None, description="Response type or category per query (or a dict).")


class OpenRLHFResponse(BaseModel):
    """The shape of OpenRLHF's own `serve_rm.py`: one value per query in every list."""

    rewards: list[float]
    scores: list[float] = Field(description="The same as rewards (OpenRLHF reads scores for its filters).")
    extra_logs: dict[str, list[float]] = Field(
        description="A fixed key set per served policy (rbr/rm, rbr/rbr, rbr/response_type/<rt>, "
        "rbr/class/<rt>/<class>), one value per query; 0.0 for classes outside the query's response type."
    )


class PolicyInfo(BaseModel):
    policy_hash: str
    weights_version: str
    default_response_type: str | None = Field(
        None,
        description="Response type of unlabelled items (RBR_DEFAULT_RESPONSE_TYPE; 'auto': read from the prompt); "
        "unset: they get 422.",
    )
    response_types: dict[str, dict[str, Any]]
    backends: dict[str, str]
    policy: dict[str, Any]


class ReloadRequest(_Strict):
    policy_file: str | None = Field(None, description="Policy YAML on the server; unset = keep the current one.")
    weights_file: str | None = Field(None, description="Weights JSON on the server; unset = keep the current one.")


class ReloadResponse(BaseModel):
    reloaded: bool
    policy_hash: str
    weights_version: str
    previous: dict[str, str]


class ErrorDetail(BaseModel):
    type: str = Field(
        description="invalid_request, invalid_input, too_large, unsupported_media_type, unauthorized, not_found, "
        "method_not_allowed, overloaded, request_timeout, not_ready, grader_error, reward_model_error, ..."
    )
    message: str
    field: str | None = Field(None, description="Where the problem is, e.g. items[2].prompt[0].content.")


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer: `error` says what and where; `detail` lists every schema problem of a 422."""

    error: ErrorDetail
    detail: list[ValidationIssue] | None = None


class Health(BaseModel):
    status: str = Field(description="ok (alive), ready, or not_ready.")
    reason: str | None = None
    policy_hash: str | None = None
    weights_version: str | None = None
