"""Assistant-only loss: on a multi-turn row no user (or system) token gets a label; every assistant reply does,
with its end-of-turn token; the same holds for every shipped training template."""

from __future__ import annotations

import pytest

from ifforge.train import chat_templates

CHAT = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "Favourite fruit?"},
    {"role": "assistant", "content": "Mango."},
    {"role": "user", "content": "Favourite tree?"},
    {"role": "assistant", "content": "Oak."},
]


def test_sft_labels_cover_assistant_turns_only(tiny_model_dir, tmp_path):
    """Through the SFT trainer the stage builds: labels of a multi-turn row are exactly the assistant replies."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from ifforge.train.sft import GroupedSFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, bf16=False, use_cpu=True,
                     activation_checkpointing=False, report_to="none", max_length=256)
    trainer = GroupedSFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args,
                                train_dataset=Dataset.from_list([{"messages": CHAT}]), processing_class=tokenizer)
    row = trainer.train_dataset[0]
    labelled = [t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100]
    unlabelled = [t for t, lab in zip(row["input_ids"], row["labels"]) if lab == -100]
    assert tokenizer.decode(labelled) == "Mango.<|im_end|>Oak.<|im_end|>"
    text_without_labels = tokenizer.decode(unlabelled)
    for turn in CHAT:
        if turn["role"] != "assistant":
            assert turn["content"] in text_without_labels  # all of it unlabelled
    assert all(lab == tok for tok, lab in zip(row["input_ids"], row["labels"]) if lab != -100)


@pytest.mark.parametrize("name", chat_templates.names())
def test_shipped_training_templates_mask_assistant_replies(name, smollm2_dir):
    """Each shipped template, rendered with a real tokenizer: the assistant mask is each reply plus EOS."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    template = chat_templates.load(name)
    out = tokenizer.apply_chat_template(CHAT, chat_template=template, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = tokenizer.decode([t for t, m in zip(ids, mask) if m]).replace(" ", "")
    assert masked.endswith(f"Oak.{tokenizer.eos_token}".replace(" ", ""))
    for reply in ("Mango.", "Oak."):
        assert reply in masked
    for text in ("Favourite", "Answer in one word"):
        assert text not in masked
    assert masked.count(tokenizer.eos_token) == 2  # each reply is trained to stop
    # The generation prompt continues where an assistant reply starts, so serving matches training.
    prompt = tokenizer.apply_chat_template(CHAT[:2], chat_template=template, tokenize=False,
                                           add_generation_prompt=True)
    full = tokenizer.apply_chat_template(CHAT[:3], chat_template=template, tokenize=False)
    assert full.startswith(prompt.rstrip())


def test_templates_render_like_the_originals_they_replace(smollm2_dir):
    from transformers import AutoTokenizer

    from ifforge.models import CHATML_TEMPLATE

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    qwen_original = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                     "{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}"
                     "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                     "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    assert chat_templates.renders_like(tokenizer, chat_templates.load("qwen1_5"), qwen_original)
    assert not chat_templates.renders_like(tokenizer, chat_templates.load("qwen1_5"), CHATML_TEMPLATE)
