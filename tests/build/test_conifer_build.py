"""Conifer end to end through the real CLI and the local OpenAI-compatible test server.

One scripted scenario, partly malformed on purpose, then the Table 4 switches as single overrides on the same
artifact store and cache: curriculum switches and `response.feedback` rebuild the assembly without sending a
request; `format_numeric.enabled=false` asks only for what its different instructions need.
"""

import json
import os
import re

import datasets

from ifforge.build.sampling import pick
from tests.helpers.cli import openai_args, outputs, run_cli
from tests.helpers.data import SHARED_DATA, needs_shared_data

ENV = {"OPENAI_API_KEY": "test-key"}
SEEDS = {
    "s0": "Explain how rainbows form in the sky.",
    "s1": "Write a short story about a lost robot.",
    "s2": "Give tips for learning to play the guitar.",
    "s3": "Summarize the history of the bicycle briefly.",
}
CATEGORIES = {c: [f"{c.lower()}-{i}" for i in (1, 2, 3)] for c in ("Audience", "Tone", "Length", "Scope", "Style", "Era")}
FORMAT_SHARE = 0.2  # of the 19 leveled instructions that reach the step: 4, rounded up
FORMAT_SAMPLE = 4


def query(seed, k):
    return f"{SEEDS[seed][:-1]} (angle {k})."


def level_text(q, k):
    return f"LEVEL {k} of {q}"


def user_text(body):
    return body["messages"][-1]["content"]


def between(text, start, end):
    return text.split(start, 1)[1].split(end, 1)[0].strip()


# -- scripted teacher / judge / student ---------------------------------------------------------------------------

def reframe(body):
    seed = between(user_text(body), "User query:", "Answer with")
    sid = next(k for k, v in SEEDS.items() if v == seed)
    if sid == "s1":
        return 'Sure! Here are the rewrites: ["one", "two"'  # cut off: no complete JSON list
    if sid == "s3":
        return json.dumps([query(sid, 1), query(sid, 2)])  # fewer than min_forms=3
    forms = json.dumps([query(sid, k) for k in (1, 2, 3)])
    return f"Here you go:\n```json\n{forms}\n```\nHope this helps." if sid == "s0" else forms


def filter_context(body):
    return "No, because it refers to a song the user never names." if "guitar (angle 3)" in user_text(body) else "Yes."


def constraints(body):
    if "guitar (angle 2)" in user_text(body):
        return '{"Tone": [], "Audience": []}'
    return json.dumps(CATEGORIES)


def recombine(body):
    q = between(user_text(body), "Request:", "Constraint set:")
    n = int(re.search(r"Write (\d+) new versions", user_text(body)).group(1))
    levels = []
    for k in range(1, n + 1):
        used = {c: CATEGORIES[c][:2] for c in list(CATEGORIES)[:k]}
        if "rainbows" in q and "angle 2" in q and k == 3:
            used["Tone"] = CATEGORIES["Tone"]  # 3 items in one category: level 3 adds 3+... breaks the growth rule
            used["Audience"] = CATEGORIES["Audience"]
        levels.append({"level": k, "constraints": used, "instruction": level_text(q, k)})
    return "```json\n" + json.dumps(levels) + "\n```"


def make_format_numeric(bad):
    def reply(body):
        instruction = between(user_text(body), "Request:", "Answer with")
        if instruction == bad:
            return "I added the requirement."  # no JSON at all
        return json.dumps({"instruction": instruction + " Use exactly 3 bullet points.",
                           "added": ["Use exactly 3 bullet points."]})
    return reply


def filter_conflicts(body):
    text = user_text(body)
    if level_text(query("s2", 1), 4) in text:
        return "No. The length limit contradicts the requested scope."
    if level_text(query("s0", 3), 2) in text:
        return "Maybe, it depends."
    return "Yes, the requirements can all be met."


def judge(body):
    text = user_text(body)
    if query("s2", 1) in text:
        return "The answer looks fine to me."  # no verdict JSON
    if query("s0", 2) in text:
        return '{"violations": []}'
    return 'Verdict:\n```json\n{"violations": [{"constraint": "Tone: tone-1", "reason": "the tone is flat"}]}\n```'


def script(srv, bad_format):
    srv.on(None, "I would say rainbows are pretty.", model="student-model")
    srv.on(None, judge, model="judge-model")
    srv.on("Rewrite the user query below", reframe)
    srv.on("Could the request below be answered well", filter_context)
    srv.on("list constraints that would narrow down", constraints)
    srv.on(re.compile(r"Write \d+ new versions of the request"), recombine)
    srv.on("Make the request below stricter about the form", make_format_numeric(bad_format))
    srv.on("could satisfy all of its requirements", filter_conflicts)
    srv.on("How this answer meets the requirements", lambda b: "ANSWER.\n\nHow this answer meets the requirements: "
                                                               "it has exactly 3 bullet points.")
    srv.on(None, lambda b: "TEACHER: " + user_text(b)[:60])


