"""Instruction data: prompt formatting, prompt masking, length-grouped dynamic padding."""

import json

import numpy as np
import pytest

from pbo.objectives import ObjectiveError
from pbo.objectives.llm.config import TINY_PATHS
from pbo.objectives.llm.data import IGNORE, collate, format_prompt, grouped_order, load_records, tokenize


@pytest.fixture(scope="module")
def tokenizer():
    from pbo.objectives.llm.model import load_tokenizer

    return load_tokenizer(str(TINY_PATHS["model"]))


def test_alpaca_template_has_an_input_section_only_when_the_record_has_input():
    with_input = format_prompt("alpaca", {"instruction": "Add.", "input": "2 3", "output": "5"})
    without = format_prompt("alpaca", {"instruction": "Add.", "input": "", "output": "5"})
    assert "### Input:\n2 3" in with_input and with_input.endswith("### Response:\n")
    assert "### Input" not in without and "### Instruction:\nAdd." in without


def test_format_string_template_fills_instruction_and_input():
    assert format_prompt("{instruction}|{input}=", {"instruction": "zx:", "input": "abc"}) == "zx:|abc="


def test_prompt_tokens_are_masked_and_response_ends_with_eos(tokenizer):
    (seq,) = tokenize([{"instruction": "zx:abc=", "input": "", "output": "def"}], tokenizer, "{instruction}", 64)
    batch = collate([seq], tokenizer.pad_token_id)
    labels = batch.labels[0].tolist()
    assert seq.n_prompt == 1 + len("zx:abc=")  # BOS + characters
    assert labels[:seq.n_prompt] == [IGNORE] * seq.n_prompt
    assert labels[seq.n_prompt:] == seq.ids[seq.n_prompt:]
    assert tokenizer.decode(seq.ids[seq.n_prompt:-1]) == "def" and seq.ids[-1] == tokenizer.eos_token_id


def test_padding_is_masked_out_of_attention_and_loss(tokenizer):
    seqs = tokenize([{"instruction": "a:", "output": "b"}, {"instruction": "abcdef:", "output": "ghij"}],
                    tokenizer, "{instruction}", 64)
    batch = collate(seqs, tokenizer.pad_token_id)
    assert batch.n_pad == len(seqs[1].ids) - len(seqs[0].ids)
    assert batch.attention_mask[0].sum() == len(seqs[0].ids)
    assert (batch.labels[0, len(seqs[0].ids):] == IGNORE).all()
    assert batch.n_targets == 2 + 5  # response + EOS of each


def test_length_grouping_pads_less_than_random_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=2048)

    def padding(batches):
        return sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)

    grouped = grouped_order(lengths, 16, np.random.default_rng(1))
    random_order = np.random.default_rng(1).permutation(len(lengths))
    plain = [random_order[i:i + 16] for i in range(0, len(lengths), 16)]
    assert sorted(np.concatenate(grouped).tolist()) == list(range(len(lengths)))
    assert padding(grouped) < 0.2 * padding(plain)


def test_sequences_are_truncated_to_max_length(tokenizer):
    (seq,) = tokenize([{"instruction": "ab:", "output": "x" * 50}], tokenizer, "{instruction}", 16)
    assert len(seq.ids) == 16


def test_missing_local_dataset_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(ObjectiveError, match="does not exist"):
        load_records(str(tmp_path / "nope.jsonl"))


def test_records_without_alpaca_fields_are_an_error(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"prompt": "a", "completion": "b"}]))
    with pytest.raises(ObjectiveError, match="not Alpaca format"):
        load_records(str(path))


def test_shipped_tiny_dataset_is_alpaca_format():
    records = load_records(str(TINY_PATHS["dataset"]))
    assert len(records) == 2000 and {"instruction", "input", "output"} <= set(records[0])
