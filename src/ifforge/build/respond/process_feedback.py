"""`response=process_feedback`: Conifer's learning from process feedback (section 3.2), on top of direct answers.

Every instruction gets the teacher's direct answer (the same requests as `response=direct`, so the two share the
cache). Then, by `feedback` (both | internal | external | none):
- internal: instructions that carry format/numeric requirements (`format_constraints`) are answered again by the
  teacher, who then explains how the answer meets each requirement; the sample is [instruction, that reply].
- external: a student model (`external.student`, any generator config) answers the hardest-level instructions;
  the judge (`cfg.judge`) lists the constraints the answer breaks. With any violation the sample is
  [instruction, student answer, critique + request to revise, teacher answer], else [instruction, teacher answer].
Feedback samples go into `feedback_conversations`; an unusable feedback reply drops only that sample (to rejects),
never the instruction itself. A feedback request that fails after its retries fails the build, as every request
does (unless the role's `max_failed_fraction` accepts it; the sample is then missing and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.build.respond import RESPONSES, ResponseMode
from ifforge.build.respond.direct import AnswerDirectly
from ifforge.build.sampling import pick
from ifforge.build.step import ASK, SKIP, LLMStep, Reply
from ifforge.config import GENERATOR_RUNTIME_FIELDS, GeneratorConfig
from ifforge.llm.structured import obj
from ifforge.parsing import Invalid, extract_json

STUDENT_ROLE = "student"


class Feedback(Enum):
    both = "both"
    internal = "internal"
    external = "external"
    none = "none"


@dataclass
class InternalConfig:
    sample: Optional[int] = None  # how many format/numeric instructions get internal feedback; null: all


@dataclass
class ExternalConfig:
    student: Optional[GeneratorConfig] = None  # required when external feedback is on
    levels: Optional[List[int]] = None  # which difficulty levels the student answers; null: the highest present
    sample: Optional[int] = None  # how many of those; null: all


@dataclass
class FeedbackTemplatesConfig:
    """A user's own Jinja2 file per prompt (null: the packaged prompts/conifer/<name>.j2)."""

    internal_feedback: Optional[str] = None
    external_feedback: Optional[str] = None  # the judge's
    revise_request: Optional[str] = None  # the critique turn of an external-feedback sample


@dataclass
class ProcessFeedbackConfig:
    name: str = "process_feedback"
    feedback: Feedback = Feedback.both
    seed: int = 0  # which instructions are sampled for feedback
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for the teacher's calls
    judge_params: Dict[str, Any] = field(default_factory=dict)
    internal: InternalConfig = field(default_factory=InternalConfig)
    external: ExternalConfig = field(default_factory=ExternalConfig)
    templates: FeedbackTemplatesConfig = field(default_factory=FeedbackTemplatesConfig)


def _add(row: Row, kind: str, messages: List[Dict[str, str]]) -> Row:
    return {**row, "feedback_conversations": list(row.get("feedback_conversations") or [])
            + [{"kind": kind, "messages": messages}]}


def _turns(*texts: str) -> List[Dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]


def constraint_lines(row: Row) -> List[str]:
    """'Category: item' strings of a Conifer row's constraint set, then its format/numeric requirements."""
    return ([f"{c}: {item}" for c, items in row["constraints"].items() for item in items]
            + list(row.get("format_constraints") or []))


def parse_violations(text: Optional[str]) -> List[Dict[str, str]]:
    """[{"constraint", "reason"}]; an empty list means every constraint is met."""
    data = extract_json(text, (dict, list))
    if isinstance(data, dict):
        if "violations" not in data:
            raise Invalid(f"no 'violations' list in the judge's reply (keys {sorted(data)[:6]})")
        data = data["violations"]
    if not isinstance(data, list):
        raise Invalid("'violations' is not a list")
    out = []
    for i, v in enumerate(data, 1):
        if not isinstance(v, dict):
            raise Invalid(f"violation {i} is {type(v).__name__}, not an object")
        constraint, reason = v.get("constraint"), v.get("reason")
        if not isinstance(constraint, str) or not constraint.strip():
            raise Invalid(f"violation {i} names no constraint")
        if not isinstance(reason, str) or not reason.strip():
            raise Invalid(f"violation {i} gives no reason")
        out.append({"constraint": constraint.strip(), "reason": reason.strip()})
    return out


class FeedbackStep(LLMStep):
    """Feedback is an extra sample: an unusable reply drops the sample, never the instruction."""

    passes_through = True

    def __init__(self, cfg: Any, params: Any = None, node: Any = None):
        super().__init__(cfg.params if params is None else params, cfg.templates, node)
        self.cfg = cfg

    def sampled(self, rows: List[Row], eligible: List[str], n: Optional[int]) -> List[Any]:
        chosen = pick(eligible, n, int(self.cfg.seed))
        return [ASK if r["instruction_id"] in chosen else SKIP for r in rows]


