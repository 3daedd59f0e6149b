"""Conifer's Figure 4 (turns, instruction and response length in NLTK-style words) in DeMoRecon and Evol-Instruct
build cards, drawn by the code Conifer's card uses."""

from omegaconf import OmegaConf

from ifforge.build.demorecon import stats as demorecon_stats
from ifforge.build.stats.distributions import count_words, distributions, user_and_assistant


def chat(q, a):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "is_original": True,
            "instruction_id": q}


def test_counts_words_and_punctuation_like_nltk_and_turns_per_chat(tmp_path):
    assert count_words("Don't stop, please!") == 5  # Don't | stop | , | please | !
    convs = [user_and_assistant(chat("One two.", "Three four five.")["messages"]),
             user_and_assistant([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b c"},
                                 {"role": "user", "content": "d e f"}, {"role": "assistant", "content": "g"}])]
    d = distributions(convs, tmp_path, "x")
    assert d["turns_histogram"] == {"1": 1, "2": 1} and d["avg_turns"] == 1.5
    assert d["instruction_words"]["n"] == 3 and d["instruction_words"]["max"] == 3
    assert d["response_words"] == {"n": 3, "mean": 2.33, "median": 2, "min": 1, "max": 4}  # 4, 2, 1 words
    assert d["figures"] == ["figures/x_turns.png", "figures/x_instruction_words.png", "figures/x_response_words.png"]
    assert all((tmp_path / f).stat().st_size > 0 for f in d["figures"])


def test_demorecon_card_has_figure4(tmp_path):
    cfg = OmegaConf.create({"tokenizer": "smollm2-135m-instruct", "embedding_model": "all-MiniLM-L6-v2",
                            "device": "cpu", "batch_size": 8, "figure": False, "figure_max_points": 10,
                            "compare_modes": False})
    splits = {"sft": [chat("Write a haiku about rain.", "Rain falls, soft and slow."),
                      chat("List two colours.", "Red, blue.")]}
    result = demorecon_stats.compute(splits, tmp_path, cfg, 0, "direct", {})
    assert result["distributions"]["instruction_words"]["mean"] == 5.0  # 6 and 4 words
    card = demorecon_stats.card_section(result, {})
    assert "Turns and lengths (Conifer Figure 4)" in card and "the sft split (2 rows)" in card
    assert "![demorecon_response_words](figures/demorecon_response_words.png)" in card
    assert (tmp_path / "figures" / "demorecon_turns.png").is_file()


def test_evol_instruct_card_has_figure4_of_the_evolved_rows(tmp_path):
    from ifforge.build.augment.evol_instruct import EvolInstruct, EvolInstructConfig, Unfold
    from tests.build.test_evol_instruct import Ctx

    lines = [{"seed_id": "a", "instruction": "Seed.",
              "evolutions": [{"round": 1, "kind": "deepen", "instruction": "Seed, but deeper."}]}]
    rows = [{**r, "response": "Done here."} for r in Unfold(keep_seeds=True)(lines, None)]
    assembly = EvolInstruct(OmegaConf.structured(EvolInstructConfig)).assemble(rows, Ctx(tmp_path, {}))
    d = assembly.stats["evol_instruct"]["distributions"]
    assert d["instruction_words"]["n"] == 2 and d["instruction_words"]["max"] == 5  # Seed , but deeper .
    assert "Over the 2 seeds and evolutions" in assembly.card
    assert (tmp_path / "figures" / "evol_instruct_instruction_words.png").is_file()
