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
from typing import Any, Dict, List, Optional, Sequence

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.build.respond import RESPONSES, ResponseMode
from ifforge.build.respond.direct import AnswerDirectly
from ifforge.config import GeneratorConfig
from ifforge.llm import ChatRequest
from ifforge.prompts import render

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
class FeedbackPromptsConfig:
    internal: Optional[str] = None  # user's own Jinja2 files (null: packaged prompts/conifer/*.j2)
    judge: Optional[str] = None
    revise_request: Optional[str] = None


@dataclass
class ProcessFeedbackConfig:
    name: str = "process_feedback"
    feedback: Feedback = Feedback.both
    seed: int = 0  # which instructions are sampled for feedback
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for the teacher's calls
    judge_params: Dict[str, Any] = field(default_factory=dict)
    internal: InternalConfig = field(default_factory=InternalConfig)
    external: ExternalConfig = field(default_factory=ExternalConfig)
    prompts: FeedbackPromptsConfig = field(default_factory=FeedbackPromptsConfig)


def _add(row: Row, kind: str, messages: List[Dict[str, str]]) -> Row:
    return {**row, "feedback_conversations": list(row.get("feedback_conversations") or [])
            + [{"kind": kind, "messages": messages}]}


def _turns(*texts: str) -> List[Dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]


class InternalFeedback(Step):
    name = "internal_feedback"
    reads = ("instruction_id", "instruction", "format_constraints")
    writes = ("feedback_conversations",)

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        from ifforge.build.conifer.sampling import pick

        eligible = [r["instruction_id"] for r in rows if r.get("format_constraints")]
        chosen = pick(eligible, self.cfg.internal.sample, int(self.cfg.seed))
        todo = [i for i, r in enumerate(rows) if r["instruction_id"] in chosen]
        requests = [ChatRequest(user_message(render("conifer/internal_feedback.j2", self.cfg.prompts.internal,
                                                    instruction=rows[i]["instruction"],
                                                    constraints=list(rows[i]["format_constraints"]))),
                                params=dict(self.cfg.params or {})) for i in todo]
        out = list(rows)
        for i, res in zip(todo, ctx.ask(self.name, [rows[i] for i in todo], requests)):
            if res is None:
                continue
            if not res.text.strip():
                ctx.reject(self.name, rows[i], "empty internal-feedback reply", raw=res.text)
                continue
            out[i] = _add(rows[i], "internal", _turns(rows[i]["instruction"], res.text.strip()))
        return out


class StudentAnswers(Step):
    name = "student_answers"
    reads = ("instruction_id", "instruction", "level")
    writes = ("student_response",)

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        from ifforge.build.conifer.sampling import pick

        ext = self.cfg.external
        levels = set(ext.levels) if ext.levels else ({max(r["level"] for r in rows)} if rows else set())
        eligible = [r["instruction_id"] for r in rows if r["level"] in levels]
        chosen = pick(eligible, ext.sample, int(self.cfg.seed))
        todo = [i for i, r in enumerate(rows) if r["instruction_id"] in chosen]
        requests = [ChatRequest(user_message(rows[i]["instruction"])) for i in todo]
        out = list(rows)
        for i, res in zip(todo, ctx.ask(self.name, [rows[i] for i in todo], requests, role=STUDENT_ROLE,
                                        node=ext.student)):
            if res is None:
                continue
            if not res.text.strip():
                ctx.reject(self.name, rows[i], "empty student answer", raw=res.text)
                continue
            out[i] = {**rows[i], "student_response": res.text.strip()}
        return out


class JudgeStudent(Step):
    name = "external_feedback"
    reads = ("instruction", "constraints", "format_constraints", "response", "student_response")
    writes = ("feedback_conversations", "judge_violations")

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        from ifforge.build.conifer.parsing import Invalid, flatten, parse_violations, reject_reason

        todo = [i for i, r in enumerate(rows) if r.get("student_response")]
        requests = [ChatRequest(user_message(render(
            "conifer/judge_constraints.j2", self.cfg.prompts.judge, instruction=rows[i]["instruction"],
            constraints=flatten(rows[i]["constraints"]) + list(rows[i].get("format_constraints") or []),
            response=rows[i]["student_response"])), params=dict(self.cfg.judge_params or {})) for i in todo]
        out = list(rows)
        for i, res in zip(todo, ctx.ask(self.name, [rows[i] for i in todo], requests, role="judge")):
            if res is None:
                continue
            row = rows[i]
            try:
                violations = parse_violations(res.text)
            except Invalid as e:
                ctx.reject(self.name, row, f"judge verdict unusable: {reject_reason(e, res)}", raw=res.text)
                continue
            if violations:
                critique = render("conifer/revise_request.j2", self.cfg.prompts.revise_request, violations=violations)
                turns = _turns(row["instruction"], row["student_response"], critique, row["response"])
            else:
                turns = _turns(row["instruction"], row["response"])
            out[i] = {**_add(row, "external", turns), "judge_violations": violations}
        return out


@RESPONSES.register("process_feedback", schema=ProcessFeedbackConfig)
class ProcessFeedback(ResponseMode):
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
        steps: List[Step] = [AnswerDirectly(dict(self.cfg.get("params") or {}))]
        if "internal" in kinds:
            steps.append(InternalFeedback(self.cfg))
        if "external" in kinds:
            steps += [StudentAnswers(self.cfg), JudgeStudent(self.cfg)]
        return steps
