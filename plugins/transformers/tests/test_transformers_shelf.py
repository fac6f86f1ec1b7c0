"""transformers-safetensors through a real filesystem shelf: the serializer contract for a Bundle
and for a pipeline, and upload -> list -> download -> load in a fresh process that could reach a
(local, recording) Hub endpoint but must not."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract
from modelshelf_transformers import Bundle

FRAMEWORK_MODULES = ("transformers", "torch", "tokenizers", "safetensors")


class TestBundleContract(SerializerContract):
    serializer = "transformers-safetensors"
    heavy_modules = FRAMEWORK_MODULES

    @pytest.fixture
    def model(self, bert_classifier: Any, tokenizer: Any) -> Bundle:
        return Bundle(model=bert_classifier, tokenizer=tokenizer)

    @pytest.fixture
    def sample_input(self, sentences: list[str]) -> list[str]:
        return sentences

    @pytest.fixture
    def predict(self, logits_of: Callable[..., np.ndarray]) -> Callable[[Any, Any], Any]:
        return lambda bundle, texts: logits_of(bundle.model, bundle.tokenizer, texts)


class TestPipelineContract(SerializerContract):
    serializer = "transformers-safetensors"
    heavy_modules = FRAMEWORK_MODULES

    @pytest.fixture
    def model(self, bert_classifier: Any, tokenizer: Any) -> Any:
        from transformers import pipeline

        return pipeline("text-classification", model=bert_classifier, tokenizer=tokenizer)

    @pytest.fixture
    def sample_input(self, sentences: list[str]) -> list[str]:
        return sentences

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        def predict(classify: Any, texts: list[str]) -> np.ndarray:
            scored = classify(texts, top_k=None)
            return np.array(
                [[s["score"] for s in sorted(row, key=lambda s: s["label"])] for row in scored]
            )

        return predict


class RecordingHub(http.server.BaseHTTPRequestHandler):
    """Answers 404 to everything and remembers every path asked for."""

    requests: list[str] = []

    def _answer(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recording_hub() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server to stand in for the Hub, and the list of requests it received."""
    RecordingHub.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", RecordingHub.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


FRESH_PROCESS = """
import json, sys
import modelshelf

shelf_path, out = sys.argv[1:3]
texts = json.loads(sys.argv[3])
shelf = modelshelf.open(shelf_path)
listed = [v.version for v in shelf.versions("nlp/sentiment")]
downloaded = shelf.download("nlp/sentiment:1", out + ".files")
files = sorted(p.relative_to(downloaded).as_posix() for p in downloaded.rglob("*") if p.is_file())

import torch
bundle = shelf.load("nlp/sentiment:1")
with torch.no_grad():
    logits = bundle.model(**bundle.tokenizer(texts, padding=True, return_tensors="pt")).logits
classify = shelf.load("nlp/sentiment:2")
json.dump({
    "listed": listed,
    "files": files,
    "bundle": [type(bundle).__name__, type(bundle.model).__name__, type(bundle.tokenizer).__name__],
    "logits": logits.tolist(),
    "pipeline": [type(classify).__name__, classify.task],
    "classified": classify(texts, top_k=None),
}, open(out, "w"))
"""


def test_upload_list_download_and_load_in_a_fresh_process_without_the_hub(
    local_shelf: Any,
    bert_classifier: Any,
    tokenizer: Any,
    sentences: list[str],
    logits_of: Callable[..., np.ndarray],
    recording_hub: tuple[str, list[str]],
    tmp_path: Path,
) -> None:
    import transformers
    from transformers import pipeline

    bundle_version = local_shelf.upload(
        "nlp/sentiment", Bundle(model=bert_classifier, tokenizer=tokenizer), metrics={"f1": 0.5}
    )
    classify = pipeline("text-classification", model=bert_classifier, tokenizer=tokenizer)
    pipeline_version = local_shelf.upload("nlp/sentiment", classify)

    assert (bundle_version.version, pipeline_version.version) == (1, 2)
    for version in (bundle_version, pipeline_version):
        assert version.serializer.name == "transformers-safetensors"
        assert version.serializer.distribution == "modelshelf-transformers"
        assert version.framework.name == "transformers"
        assert version.framework.version == transformers.__version__
    paths = [f.path for f in bundle_version.files]
    assert "model/model.safetensors" in paths and "tokenizer/tokenizer.json" in paths
    assert not [p for p in paths if p.endswith((".bin", ".pt", ".pkl"))]
    assert bundle_version.signature is not None
    assert bundle_version.signature["outputs"][0]["classes"] == ["negative", "neutral", "positive"]
    assert pipeline_version.signature is not None
    assert pipeline_version.signature["task"] == "text-classification"

    hub_url, hub_requests = recording_hub
    out = tmp_path / "fresh.json"
    env = {
        **os.environ,
        "MODELSHELF_CACHE": str(tmp_path / "fresh-process-cache"),
        "HF_HOME": str(tmp_path / "hf-home"),
        # The Hub is allowed and points at the recording server: any request would show there.
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": hub_url,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(FRESH_PROCESS),
            str(tmp_path / "shelf"),
            str(out),
            json.dumps(sentences),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())

    assert hub_requests == []
    assert report["listed"] == [1, 2]
    assert report["files"] == sorted(paths)
    assert report["bundle"] == ["Bundle", "BertForSequenceClassification", type(tokenizer).__name__]
    np.testing.assert_array_equal(
        np.array(report["logits"], dtype="float32"),
        logits_of(bert_classifier, tokenizer, sentences),
    )
    assert report["pipeline"] == [type(classify).__name__, "text-classification"]
    assert report["classified"] == json.loads(json.dumps(classify(sentences, top_k=None)))


def test_processor_bundle_on_a_shelf(
    local_shelf: Any, speech_processor: Any, waveform: np.ndarray
) -> None:
    version = local_shelf.upload("speech/front", Bundle(processor=speech_processor))
    assert {f.path.split("/")[0] for f in version.files} == {"processor"}
    loaded = local_shelf.load(version.ref)
    assert isinstance(loaded, Bundle) and loaded.model is None and loaded.tokenizer is None
    np.testing.assert_array_equal(
        loaded.processor(audio=waveform, sampling_rate=16000, return_tensors="np")["input_values"],
        speech_processor(audio=waveform, sampling_rate=16000, return_tensors="np")["input_values"],
    )
