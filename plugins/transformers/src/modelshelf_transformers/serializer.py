"""The ``transformers-safetensors`` serializer: Hugging Face models, tokenizers, processors and
pipelines, saved with ``save_pretrained`` (weights as safetensors) and loaded offline.

What is stored: each part in its own subdirectory, written by the part's own ``save_pretrained``:

* ``model/``: ``config.json``, ``model.safetensors`` (or shards + index), ``generation_config.json``;
* ``tokenizer/``: ``tokenizer.json``, ``tokenizer_config.json``, vocabulary files;
* ``processor/`` (or ``image_processor/``, ``video_processor/``, ``feature_extractor/`` for the
  parts of a pipeline): the processor's JSON configs (and its tokenizer files for a
  ``ProcessorMixin``).

``details`` records what was saved (``kind``: ``model``, ``tokenizer``, ``processor``, ``bundle`` or
``pipeline``), and for each part its kind, its class name in the ``transformers`` namespace and the
Auto class that can rebuild it; a pipeline also records its task.

Safety: weights are safetensors only (a pickle-based weight file is refused at save and never read
at load: ``use_safetensors=True``); every load passes ``local_files_only=True`` so it never reaches
the Hub; ``trust_remote_code`` is never set, and a part that needs code from outside the
``transformers`` package (a custom class, or a config with ``auto_map``) is refused with a clear
error both when saving and when loading.

Nothing here imports ``transformers`` (or torch) at module level.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError
from modelshelf.serializers import SavedModel, Serializer, check_options, model_file, reading

from .bundle import Bundle

#: Part kind -> (base class in the ``transformers`` namespace, Auto class that loads any of them).
#: Order matters when classifying an object: a video processor is also an image processor.
PART_KINDS: dict[str, tuple[str, str]] = {
    "model": ("PreTrainedModel", "AutoModel"),
    "tokenizer": ("PreTrainedTokenizerBase", "AutoTokenizer"),
    "processor": ("ProcessorMixin", "AutoProcessor"),
    "video_processor": ("BaseVideoProcessor", "AutoVideoProcessor"),
    "image_processor": ("ImageProcessingMixin", "AutoImageProcessor"),
    "feature_extractor": ("FeatureExtractionMixin", "AutoFeatureExtractor"),
}

#: Subdirectories a version may hold: Bundle fields and pipeline arguments.
PART_DIRECTORIES = frozenset(
    {"model", "tokenizer", "processor", "image_processor", "video_processor", "feature_extractor"}
)

#: Bundle fields, which are also their subdirectories.
BUNDLE_PARTS = frozenset({"model", "tokenizer", "processor"})

#: Pipeline attributes saved, in the order ``transformers.pipeline`` takes them.
PIPELINE_PARTS = (
    "model",
    "tokenizer",
    "processor",
    "image_processor",
    "video_processor",
    "feature_extractor",
)

#: File suffixes of pickle-based checkpoints: never written, never read.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})

#: Load options this serializer sets itself; passing them would defeat offline, safe loading.
RESERVED_LOAD_OPTIONS = frozenset({"trust_remote_code", "local_files_only", "use_safetensors"})

#: Options passed on to the model's ``save_pretrained`` / ``from_pretrained``.
SAVE_OPTIONS = ("max_shard_size",)
LOAD_OPTIONS = ("dtype", "torch_dtype", "device_map", "attn_implementation")


class TransformersSerializer(Serializer):
    """Hugging Face ``transformers`` objects <-> ``save_pretrained`` directories, offline.

    ``save(obj, directory, **options)``: ``obj`` is a model, tokenizer, processor (any kind),
    :class:`~modelshelf_transformers.Bundle` or pipeline; ``options`` (``max_shard_size``) go to
    the model's ``save_pretrained``.

    ``load(directory, details=..., **options)`` returns the same shape that was saved: a model
    (in eval mode, with the saved dtype), a tokenizer, a processor, a ``Bundle`` with the same parts,
    or a pipeline of the same task rebuilt with ``transformers.pipeline``. ``options``
    (``dtype``, ``device_map``, ``attn_implementation``) go to the model's ``from_pretrained``.
    ``trust`` is accepted and ignored: nothing stored can execute code.
    """

    name = "transformers-safetensors"
    framework = "transformers"
    format = "safetensors"
    safe = True
    claims = (
        "transformers.modeling_utils.PreTrainedModel",
        "transformers.tokenization_utils_base.PreTrainedTokenizerBase",
        "transformers.processing_utils.ProcessorMixin",
        "transformers.image_processing_base.ImageProcessingMixin",
        # Where ImageProcessingMixin lived before transformers 4.42.
        "transformers.image_processing_utils.ImageProcessingMixin",
        "transformers.feature_extraction_utils.FeatureExtractionMixin",
        "transformers.pipelines.base.Pipeline",
        "modelshelf_transformers.bundle.Bundle",
    )

    # --- save ------------------------------------------------------------------------------

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        transformers = import_transformers()
        if options.get("safe_serialization", True) is not True:
            raise ModelshelfError(
                "transformers-safetensors always saves safetensors: drop safe_serialization=False"
            )
        options.pop("safe_serialization", None)
        check_options(self.name, "save", options, SAVE_OPTIONS)
        task: str | None = None
        if isinstance(obj, Bundle):
            kind, parts = "bundle", obj.parts()
        elif isinstance(obj, transformers.Pipeline):
            kind, task = "pipeline", str(obj.task)
            parts = {
                name: part
                for name in PIPELINE_PARTS
                if (part := getattr(obj, name, None)) is not None
            }
        else:
            kind = part_kind(transformers, obj)
            parts = {"model" if kind == "model" else _single_directory(kind): obj}

        # Check every part before writing any, so a bad part fails fast and writes nothing.
        for part in parts.values():
            refuse_custom_code(transformers, part, part_kind(transformers, part))
        if "model" not in parts and options:
            raise InvalidModel(
                f"save options ({', '.join(sorted(options))}) go to a model's save_pretrained, "
                f"and this {kind} holds no model: drop them"
            )
        components = {
            subdirectory: save_part(
                transformers,
                part,
                directory / subdirectory,
                options if subdirectory == "model" else {},
            )
            for subdirectory, part in parts.items()
        }
        details: dict[str, Any] = {"kind": kind, "components": components}
        if task is not None:
            details["task"] = task
        return SavedModel(
            framework="transformers",
            framework_version=transformers.__version__,
            signature=signature_of(parts, components, task),
            details=details,
        )

    # --- load ------------------------------------------------------------------------------

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        reserved = sorted(RESERVED_LOAD_OPTIONS & set(options))
        if reserved:
            raise ModelshelfError(
                f"do not pass {', '.join(reserved)}: transformers-safetensors always loads from "
                "local files only, from safetensors, and never runs remote code"
            )
        kind = details.get("kind")
        components = details.get("components")
        if kind not in {"bundle", "pipeline", *PART_KINDS} or not isinstance(components, Mapping):
            raise ModelshelfError(
                f"this version's transformers details are not understood (kind={kind!r}): it was "
                "written by another modelshelf-transformers; upgrade modelshelf-transformers"
            )
        allowed = BUNDLE_PARTS if kind == "bundle" else PART_DIRECTORIES
        for subdirectory in components:
            if subdirectory not in allowed:
                raise ModelshelfError(
                    f"this version names an unknown part {subdirectory!r}: upgrade "
                    "modelshelf-transformers"
                )
        check_options(self.name, "load", options, LOAD_OPTIONS)
        if options and "model" not in components:
            raise ModelshelfError(
                "load options are passed to the model's from_pretrained, and this version holds "
                "no model: drop them"
            )
        transformers = import_transformers()
        parts = {
            subdirectory: load_part(
                transformers,
                # Checked against PART_DIRECTORIES above; this also refuses one that is missing,
                # a link, or not a directory, before transformers looks inside.
                model_file(directory, subdirectory, kind="directory"),
                part_details,
                options if subdirectory == "model" else {},
            )
            for subdirectory, part_details in components.items()
        }
        if kind == "bundle":
            return Bundle(**parts)
        if kind == "pipeline":
            task = details.get("task")
            if not isinstance(task, str):
                raise ModelshelfError("this pipeline version records no task: re-upload it")
            return transformers.pipeline(task=task, **parts)
        return next(iter(parts.values()))


# --- parts ---------------------------------------------------------------------------------


def import_transformers() -> ModuleType:
    try:
        import transformers
    except ModuleNotFoundError as exc:
        raise ModelshelfError(
            f"the transformers-safetensors serializer needs transformers and torch ({exc.name} "
            "is missing): pip install transformers torch"
        ) from exc
    return transformers


def _base(transformers: ModuleType, kind: str) -> type | None:
    """The base class of a part kind, or None when this transformers has no such kind."""
    found = getattr(transformers, PART_KINDS[kind][0], None)
    # Optional features (video processors without torchvision) are placeholder objects.
    return (
        found if isinstance(found, type) and found.__module__.startswith("transformers.") else None
    )


def part_kind(transformers: ModuleType, obj: Any) -> str:
    """Which kind of part ``obj`` is, or a one-line error when it is none of them."""
    for kind in PART_KINDS:
        base = _base(transformers, kind)
        if base is not None and isinstance(obj, base):
            return kind
    raise InvalidModel(
        f"transformers-safetensors stores transformers models, tokenizers, processors, pipelines "
        f"and modelshelf_transformers.Bundle, not {type(obj).__module__}.{type(obj).__qualname__}"
    )


def _single_directory(kind: str) -> str:
    # A lone image processor or feature extractor is stored where a Bundle keeps its processor,
    # so that uploading it alone or in a Bundle gives the same layout.
    return "tokenizer" if kind == "tokenizer" else "processor"


def save_part(
    transformers: ModuleType, obj: Any, directory: Path, model_options: Mapping[str, Any]
) -> dict[str, Any]:
    """Write one part with its ``save_pretrained`` below ``directory``; return its details."""
    kind = part_kind(transformers, obj)
    cls = type(obj)
    refuse_custom_code(transformers, obj, kind)
    directory.mkdir(parents=True)
    if kind == "model":
        options = dict(model_options)
        # transformers 4.x can still write pickle; 5.x always writes safetensors and has no flag.
        if "safe_serialization" in inspect.signature(obj.save_pretrained).parameters:
            options["safe_serialization"] = True
        obj.save_pretrained(directory, **options)
    else:
        obj.save_pretrained(directory)
    pickled = pickle_files(directory)
    if pickled:
        raise InvalidModel(
            f"{cls.__name__}.save_pretrained wrote pickle-based files ({', '.join(pickled)}), "
            "which could run code when loaded: this part cannot be stored as safetensors"
        )
    details: dict[str, Any] = {
        "kind": kind,
        "class": cls.__name__,
        "auto_class": auto_class_of(transformers, obj) if kind == "model" else PART_KINDS[kind][1],
    }
    if kind == "model":
        details["model_type"] = str(obj.config.model_type)
        details["dtype"] = str(obj.dtype).removeprefix("torch.")
        details["parameters"] = int(sum(p.numel() for p in obj.parameters()))
    return details


def pickle_files(directory: Path) -> list[str]:
    """Files below ``directory`` whose suffix marks a pickle-based checkpoint."""
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.suffix.lower() in PICKLE_SUFFIXES
    )


def refuse_custom_code(transformers: ModuleType, obj: Any, kind: str) -> None:
    """Refuse a part that could only be loaded back by running code from outside transformers."""
    cls = type(obj)
    named = getattr(transformers, cls.__name__, None)
    if not cls.__module__.startswith("transformers.") or not isinstance(named, type):
        raise InvalidModel(
            f"{cls.__module__}.{cls.__qualname__} is not a class of the transformers library, so "
            "loading it back would need your code, and modelshelf never runs custom or remote "
            f"code (trust_remote_code): store a built-in transformers {kind}, or save the weights "
            "with a torch serializer"
        )
    config = getattr(obj, "config", None) if kind == "model" else None
    auto_map = getattr(config, "auto_map", None) or getattr(obj, "auto_map", None)
    init_kwargs = getattr(obj, "init_kwargs", None)
    if not auto_map and isinstance(init_kwargs, Mapping):
        auto_map = init_kwargs.get("auto_map")
    if auto_map:
        raise InvalidModel(
            f"this {kind} comes from remote code (auto_map in its config), which modelshelf never "
            "runs (trust_remote_code): store a built-in transformers class instead"
        )


def auto_class_of(transformers: ModuleType, model: Any) -> str:
    """The name of an ``AutoModel*`` class that maps this model's config to this model's class.

    Task-specific Auto classes come first, so the recorded class says what the model is for.
    """
    config_class, model_class = type(model.config), type(model)
    found = []
    for name in dir(transformers):
        if not name.startswith("AutoModel"):
            continue
        mapping = getattr(getattr(transformers, name, None), "_model_mapping", None)
        try:
            if mapping is not None and mapping[config_class] is model_class:
                found.append(name)
        except (KeyError, ValueError, AttributeError, ImportError):
            continue  # not in this mapping, or a mapping whose optional backend is missing
    generic = {"AutoModel", "AutoModelForPreTraining"}
    found.sort(key=lambda n: (n in generic, n))
    return found[0] if found else "AutoModel"


def load_part(
    transformers: ModuleType, directory: Path, details: Any, options: Mapping[str, Any]
) -> Any:
    """Load one part from ``directory`` with the class recorded in ``details``, offline."""
    kind = details.get("kind") if isinstance(details, Mapping) else None
    if kind not in PART_KINDS:
        raise ModelshelfError(
            f"unknown transformers part kind {kind!r}: upgrade modelshelf-transformers"
        )
    refuse_remote_code_files(directory, kind)
    pickled = pickle_files(directory)
    if pickled:
        # save() never writes these: the version was made by something else, or tampered with.
        raise ModelshelfError(
            f"the stored {kind} holds pickle-based files ({', '.join(pickled)}) that "
            "transformers-safetensors never writes and never loads: re-upload it with safetensors"
        )
    refuse_outside_shards(directory)
    cls = _resolve(transformers, details.get("class"), kind)
    if cls is None:
        cls = _resolve(transformers, details.get("auto_class"), kind, auto=True)
    if cls is None:
        cls = getattr(transformers, PART_KINDS[kind][1])
    kwargs: dict[str, Any] = {"local_files_only": True, **options}
    if kind == "model":
        kwargs["use_safetensors"] = True
    with reading(f"{directory.name}/", "transformers"):
        return cls.from_pretrained(str(directory), **kwargs)


def refuse_outside_shards(directory: Path) -> None:
    """Check every shard a sharded checkpoint's index names before transformers opens it.

    transformers joins each ``weight_map`` value to the directory as it is, so an index naming
    ``../x.safetensors`` or an absolute path would make it read a file outside the version.
    """
    for index in sorted(directory.glob("*.index.json")):
        try:
            content = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidModel(
                f"could not read {directory.name}/{index.name} of this version as JSON "
                f"({type(exc).__name__}): the stored file is damaged"
            ) from exc
        weight_map = content.get("weight_map") if isinstance(content, dict) else None
        if not isinstance(weight_map, dict):
            raise InvalidModel(
                f"{directory.name}/{index.name} of this version has no weight_map: the stored "
                "file is damaged"
            )
        checked: set[str] = set()
        for shard in weight_map.values():
            # Thousands of tensors share a handful of shards: check each shard once.
            if isinstance(shard, str) and shard in checked:
                continue
            model_file(directory, shard)
            checked.add(shard)


def _resolve(transformers: ModuleType, name: Any, kind: str, *, auto: bool = False) -> Any:
    """A class of the ``transformers`` namespace by its recorded name, or None.

    Only plain attribute names of ``transformers`` are looked up (never a module path from the
    manifest), and the result must be a part of the right kind (or an Auto class).
    """
    if not isinstance(name, str) or not name.isidentifier():
        return None
    if auto:
        if not name.startswith("Auto"):
            return None
        found = getattr(transformers, name, None)
        return found if isinstance(found, type) and hasattr(found, "from_pretrained") else None
    found = getattr(transformers, name, None)
    base = _base(transformers, kind)
    if isinstance(found, type) and base is not None and issubclass(found, base):
        return found
    return None


def refuse_remote_code_files(directory: Path, kind: str) -> None:
    """Refuse a part whose stored configs ask for remote code (``auto_map``)."""
    for config in sorted(directory.glob("*.json")):
        try:
            content = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a config (or unreadable): transformers reports it if it matters
        if isinstance(content, dict) and content.get("auto_map"):
            raise ModelshelfError(
                f"the stored {kind} asks for remote code ({config.name} has auto_map), which "
                "modelshelf never runs (trust_remote_code): it cannot be loaded"
            )


# --- signature -----------------------------------------------------------------------------

#: Inputs whose dtype and shape are fixed by convention (``null``: batch or sequence length).
KNOWN_INPUTS: dict[str, dict[str, Any]] = {
    name: {"dtype": "int64", "shape": [None, None]}
    for name in (
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "position_ids",
        "decoder_input_ids",
        "decoder_attention_mask",
    )
}
KNOWN_INPUTS["input_values"] = {"dtype": "float32", "shape": [None, None]}  # raw audio
KNOWN_INPUTS["pixel_values"] = {"dtype": "float32", "shape": [None, None, None, None]}

#: Auto class suffix -> shape of the ``logits`` output, from config attribute names.
LOGITS_SHAPES: dict[str, tuple[Any, ...]] = {
    "SequenceClassification": (None, "num_labels"),
    "ImageClassification": (None, "num_labels"),
    "AudioClassification": (None, "num_labels"),
    "TokenClassification": (None, None, "num_labels"),
    "CausalLM": (None, None, "vocab_size"),
    "MaskedLM": (None, None, "vocab_size"),
    "Seq2SeqLM": (None, None, "vocab_size"),
}


def signature_of(
    parts: Mapping[str, Any], components: Mapping[str, Mapping[str, Any]], task: str | None
) -> dict[str, Any] | None:
    """The common signature shape, from what the stored objects tell without running them.

    ``inputs``: the names the model takes (from the tokenizer or processor when there is one, else
    the model's main input), with dtype and shape where they are conventional (token ids are
    int64 ``[null, null]``). ``outputs``: ``logits`` for heads whose shape the config gives (its
    ``classes`` are the labels of a classification head). Top-level ``task``, ``model_type``,
    ``architectures`` and ``max_length`` add what transformers knows.
    """
    signature: dict[str, Any] = {}
    model = parts.get("model")
    front = next(
        (
            parts[n]
            for n in (
                "tokenizer",
                "processor",
                "image_processor",
                "video_processor",
                "feature_extractor",
            )
            if n in parts
        ),
        None,
    )
    names = [str(n) for n in getattr(front, "model_input_names", None) or []]
    if not names and model is not None:
        names = [str(model.main_input_name)]
    if names:
        signature["inputs"] = [{"name": n, **KNOWN_INPUTS.get(n, {})} for n in names]
    if model is not None:
        config = model.config
        output = _logits_of(model, str(components["model"].get("auto_class", "")))
        if output is not None:
            signature["outputs"] = [output]
        signature["model_type"] = str(config.model_type)
        signature["architectures"] = list(config.architectures or [type(model).__name__])
    if task:
        signature["task"] = task
    tokenizer = parts.get("tokenizer")
    max_length = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)): not a real length.
    if isinstance(max_length, int) and 0 < max_length < 10**9:
        signature["max_length"] = max_length
    return signature or None


def _logits_of(model: Any, auto_class: str) -> dict[str, Any] | None:
    """The ``logits`` output of a task head, or None when its shape is not in the config."""
    head = next((h for h in LOGITS_SHAPES if auto_class.endswith(h)), None)
    if head is None:
        return None
    config = model.config
    shape: list[int | None] = []
    for dimension in LOGITS_SHAPES[head]:
        size = getattr(config, dimension, None) if isinstance(dimension, str) else None
        if isinstance(dimension, str) and not isinstance(size, int):
            return None
        shape.append(size)
    output: dict[str, Any] = {
        "name": "logits",
        "dtype": str(model.dtype).removeprefix("torch."),
        "shape": shape,
    }
    if head.endswith("Classification"):
        labels = config.id2label
        output["classes"] = [str(labels[i]) for i in sorted(labels)]
    return output
