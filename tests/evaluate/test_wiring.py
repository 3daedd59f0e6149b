"""How the eval stage finds its model under test and its DeMoRecon data, without running anything heavy."""

import json

import pytest
from hydra import compose, initialize_config_dir

import ifforge.__main__ as entry
from ifforge.build.save import save_splits
from ifforge.evaluate.candidate import candidate_node, checkpoint_dir, identity, label
from ifforge.evaluate.suite import Item, SuiteContext
from ifforge.evaluate.suites.demorecon import DeMoReconDet, DeMoReconEval
from ifforge.stages.eval import EvalStage, _answer_before_judging, selected_suites


def cfg(*overrides):
    with initialize_config_dir(entry.CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_model_under_test_resolution(tmp_path):
    trained = cfg("stages=[build,train,eval]", "eval=[ifeval]")
    assert EvalStage().upstream(trained) == ["train"]
    assert identity(trained)["model"] == "<train checkpoint>"  # the train fingerprint stands for the weights
    art = tmp_path / "train" / "abc"
    (art / "model").mkdir(parents=True)
    (art / "model" / "config.json").write_text("{}")
    (art / "manifest.json").write_text(json.dumps({"stats": {"model_dir": str(art / "model")}}))
    assert checkpoint_dir(art) == art / "model"
    moved = tmp_path / "elsewhere"  # the manifest's stats.model_dir wins over the default location
    moved.mkdir()
    (moved / "config.json").write_text("{}")
    (art / "manifest.json").write_text(json.dumps({"stats": {"model_dir": str(moved)}}))
    assert checkpoint_dir(art) == moved
    (art / "manifest.json").write_text(json.dumps({"stats": {"model_dir": str(art / "model")}}))
    assert candidate_node(trained, art).model == str(art / "model")
    assert "trained" in label(trained)

    original = cfg("stages=[eval]", "eval=[ifeval]", "model.path=/models/base")  # the papers' "Ori." rows
    assert EvalStage().upstream(original) == []
    assert candidate_node(original).model == "/models/base" and identity(original)["model"] == "/models/base"

    api = cfg("stages=[eval]", "eval=[ifeval]", "candidate.name=openai", "candidate.model=gpt-x",
              "candidate.base_url=http://h/v1")
    assert candidate_node(api).model == "gpt-x" and "base_url" not in identity(api)  # where it runs is no score input


def test_fingerprint_slices_are_per_suite():
    a = cfg("stages=[eval]", "eval=[ifeval,infobench]")
    b = cfg("stages=[eval]", "eval=[ifeval,infobench]", "eval.ifeval.limit=5")
    c = cfg("stages=[eval]", "eval=[ifeval,infobench]", "judge.model=other-judge")
    st = EvalStage()
    slices = {n: [st.suite_config(x, n, cls) for x in (a, b, c)] for n, cls in selected_suites(a).items()}
    assert slices["ifeval"][0] != slices["ifeval"][1] and slices["infobench"][0] == slices["infobench"][1]
    assert slices["ifeval"][0] == slices["ifeval"][2]  # rules only: the judge does not touch IFEval
    assert slices["infobench"][0] != slices["infobench"][2]


def test_the_scoring_librarys_version_keys_the_suite(monkeypatch):
    """An alpaca-eval or lm-eval upgrade may change the arithmetic: its scores are then computed again."""
    import importlib.metadata

    c = cfg("stages=[eval]", "eval=[ifeval,alpaca_eval,open_llm]")
    st, suites = EvalStage(), selected_suites(c)
    before = {n: st.suite_config(c, n, cls) for n, cls in suites.items()}
    assert before["alpaca_eval"]["scored_by"] == {"alpaca-eval": importlib.metadata.version("alpaca-eval")}
    assert before["open_llm"]["scored_by"] == {"lm-eval": importlib.metadata.version("lm-eval")}
    assert "scored_by" not in before["ifeval"]
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: "99.0")
    after = {n: st.suite_config(c, n, cls) for n, cls in suites.items()}
    assert after["alpaca_eval"] != before["alpaca_eval"] and after["ifeval"] == before["ifeval"]