def build_args(srv, seeds_path, *extra):
    return ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds_path}", "seeds.id_field=id",
            "augmentation=reframe_constrain_recombine", "response=process_feedback",
            f"augmentation.format_numeric.sample={FORMAT_SHARE}",
            *openai_args(srv.url), *openai_args(srv.url, model="judge-model", role="judge"),
            "response.external.student.name=openai", f"response.external.student.base_url={srv.url}",
            "response.external.student.model=student-model", "response.external.student.max_retries=1",
            *extra]


def load(tmp_path):
    art = outputs(tmp_path)["build"]
    rows = list(datasets.load_from_disk(os.path.join(art, "data"))["sft"])
    rejects = [json.loads(l) for l in open(os.path.join(art, "rejects.jsonl"))]
    manifest = json.load(open(os.path.join(art, "manifest.json")))
    return art, rows, rejects, manifest


def part(rows, name):
    return [r for r in rows if r["part"] == name]


def test_conifer_build_and_table4_switches(tmp_path, openai_server):
    srv = openai_server
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": k, "instruction": v}) + "\n" for k, v in SEEDS.items()))
    # Which rows get format/numeric requirements is a seeded, order-independent pick; make the first one fail.
    surviving = {"s0.q1": range(1, 6), "s0.q2": (1, 2, 4, 5), "s0.q3": range(1, 6), "s2.q1": range(1, 6)}
    ids = [f"{q}.L{k}" for q, ks in surviving.items() for k in ks]
    chosen = sorted(pick(ids, FORMAT_SAMPLE, 0))
    text_of = {f"{s}.q{a}.L{k}": level_text(query(s, a), k) for s in ("s0", "s2") for a in (1, 2, 3) for k in range(1, 6)}
    script(srv, bad_format=text_of[chosen[0]])

    run_cli(build_args(srv, seeds), tmp_path, env=ENV, check=True)
    art, rows, rejects, m = load(tmp_path)
    sent = srv.count()

    # -- rejects: every drop has its step, reason and raw reply
    by_step = {}
    for r in rejects:
        by_step.setdefault(r["step"], []).append(r)
    assert {r["seed_id"] for r in by_step["reframe"]} == {"s1", "s3"}
    assert any("no JSON list" in r["reason"] and r["raw"].startswith("Sure!") for r in by_step["reframe"])
    assert any("fewer than reframe.min_forms=3" in r["reason"] for r in by_step["reframe"])
    assert [r["item"]["query"] for r in by_step["filter_context"]] == [query("s2", 3)]
    assert "missing context" in by_step["filter_context"][0]["reason"]
    assert len(by_step["constraints"]) == 1 and "empty constraint set" in by_step["constraints"][0]["reason"]
    assert len(by_step["recombine"]) == 1
    growth = by_step["recombine"][0]
    assert growth["item"]["query_id"] == "s0.q2" and growth["item"]["level"] == 3 and "recombine.new_items" in growth["reason"]
    conflicts = {r["item"]["instruction_id"]: r["reason"] for r in by_step["filter_conflicts"]}
    assert "conflicting" in conflicts["s2.q1.L4"] and "unparseable" in conflicts["s0.q3.L2"]
    assert [r["item"]["instruction_id"] for r in by_step["format_numeric"]] == [chosen[0]]
    assert "instruction kept as is" in by_step["format_numeric"][0]["reason"]
    assert [r["item"]["instruction_id"] for r in by_step["external_feedback"]] == ["s2.q1.L5"]
    assert "judge verdict unusable" in by_step["external_feedback"][0]["reason"]

    # -- counts per level and parts
    stats = m["stats"]["conifer"]
    assert stats["instructions_per_level"] == {"1": 4, "2": 3, "3": 3, "4": 3, "5": 4}
    curriculum = part(rows, "curriculum")
    assert len(curriculum) == 4  # one multi-turn conversation per surviving reframed query
    assert {r["group_id"]: r["levels"] for r in curriculum} == {
        "s0.q1": [1, 2, 3, 4, 5], "s0.q2": [1, 2, 4, 5], "s0.q3": [1, 3, 4, 5], "s2.q1": [1, 2, 3, 5]}
    conv = next(r for r in curriculum if r["group_id"] == "s0.q1")
    assert [msg["role"] for msg in conv["messages"]] == ["user", "assistant"] * 5
    assert conv["messages"][0]["content"].startswith(level_text(query("s0", 1), 1))
    assert conv["messages"][1]["content"].startswith("TEACHER: ")

    # internal feedback: every format/numeric instruction that survived, answered with its explanation
    augmented = {i for i in chosen[1:] if i not in ("s2.q1.L4", "s0.q3.L2")}
    internal = part(rows, "internal_feedback")
    assert {r["instruction_ids"][0] for r in internal} == augmented
    for r in internal:
        assert len(r["messages"]) == 2 and r["messages"][0]["content"].endswith("Use exactly 3 bullet points.")
        assert "How this answer meets the requirements" in r["messages"][1]["content"]

    # external feedback: the 4-turn form exactly where the judge reported a violation
    external = {r["group_id"]: r["messages"] for r in part(rows, "external_feedback")}
    assert set(external) == {"s0.q1", "s0.q2", "s0.q3"}
    assert len(external["s0.q2"]) == 2 and external["s0.q2"][1]["content"].startswith("TEACHER: ")
    for g in ("s0.q1", "s0.q3"):
        msgs = external[g]
        assert [x["role"] for x in msgs] == ["user", "assistant", "user", "assistant"]
        assert msgs[1]["content"] == "I would say rainbows are pretty."
        assert "Tone: tone-1: the tone is flat" in msgs[2]["content"]
        assert msgs[3]["content"].startswith("TEACHER: ")
    assert stats["external_feedback"] == {"with_critique": 2, "without_critique": 1}
    assert stats["conversations"] == 4 + len(augmented) + 3
    assert m["stats"]["student"]["model"] == "student-model" and m["stats"]["judge"]["model"] == "judge-model"
    assert m["config"]["judge"]["model"] == "judge-model"
    assert stats["figures"] and all(os.path.isfile(os.path.join(art, f)) for f in stats["figures"])
    card = open(os.path.join(art, "README.md")).read()
    assert "## Conifer statistics" in card and "difficulty 5 | | 4 |" in card and "figures/conifer_turns.png" in card

    # -- curriculum switches and response.feedback: new artifacts, assembly only, not one request sent
    run_cli(build_args(srv, seeds, "augmentation.curriculum.order=hard_to_easy"), tmp_path, env=ENV, check=True)
    art2, rows2, _, m2 = load(tmp_path)
    assert art2 != art and srv.count() == sent
    assert {r["group_id"]: r["levels"] for r in part(rows2, "curriculum")}["s0.q2"] == [5, 4, 2, 1]
    assert m2["stats"]["generator"]["calls"] == 0 and m2["stats"]["generator"]["cache_hits"] > 0

    general = tmp_path / "general.json"  # mixing in general conversations is assembly too
    general.write_text(json.dumps([{"id": f"g{i}", "conversations": [{"from": "human", "value": f"Question {i}?"},
                                                                      {"from": "gpt", "value": f"Answer {i}."}]}
                                   for i in range(5)]))
    run_cli(build_args(srv, seeds, "augmentation.curriculum.levels=easy_only",
                       "augmentation.curriculum.single_turn=true", "response.feedback=internal",
                       f"augmentation.mix.datasets=[{{name: sharegpt, path: '{general}', count: 2}}]"),
            tmp_path, env=ENV, check=True)
    _, rows3, _, m3 = load(tmp_path)
    assert srv.count() == sent
    mixed = part(rows3, "general")
    assert len(mixed) == 2 and all(r["messages"][0]["content"].startswith("Question") for r in mixed)
    assert m3["stats"]["conifer"]["mix_sources"][0]["used"] == 2
    cur3 = part(rows3, "curriculum")
    assert len(cur3) == 3 + 2 + 2 + 3 and all(len(r["messages"]) == 2 and r["levels"][0] <= 3 for r in cur3)
    assert not part(rows3, "external_feedback") and len(part(rows3, "internal_feedback")) == len(augmented)
    assert "judge" not in m3["config"] and "student" not in m3["stats"]

    # -- w/o format&number: no format/numeric instructions anywhere, hence no internal feedback
    run_cli(build_args(srv, seeds, "augmentation.format_numeric.enabled=false"), tmp_path, env=ENV, check=True)
    _, rows4, _, m4 = load(tmp_path)
    assert srv.count("Make the request below stricter") == FORMAT_SAMPLE  # only run 1 asked
    assert not part(rows4, "internal_feedback")
    assert not any("Use exactly 3 bullet points." in msg["content"] for r in rows4 for msg in r["messages"])
    assert "format_numeric" not in m4["stats"]["steps"]


