"""Scripted answers shared by the eval tests: a judge for ifforge's own judge prompts on the local test server, and
small DeMoRecon-Eval / -Det files."""

import json
import re


def demorecon_files(tmp_path):
    ev = tmp_path / "dm_eval.jsonl"
    ev.write_text("".join(json.dumps({"id": f"e{i}", "instruction": f"Write {i + 2} words about tea. Be formal."})
                          + "\n" for i in range(2)))
    det = tmp_path / "dm_det.jsonl"
    det.write_text("".join(json.dumps({"instruction": "Reply in French.", "response": r, "label": lab}) + "\n"
                           for r, lab in (("Bonjour.", "Yes"), ("Hello.", "No"), ("Salut !", "Yes"))))
    return ev, det


def script_judge(srv):
    srv.on("attempts to address all the instructions", "Yes.", model="judge-model")
    srv.on("Requirement to check", lambda b: "Perhaps." if "post tile" in b["messages"][-1]["content"]
           else "No, it does not.", model="judge-model")

    def followbench(body):
        n = int(re.search(r"list of exactly (\d+) verdict", body["messages"][-1]["content"]).group(1))
        return "Checked each.\n[" + ", ".join(['"YES"'] * (n - 1) + ['"NO"']) + "]"

    srv.on("in step order", followbench, model="judge-model")
    srv.on("Rate the quality", "Fine. [[6]]", model="judge-model")
