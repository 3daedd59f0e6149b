"""SFT through the train stage on the tiny model: the loss goes down; the artifact holds what it promises."""

from __future__ import annotations

import json
from pathlib import Path

from tests.train.conftest import run_train, train_cfg


def test_sft_loss_goes_down_and_artifact_is_complete(tmp_path, tiny_model_dir):
    cfg = train_cfg(tmp_path, tiny_model_dir, "sft", [
        "+objective.trainer.max_steps=30", "+objective.trainer.learning_rate=5e-3",
        "+objective.trainer.per_device_train_batch_size=4", "+objective.trainer.save_steps=10"])
    manifest = run_train(cfg)
    stats = manifest["stats"]
    losses = [v for _, v in stats["loss_curve"]["loss"]]
    assert [s for s, _ in stats["loss_curve"]["loss"]] == list(range(1, 31))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses
    assert stats["steps"] == 30 and stats["resumed_from_step"] is None
    assert stats["tokens"] > 30 * 4 * 20 and stats["tokens_per_second"] > 0
    assert stats["peak_memory"]["rss_bytes"] > 0 and stats["peak_memory"]["gpu_bytes"] is None
    assert stats["precision"] == {"dtype": "float32", "bf16": False, "fp16": False,
                                  "activation_checkpointing": False}
    assert stats["trainer_args"]["assistant_only_loss"] is True

    art = Path(manifest["stats"]["model_dir"]).parent
    model_dir = art / "model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()
    tokenizer_files = {p.name for p in model_dir.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json"} <= tokenizer_files
    template = (model_dir / "chat_template.jinja").read_text()
    assert "generation" in template  # the training template travels with the checkpoint
    # the model card and its loss curve sit beside the weights, so an upload of model/ carries them
    assert (model_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    card = (model_dir / "README.md").read_text()
    assert "tiny fine-tuned with sft" in card and "| steps | 30 |" in card and "![loss curve](loss_curve.png)" in card
    assert not (art / "README.md").exists() and not (art / "loss_curve.png").exists()
    from huggingface_hub import ModelCard

    meta = ModelCard.load(model_dir / "README.md").data.to_dict()  # the Hub's own reader of the header
    assert meta["library_name"] == "transformers" and {"ifforge", "trl", "sft"} <= set(meta["tags"])
    assert "base_model" not in meta  # the base is a local directory here, not a Hub repository
    assert not (art / "checkpoints").exists()  # only the final model is kept once training is done
    assert json.loads((art / "manifest.json").read_text())["config"]["objective"]["name"] == "sft"

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Name colour number 1."}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] > ids["input_ids"].shape[1]


def test_lora_trains_an_adapter_and_saves_a_merged_model(tmp_path, tiny_model_dir):
    cfg = train_cfg(tmp_path, tiny_model_dir, "sft", [
        "model.peft=lora", "model.lora.r=4", "+objective.trainer.max_steps=2"])
    stats = run_train(cfg)["stats"]
    art = Path(stats["model_dir"]).parent
    assert (art / "adapter" / "adapter_config.json").is_file()
    assert (art / "model" / "model.safetensors").is_file()
    assert not (art / "model" / "adapter_config.json").exists()  # merged: loads like any checkpoint
    assert stats["peft"] == "lora"
