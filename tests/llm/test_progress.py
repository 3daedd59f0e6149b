"""Progress: off a terminal (Slurm logs) a log line every PROGRESS_INTERVAL seconds with done/total, rate and ETA,
and one line per step when it ends; on a terminal the tqdm bar and no progress lines."""

import io
import logging
import re
import sys

from omegaconf import OmegaConf

from ifforge.llm import progress
from ifforge.llm.base import Backend, Generator
from ifforge.llm.types import ChatRequest, Completion

CFG = OmegaConf.create({"name": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                        "price_prompt_per_mtok": None, "price_completion_per_mtok": None, "cache": False,
                        "max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": None, "stop": None,
                        "max_failed_fraction": 0.0})


class Ticking(Backend):
    name = "openai"

    def run(self, calls, on_done):
        for i, _ in enumerate(calls):
            on_done(i, Completion(text="ok", prompt_tokens=3, completion_tokens=2, retries=i % 2))


def ask(n):
    gen = Generator(Ticking(CFG), CFG, role="generator")
    gen.generate([ChatRequest([{"role": "user", "content": f"q{i}"}]) for i in range(n)], desc="decompose")


def test_off_a_terminal_progress_lines_come_at_the_interval(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a TTY, like a Slurm log
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL", 0.0)
    with caplog.at_level(logging.INFO, logger="ifforge"):
        ask(4)
    lines = [r.getMessage() for r in caplog.records]
    ticks = [m for m in lines if re.fullmatch(r"\[generator: decompose\] \d/4 requests \(\d+%\), [\d.]+ req/s, ETA \S+", m)]
    assert [t.split()[2] for t in ticks] == ["1/4", "2/4", "3/4"]  # the last one is the step's own line
    assert lines[-1] == ("[generator] decompose: 4 requests: 4 sent, 0 cached, 2 retries, 0 failed; 12+8 tokens, "
                         "price unknown")
    assert sys.stderr.getvalue() == ""  # no bar in the log

    caplog.clear()
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL", 30.0)  # the default: a short step logs no progress
    with caplog.at_level(logging.INFO, logger="ifforge"):
        ask(4)
    assert [r.getMessage() for r in caplog.records if "req/s" in r.getMessage()] == []


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_bar_is_drawn_and_no_progress_is_logged(monkeypatch, caplog):
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL", 0.0)
    with caplog.at_level(logging.INFO, logger="ifforge"):
        ask(3)
    assert "generator: decompose:   0%| " in term.getvalue()  # tqdm draws its bar (then clears it: leave=False)
    assert not [r for r in caplog.records if "req/s" in r.getMessage()]