def test_missing_data_file_fails_before_any_request(tmp_path, openai_server):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "s0", "instruction": SEEDS["s0"]}) + "\n")
    proc = run_cli(build_args(openai_server, seeds, f"augmentation.format_numeric.constraints={tmp_path / 'no.jsonl'}"),
                   tmp_path, env=ENV)
    assert proc.returncode == 2 and "Conifer data file not found" in proc.stderr
    assert openai_server.count() == 0


@needs_shared_data
def test_real_sharegpt_seeds_with_the_papers_selection_rules(tmp_path, openai_server):
    """The shipped ShareGPT first turns, selected as the paper does, through a teacher that always complies."""
    srv = openai_server
    srv.on(None, '{"violations": []}', model="judge-model")
    srv.on(None, "A student answer.", model="student-model")
    srv.on("Rewrite the user query below",
           lambda b: json.dumps([f"Form {k}: " + between(user_text(b), "User query:", "Answer with") for k in (1, 2, 3)]))
    srv.on("Could the request below be answered well", "Yes")
    srv.on("list constraints that would narrow down", json.dumps(CATEGORIES))
    srv.on(re.compile(r"Write \d+ new versions of the request"), lambda b: json.dumps(
        [{"level": k, "constraints": {c: CATEGORIES[c][:2] for c in list(CATEGORIES)[:k]},
          "instruction": f"L{k}: " + between(user_text(b), "Request:", "Constraint set:")} for k in range(1, 6)]))
    srv.on("Make the request below stricter about the form", lambda b: json.dumps(
        {"instruction": between(user_text(b), "Request:", "Answer with") + " Write exactly 2 paragraphs.",
         "added": ["Write exactly 2 paragraphs."]}))
    srv.on("could satisfy all of its requirements", "Yes")
    srv.on(None, "A teacher answer.")
    path = tmp_path / "real_seeds.jsonl"  # the first lines only: language ID over all 5,155 would dominate
    with open(SHARED_DATA / "seeds" / "sharegpt_first_turns.jsonl") as f:
        path.write_text("".join(next(f) for _ in range(12)))
    run_cli(build_args(srv, path, "seeds.limit=3", "seeds.max_chars=200", "seeds.min_words=5",
                       "seeds.english_only=true"), tmp_path, env=ENV, check=True)
    _, rows, rejects, m = load(tmp_path)
    stats = m["stats"]["conifer"]
    assert m["stats"]["seeds"] == 3 and not [r for r in rejects if r["stage"] == "build" and r["step"] != "seeds"]
    assert stats["instructions_per_level"] == {str(k): 9 for k in range(1, 6)}  # 3 seeds x 3 reframed queries
    augmented = 9  # format_numeric.sample is a share: 0.2 of these 45 leveled instructions (4 of the other test's 19)
    assert stats["conversations_by_part"] == {"curriculum": 9, "internal_feedback": augmented,
                                              "external_feedback": 9, "general": 0}
    assert stats["external_feedback"] == {"with_critique": 0, "without_critique": 9}
    assert stats["avg_turns"] == round((9 * 5 + augmented + 9) / (18 + augmented), 2)