def test_a_users_judge_prompt_is_templates_judge(tmp_path):
    """`eval.<suite>.templates.judge`: the file's content keys the suite's scores, a missing file fails preflight,
    and the judge is asked with it."""
    from ifforge.errors import UserError
    from ifforge.evaluate.suites.infobench import InfoBench

    mine = tmp_path / "judge.j2"
    mine.write_text("Q: {{ question }} A: {{ response }}")
    base = cfg("stages=[eval]", "eval=[infobench]", "eval.infobench.protocol=ifforge")
    user = cfg("stages=[eval]", "eval=[infobench]", "eval.infobench.protocol=ifforge",
               f"eval.infobench.templates.judge={mine}")
    st = EvalStage()
    before = st.suite_config(user, "infobench", InfoBench)
    assert before != st.suite_config(base, "infobench", InfoBench)
    mine.write_text("Question: {{ question }} Answer: {{ response }}")
    assert st.suite_config(user, "infobench", InfoBench) != before  # the content counts, not only the path
    missing = cfg("stages=[eval]", "eval=[infobench]", "eval.infobench.protocol=ifforge",
                  f"eval.infobench.templates.judge={tmp_path / 'nope.j2'}")
    with pytest.raises(UserError, match="eval.infobench.templates.judge: not found"):
        st.preflight(missing)

    asked = []

    class Judge:
        cfg = {"structured": "off"}

        def generate(self, requests, desc):
            asked.extend(r.messages[0]["content"] for r in requests)
            return [type("R", (), {"ok": True, "text": "Yes", "error": None})() for _ in requests]

    suite = InfoBench(user.eval.infobench, SuiteContext(candidate=None, judge=Judge))
    item = Item(id="1", prompt="Be brief.", messages=[],
                data={"questions": ["Is it short?"], "instruction": "Be brief.", "input": "", "subset": "Easy_set"})
    suite.score([item], ["Ok."])
    assert asked == ["Question: Is it short? Answer: Ok."]


def test_demorecon_reads_the_builds_splits(tmp_path):
    save_splits({"eval": [{"id": "v1", "instruction": "Write two words.", "response": "ok"}],
                 "det": [{"id": "v1|v1", "instruction": "Write two words.", "response": "Two words.", "label": "Yes"},
                         {"id": "v1|v2", "instruction": "Write two words.", "response": "One.", "label": "No"}]},
                tmp_path)
    built = cfg("stages=[build,eval]", "eval=[demorecon_eval,demorecon_det]")
    assert EvalStage().upstream(built) == ["build"]
    ctx = SuiteContext(candidate=None, judge=None, build_dir=tmp_path)
    items = DeMoReconEval(built.eval.demorecon_eval, ctx).load()
    assert [(i.id, i.prompt) for i in items] == [("v1", "Write two words.")]
    det = DeMoReconDet(built.eval.demorecon_det, ctx).load()
    assert [i.data["label"] for i in det] == [True, False]
    assert det[0].prompt.startswith("Evaluate whether the given response adequately addresses all instructions")
    assert "**Given Response:**\nTwo words." in det[0].prompt


class FakeGenerators:
    def __init__(self):
        self.events = []

    def get(self, role):
        self.events.append(("get", role))
        return role

    def close(self, role):
        self.events.append(("close", role))


class FakeSuite:
    uses_judge = True

    def __init__(self, responses=None):
        self.cfg = type("C", (), {"responses": responses})()

    def load(self):
        return ["item"]

    def answer(self, items, generator):
        return [generator]


def test_local_candidate_is_freed_before_a_local_judge_loads():
    local = cfg("stages=[eval]", "eval=[infobench]", "judge=hf_local", "candidate.cache=false")
    gens = FakeGenerators()
    answered = _answer_before_judging(local, {"a": FakeSuite(), "b": FakeSuite(responses="given.jsonl")}, gens)
    assert gens.events == [("get", "candidate"), ("close", "candidate")]  # one suite answers, then the model goes
    assert answered == {"a": (["item"], ["candidate"])}  # kept for the suite's run: no response cache needed

    remote_judge = cfg("stages=[eval]", "eval=[infobench]", "judge=openai")
    gens = FakeGenerators()
    assert _answer_before_judging(remote_judge, {"a": FakeSuite()}, gens) == {}
    assert gens.events == []  # nothing to make room for: suites answer and get judged in one go


class ScoringSuite(FakeSuite):
    name, uses_judge = "fake", False

    def __init__(self):
        super().__init__()
        self.cfg.max_tokens = None
        self.ctx = type("Ctx", (), {"candidate": staticmethod(lambda: pytest.fail("answered again"))})()

    def load(self):
        pytest.fail("loaded again")

    def score(self, items, responses):
        return [{"id": i, "response": r} for i, r in zip(items, responses)], {"n": len(items)}

    def table(self, metrics, label):
        return ""


def test_a_suite_scores_the_answers_it_is_handed(tmp_path):
    """Answers given before judging are scored as they are, a failed one (None) left out and counted."""
    from ifforge.evaluate.engine import run_suite

    about = {"label": "m", "candidate": {"backend": "hf_local", "model": "m"}}
    run_suite(ScoringSuite(), tmp_path, about, (["i1", "i2"], ["r1", None]))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 1 and metrics["generation_failures"] == 1
    assert [json.loads(line)["id"] for line in (tmp_path / "results.jsonl").read_text().splitlines()] == ["i1"]