class InternalFeedback(FeedbackStep):
    name = "internal_feedback"
    template = "conifer/internal_feedback.j2"
    reads = ("instruction_id", "instruction", "format_constraints")
    writes = ("feedback_conversations",)

    def choose(self, rows: List[Row]) -> List[Any]:
        eligible = [r["instruction_id"] for r in rows if r.get("format_constraints")]
        return self.sampled(rows, eligible, self.cfg.internal.sample)

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {"instruction": row["instruction"], "constraints": list(row["format_constraints"])}

    def parse(self, reply: Reply, row: Row) -> str:
        if not reply.text.strip():
            raise Invalid("empty internal-feedback reply")
        return reply.text.strip()

    def emit(self, row: Row, text: str, ctx: BuildContext, raw: str) -> Iterable[Row]:
        return [_add(row, "internal", _turns(row["instruction"], text))]


class StudentAnswers(FeedbackStep):
    name = "student_answers"
    role = STUDENT_ROLE
    reads = ("instruction_id", "instruction", "level")
    writes = ("student_response",)

    def __init__(self, cfg: Any):
        super().__init__(cfg, params={}, node=cfg.external.student)  # the student runs with its own settings

    def choose(self, rows: List[Row]) -> List[Any]:
        ext = self.cfg.external
        levels = set(ext.levels) if ext.levels else ({max(r["level"] for r in rows)} if rows else set())
        return self.sampled(rows, [r["instruction_id"] for r in rows if r["level"] in levels], ext.sample)

    def messages(self, row: Row, batch: Any, structured: bool = False) -> List[Dict[str, str]]:
        return user_message(row["instruction"])

    def parse(self, reply: Reply, row: Row) -> str:
        if not reply.text.strip():
            raise Invalid("empty student answer")
        return reply.text.strip()

    def emit(self, row: Row, text: str, ctx: BuildContext, raw: str) -> Iterable[Row]:
        return [{**row, "student_response": text}]


class JudgeStudent(FeedbackStep):
    name = "external_feedback"
    template = "conifer/external_feedback.j2"
    role = "judge"
    reads = ("instruction", "constraints", "format_constraints", "response", "student_response")
    writes = ("feedback_conversations", "judge_violations")
    invalid_prefix = "judge verdict unusable: "
    schema = obj(violations={"type": "array", "items": obj(constraint={"type": "string"}, reason={"type": "string"})})

    def __init__(self, cfg: Any):
        super().__init__(cfg, params=cfg.judge_params)

    def choose(self, rows: List[Row]) -> List[Any]:
        return [ASK if r.get("student_response") else SKIP for r in rows]

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {"instruction": row["instruction"], "constraints": constraint_lines(row),
                "response": row["student_response"]}

    def parse(self, reply: Reply, row: Row) -> List[Dict[str, str]]:
        return parse_violations(reply.text)

    def emit(self, row: Row, violations: List[Dict[str, str]], ctx: BuildContext, raw: str) -> Iterable[Row]:
        if violations:
            critique = self.render("conifer/revise_request.j2", violations=violations)
            turns = _turns(row["instruction"], row["student_response"], critique, row["response"])
        else:
            turns = _turns(row["instruction"], row["response"])
        return [{**_add(row, "external", turns), "judge_violations": violations}]


@RESPONSES.register("process_feedback", schema=ProcessFeedbackConfig)
class ProcessFeedback(ResponseMode):
    runtime_fields = tuple(f"external.student.{f}" for f in GENERATOR_RUNTIME_FIELDS)

    def _kinds(self) -> set:
        fb = str(getattr(self.cfg.feedback, "value", self.cfg.feedback))
        return {"both": {"internal", "external"}, "internal": {"internal"}, "external": {"external"}}.get(fb, set())

    def uses_judge(self) -> bool:
        return "external" in self._kinds()

    def preflight(self) -> None:
        """The student's backend is checked before any request, like the generator's and the judge's."""
        from ifforge.errors import UserError
        from ifforge.llm import BACKENDS, make_generator  # noqa: F401  (importing discovers the backends)
        from ifforge.registry import discover

        if "external" not in self._kinds():
            return
        student = self.cfg.external.student
        if student is None:
            raise UserError("response.feedback uses external feedback, which needs response.external.student "
                            "(a generator config: name, model, ...)")
        discover("ifforge.llm.backends")
        BACKENDS.get(str(student.name))(student).check()

    def steps(self) -> Sequence[Step]:
        kinds = self._kinds()
        steps: List[Step] = [AnswerDirectly(self.cfg.get("params"))]
        if "internal" in kinds:
            steps.append(InternalFeedback(self.cfg))
        if "external" in kinds:
            steps += [StudentAnswers(self.cfg), JudgeStudent(self.cfg)]
        return steps