def test_wo_conifer_variant_sends_no_request(tmp_path, openai_server):
    """variant=conifer/sharegpt (Table 2/4 "w/o Conifer"): the general conversations alone; no Conifer step runs, so
    nothing is asked of the generator, the judge or the student."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": k, "instruction": v}) + "\n" for k, v in SEEDS.items()))
    general = tmp_path / "general.json"
    general.write_text(json.dumps([{"id": f"g{i}", "conversations": [{"from": "human", "value": f"Question {i}?"},
                                                                      {"from": "gpt", "value": f"Answer {i}."}]}
                                   for i in range(5)]))
    script(openai_server, bad_format="")  # every request would be answered: none may be sent
    run_cli(build_args(openai_server, seeds, "variant=conifer/sharegpt",
                       f"augmentation.mix.datasets=[{{name: sharegpt, path: '{general}', count: 3}}]"),
            tmp_path, env=ENV, check=True)
    _, rows, _, m = load(tmp_path)
    assert openai_server.count() == 0
    assert [r["part"] for r in rows] == ["general"] * 3
    assert m["stats"]["steps"]["mix_only"] == {"in": 4, "out": 0, "rejected": 0}
    conifer_steps = {"reframe", "filter_context", "constraints", "recombine", "format_numeric", "filter_conflicts"}
    assert not conifer_steps & set(m["stats"]["steps"])  # the response mode's steps run on no row
    assert m["stats"]["generator"]["calls"] == 0
