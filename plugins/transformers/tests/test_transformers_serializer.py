"""The transformers-safetensors serializer against real transformers objects, without a shelf."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError
from modelshelf.serializers import choose
from modelshelf.testing.single_file import one_line
from modelshelf.testing.stand_ins import claim_only
from modelshelf_transformers import Bundle, TransformersSerializer

# Stands in for a torch plugin: every transformers model is also a torch.nn.Module.
TORCH_MODULE = claim_only("test-torch-module", "torch.nn.modules.module.Module", framework="torch")


def files_below(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def round_trip(obj: Any, directory: Path, **load_options: Any) -> tuple[Any, Any]:
    serializer = TransformersSerializer()
    saved = serializer.save(obj, directory)
    return saved, serializer.load(directory, details=saved.details, **load_options)


def test_every_supported_object_resolves_to_this_serializer(
    bert_classifier: Any, tokenizer: Any, speech_processor: Any
) -> None:
    from transformers import pipeline

    text_pipeline = pipeline("text-classification", model=bert_classifier, tokenizer=tokenizer)
    candidates = [TORCH_MODULE, TransformersSerializer()]
    for obj in (
        bert_classifier,
        tokenizer,
        speech_processor,
        speech_processor.feature_extractor,
        speech_processor.tokenizer,
        text_pipeline,
        Bundle(model=bert_classifier, tokenizer=tokenizer),
    ):
        assert choose(obj, candidates).name == "transformers-safetensors", type(obj)


def test_model_is_saved_as_safetensors_with_its_classes_and_signature(
    bert_classifier: Any, tmp_path: Path
) -> None:
    import transformers

    saved = TransformersSerializer().save(bert_classifier, tmp_path)

    assert files_below(tmp_path) == ["model/config.json", "model/model.safetensors"]
    assert (saved.framework, saved.framework_version) == ("transformers", transformers.__version__)
    assert saved.details == {
        "kind": "model",
        "components": {
            "model": {
                "kind": "model",
                "class": "BertForSequenceClassification",
                "auto_class": "AutoModelForSequenceClassification",
                "model_type": "bert",
                "dtype": "float32",
                "parameters": sum(p.numel() for p in bert_classifier.parameters()),
            }
        },
    }
    assert saved.signature == {
        "inputs": [{"name": "input_ids", "dtype": "int64", "shape": [None, None]}],
        "model_type": "bert",
        "architectures": ["BertForSequenceClassification"],
        "outputs": [
            {
                "name": "logits",
                "dtype": "float32",
                "shape": [None, 3],
                "classes": ["negative", "neutral", "positive"],
            }
        ],
    }


def test_bundle_round_trip_gives_identical_logits(
    bert_classifier: Any,
    tokenizer: Any,
    sentences: list[str],
    logits_of: Callable[..., np.ndarray],
    tmp_path: Path,
) -> None:
    saved, loaded = round_trip(Bundle(model=bert_classifier, tokenizer=tokenizer), tmp_path)

    assert {p.split("/")[0] for p in files_below(tmp_path)} == {"model", "tokenizer"}
    assert saved.signature is not None
    token_ids = {"dtype": "int64", "shape": [None, None]}
    assert saved.signature["inputs"] == [
        {"name": "input_ids", **token_ids},
        {"name": "token_type_ids", **token_ids},
        {"name": "attention_mask", **token_ids},
    ]
    assert saved.signature["max_length"] == 64
    assert isinstance(loaded, Bundle) and loaded.processor is None
    assert type(loaded.model) is type(bert_classifier)
    assert not loaded.model.training
    assert loaded.model.config.id2label == bert_classifier.config.id2label
    np.testing.assert_array_equal(
        logits_of(loaded.model, loaded.tokenizer, sentences),
        logits_of(bert_classifier, tokenizer, sentences),
    )


def test_pipeline_round_trip_keeps_task_and_outputs(
    bert_classifier: Any, tokenizer: Any, sentences: list[str], tmp_path: Path
) -> None:
    from transformers import pipeline

    original = pipeline("text-classification", model=bert_classifier, tokenizer=tokenizer)
    saved, loaded = round_trip(original, tmp_path)

    assert saved.details["kind"] == "pipeline"
    assert saved.details["task"] == "text-classification"
    assert saved.signature is not None and saved.signature["task"] == "text-classification"
    assert type(loaded) is type(original) and loaded.task == original.task
    assert loaded(sentences, top_k=None) == original(sentences, top_k=None)


def test_tokenizer_alone_round_trips(tokenizer: Any, sentences: list[str], tmp_path: Path) -> None:
    saved, loaded = round_trip(tokenizer, tmp_path)

    assert all(p.startswith("tokenizer/") for p in files_below(tmp_path))
    assert saved.details["kind"] == "tokenizer"
    assert type(loaded) is type(tokenizer)
    assert (
        loaded(sentences, padding=True)["input_ids"]
        == tokenizer(sentences, padding=True)["input_ids"]
    )
    assert loaded.model_max_length == 64


def test_processor_and_feature_extractor_round_trip(
    speech_processor: Any, waveform: np.ndarray, tmp_path: Path
) -> None:
    saved, loaded = round_trip(speech_processor, tmp_path / "processor")
    assert saved.details["components"]["processor"]["kind"] == "processor"
    assert type(loaded) is type(speech_processor)
    before = speech_processor(audio=waveform, sampling_rate=16000, return_tensors="np")
    after = loaded(audio=waveform, sampling_rate=16000, return_tensors="np")
    assert sorted(after) == sorted(before) == ["attention_mask", "input_values"]
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    assert loaded.tokenizer("abc cab").input_ids == speech_processor.tokenizer("abc cab").input_ids

    extractor = speech_processor.feature_extractor
    saved, loaded_extractor = round_trip(extractor, tmp_path / "extractor")
    assert saved.details["components"]["processor"]["kind"] == "feature_extractor"
    assert saved.signature == {
        "inputs": [
            {"name": "input_values", "dtype": "float32", "shape": [None, None]},
            {"name": "attention_mask", "dtype": "int64", "shape": [None, None]},
        ]
    }
    np.testing.assert_array_equal(
        loaded_extractor(waveform, sampling_rate=16000, return_tensors="np")["input_values"],
        extractor(waveform, sampling_rate=16000, return_tensors="np")["input_values"],
    )


def test_causal_lm_keeps_tied_weights_generation_config_and_greedy_output(
    tiny_gpt2: Any, tmp_path: Path
) -> None:
    import torch

    saved, loaded = round_trip(tiny_gpt2, tmp_path)
    assert "model/generation_config.json" in files_below(tmp_path)
    assert saved.details["components"]["model"]["auto_class"] == "AutoModelForCausalLM"
    assert saved.signature is not None
    assert saved.signature["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": [None, None, tiny_gpt2.config.vocab_size]}
    ]
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()
    prompt = torch.tensor([[2, 5, 6, 7]])
    kwargs = {"max_new_tokens": 6, "do_sample": False}
    assert torch.equal(loaded.generate(prompt, **kwargs), tiny_gpt2.generate(prompt, **kwargs))


def test_half_precision_model_comes_back_in_its_dtype(bert_classifier: Any, tmp_path: Path) -> None:
    import torch

    saved, loaded = round_trip(bert_classifier.to(torch.bfloat16), tmp_path)
    assert saved.details["components"]["model"]["dtype"] == "bfloat16"
    assert loaded.dtype == torch.bfloat16
    for name, tensor in bert_classifier.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_renamed_class_falls_back_to_the_recorded_auto_class(
    bert_classifier: Any,
    tokenizer: Any,
    sentences: list[str],
    logits_of: Callable[..., np.ndarray],
    tmp_path: Path,
) -> None:
    serializer = TransformersSerializer()
    saved = serializer.save(bert_classifier, tmp_path)
    details = json.loads(json.dumps(saved.details))
    # As if a later transformers had renamed the class: the Auto class and config still know it.
    details["components"]["model"]["class"] = "BertForSequenceClassificationRenamed"
    loaded = serializer.load(tmp_path, details=details)
    assert type(loaded) is type(bert_classifier)
    np.testing.assert_array_equal(
        logits_of(loaded, tokenizer, sentences), logits_of(bert_classifier, tokenizer, sentences)
    )


def test_a_custom_model_class_is_refused_at_save(bert_classifier: Any, tmp_path: Path) -> None:
    from transformers import BertForSequenceClassification

    class MyClassifier(BertForSequenceClassification):
        pass

    custom = MyClassifier(bert_classifier.config)
    with pytest.raises(InvalidModel, match=r"MyClassifier is not a class of the transformers") as e:
        TransformersSerializer().save(custom, tmp_path)
    assert "trust_remote_code" in str(e.value) and "\n" not in str(e.value)
    assert files_below(tmp_path) == []


def test_remote_code_is_refused_at_save_and_at_load(bert_classifier: Any, tmp_path: Path) -> None:
    serializer = TransformersSerializer()
    saved = serializer.save(bert_classifier, tmp_path / "clean")

    # A stored config that asks for remote code (as a tampered or foreign version might).
    config_file = tmp_path / "clean" / "model" / "config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"] = {"AutoModel": "evil_module.EvilModel"}
    config_file.write_text(json.dumps(config))
    with pytest.raises(ModelshelfError, match=r"remote code \(config\.json has auto_map\)"):
        serializer.load(tmp_path / "clean", details=saved.details)

    bert_classifier.config.auto_map = {"AutoModel": "evil_module.EvilModel"}
    with pytest.raises(InvalidModel, match="remote code"):
        serializer.save(bert_classifier, tmp_path / "remote")


def test_pickle_weights_in_a_stored_version_are_never_read(
    bert_classifier: Any, tmp_path: Path
) -> None:
    serializer = TransformersSerializer()
    saved = serializer.save(bert_classifier, tmp_path)
    model_dir = tmp_path / "model"
    shutil.copy(model_dir / "model.safetensors", tmp_path / "weights.safetensors")
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(ModelshelfError, match=r"pickle-based files \(pytorch_model\.bin\)"):
        serializer.load(tmp_path, details=saved.details)

    # Beside safetensors weights it is refused all the same, not silently skipped.
    shutil.copy(tmp_path / "weights.safetensors", model_dir / "model.safetensors")
    with pytest.raises(ModelshelfError, match="pickle-based"):
        serializer.load(tmp_path, details=saved.details)
    # And without it, safetensors weights load (use_safetensors=True never reads a .bin).
    (model_dir / "pytorch_model.bin").unlink()
    assert type(serializer.load(tmp_path, details=saved.details)) is type(bert_classifier)


def test_unknown_options_are_refused_naming_the_accepted_ones(
    bert_classifier: Any, tmp_path: Path
) -> None:
    with pytest.raises(ModelshelfError, match=r"variant \(accepted: max_shard_size"):
        TransformersSerializer().save(bert_classifier, tmp_path, variant="fp16")
    assert files_below(tmp_path) == []
    saved = TransformersSerializer().save(bert_classifier, tmp_path)
    with pytest.raises(ModelshelfError, match=r"revision \(accepted: .*dtype, .*torch_dtype"):
        TransformersSerializer().load(tmp_path, details=saved.details, revision="main")


@pytest.mark.parametrize("option", ["trust_remote_code", "local_files_only", "use_safetensors"])
def test_options_that_would_weaken_loading_are_refused(
    bert_classifier: Any, tmp_path: Path, option: str
) -> None:
    saved = TransformersSerializer().save(bert_classifier, tmp_path)
    with pytest.raises(ModelshelfError, match=option):
        TransformersSerializer().load(tmp_path, details=saved.details, **{option: False})


def test_load_options_reach_from_pretrained(bert_classifier: Any, tmp_path: Path) -> None:
    import torch

    saved = TransformersSerializer().save(bert_classifier, tmp_path)
    loaded = TransformersSerializer().load(tmp_path, details=saved.details, dtype=torch.float16)
    assert loaded.dtype == torch.float16


def test_save_options_reach_save_pretrained(bert_classifier: Any, tmp_path: Path) -> None:
    saved = TransformersSerializer().save(bert_classifier, tmp_path, max_shard_size="20KB")
    shards = [p for p in files_below(tmp_path) if p.endswith(".safetensors")]
    assert len(shards) > 1
    assert "model/model.safetensors.index.json" in files_below(tmp_path)
    loaded = TransformersSerializer().load(tmp_path, details=saved.details)
    for name, tensor in bert_classifier.state_dict().items():
        assert np.array_equal(loaded.state_dict()[name].numpy(), tensor.numpy()), name

    with pytest.raises(ModelshelfError, match="safe_serialization=False"):
        TransformersSerializer().save(bert_classifier, tmp_path / "x", safe_serialization=False)


def test_bad_bundles_and_objects_are_refused(tokenizer: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidModel, match="empty Bundle"):
        Bundle()
    with pytest.raises(InvalidModel, match=r"not builtins\.dict"):
        TransformersSerializer().save(Bundle(tokenizer=tokenizer, processor={"a": 1}), tmp_path)
    assert files_below(tmp_path) == []  # the good tokenizer was not written either
    with pytest.raises(InvalidModel, match="holds no model"):
        TransformersSerializer().save(tokenizer, tmp_path / "t", max_shard_size="1MB")


def test_tampered_details_never_name_arbitrary_parts(tokenizer: Any, tmp_path: Path) -> None:
    saved = TransformersSerializer().save(tokenizer, tmp_path)
    details = json.loads(json.dumps(saved.details))
    details["components"]["../outside"] = details["components"].pop("tokenizer")
    shutil.copytree(tmp_path / "tokenizer", tmp_path / "copy")
    with pytest.raises(ModelshelfError, match="unknown part"):
        TransformersSerializer().load(tmp_path, details=details)


def test_importing_the_plugin_and_listing_serializers_imports_no_framework() -> None:
    script = textwrap.dedent(
        """
        import sys
        import modelshelf_transformers
        from modelshelf_transformers import Bundle
        from modelshelf.plugins import get_registry
        assert "transformers-safetensors" in get_registry().serializers()
        loaded = sorted(m for m in ("transformers", "torch", "tokenizers", "safetensors")
                        if m in sys.modules)
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# --- hostile and damaged versions ----------------------------------------------------------------


