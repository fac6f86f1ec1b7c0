"""Fixtures for modelshelf-transformers tests: tiny models, tokenizers and processors built locally
from configs and vocabularies written here. Nothing is ever downloaded."""

from __future__ import annotations

import os

# Set before transformers / huggingface_hub are first imported (they read these at import time):
# any attempt to reach the Hub fails instead of downloading.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

WORDS = [
    "the",
    "a",
    "model",
    "shelf",
    "is",
    "good",
    "bad",
    "great",
    "awful",
    "fine",
    "not",
    "very",
    "hello",
    "world",
    "registry",
    "safe",
    "fast",
    "slow",
    "and",
    "but",
    "i",
    "like",
    "hate",
    "it",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = [*SPECIAL, *WORDS, *"abcdefghijklmnopqrstuvwxyz", "##s", "##ing", "##ed", "##ly"]
LABELS = {0: "negative", 1: "neutral", 2: "positive"}

#: The fixed input every text test compares predictions on.
SENTENCES = ["the model is very good", "i hate slow registries", "hello world", "not bad but fine"]


@pytest.fixture(autouse=True)
def _own_cache(modelshelf_cache: Path) -> Path:
    """A fresh modelshelf download cache, so no test reads or writes ~/.cache (the shared
    fixtures, ``local_shelf`` among them, come from modelshelf's pytest plugin)."""
    return modelshelf_cache


@pytest.fixture
def sentences() -> list[str]:
    return list(SENTENCES)


@pytest.fixture
def tokenizer() -> Any:
    """A BERT-style WordPiece tokenizer built with the tokenizers library from VOCAB."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


@pytest.fixture
def bert_classifier() -> Any:
    """A 2-layer BERT classifier (hidden size 32, 3 labels), randomly initialised with seed 0."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    return BertForSequenceClassification(config).eval()


@pytest.fixture
def tiny_gpt2() -> Any:
    """A 2-layer GPT-2 language model (embedding size 16) with tied input/output embeddings."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(VOCAB),
        n_positions=32,
        n_embd=16,
        n_layer=2,
        n_head=2,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def speech_processor(tmp_path: Path) -> Any:
    """A Wav2Vec2 processor: a feature extractor plus a CTC tokenizer from a vocab.json written here."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    vocab_file = tmp_path / "ctc-vocab.json"
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz"]
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(letters)}), encoding="utf-8")
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )
    return Wav2Vec2Processor(
        feature_extractor=extractor, tokenizer=Wav2Vec2CTCTokenizer(str(vocab_file))
    )


@pytest.fixture
def waveform() -> np.ndarray:
    """A fixed 0.1 s mono waveform at 16 kHz."""
    return (0.3 * np.sin(np.arange(1600) / 7.0)).astype("float32")


def classifier_logits(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    import torch

    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**encoded).logits.numpy()


@pytest.fixture
def logits_of() -> Callable[[Any, Any, list[str]], np.ndarray]:
    """``logits_of(model, tokenizer, texts)``: classifier logits as numpy, without gradients."""
    return classifier_logits