def test_part_directories_must_be_directories_of_the_version(
    tokenizer: Any, tmp_path: Path
) -> None:
    serializer = TransformersSerializer()
    version = tmp_path / "snapshot" / "version"
    saved = serializer.save(tokenizer, version)
    # A loadable tokenizer outside the version, reached through a planted link.
    outside = tmp_path / "snapshot" / "outside"
    (version / "tokenizer").rename(outside)
    (version / "tokenizer").symlink_to(outside, target_is_directory=True)
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=saved.details)
    one_line(caught.value)
    (version / "tokenizer").unlink()
    with pytest.raises(IntegrityError, match="no directory 'tokenizer'") as caught:
        serializer.load(version, details=saved.details)
    one_line(caught.value)


def test_shard_index_naming_files_outside_the_version_is_refused(
    bert_classifier: Any, tmp_path: Path
) -> None:
    serializer = TransformersSerializer()
    version = tmp_path / "snapshot" / "version"
    saved = serializer.save(bert_classifier, version, max_shard_size="20KB")
    index_path = version / "model" / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = sorted(set(index["weight_map"].values()))[0]
    # The real shard, moved outside the version: had transformers followed the index, it would
    # have loaded without complaint.
    outside = tmp_path / "snapshot" / "outside.safetensors"
    (version / "model" / shard).rename(outside)
    for value in (str(outside), "../../outside.safetensors", 3, "missing.safetensors"):
        tampered = {
            name: (value if file == shard else file) for name, file in index["weight_map"].items()
        }
        index_path.write_text(json.dumps({**index, "weight_map": tampered}))
        with pytest.raises(IntegrityError) as caught:
            serializer.load(version, details=saved.details)
        assert repr(value)[:20] in one_line(caught.value)


@pytest.mark.parametrize(
    "damaged", ["model/model.safetensors", "model/config.json", "tokenizer/tokenizer.json"]
)
@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_damaged_part_file_is_one_invalid_model_line(
    bert_classifier: Any, tokenizer: Any, tmp_path: Path, damaged: str, how: str
) -> None:
    serializer = TransformersSerializer()
    saved = serializer.save(Bundle(model=bert_classifier, tokenizer=tokenizer), tmp_path)
    data = (tmp_path / damaged).read_bytes()
    (tmp_path / damaged).write_bytes(data[: len(data) // 2] if how == "truncated" else b"")
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert damaged.split("/")[0] in one_line(caught.value)
