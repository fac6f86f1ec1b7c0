"""``Bundle``: a model with its tokenizer and processor, uploaded together as one version.

Deliberately free of any ``transformers`` import: the serializer claims ``Bundle`` by its qualified
name (``modelshelf_transformers.bundle.Bundle``), and building one must stay cheap.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from modelshelf.errors import InvalidModel


@dataclasses.dataclass(frozen=True)
class Bundle:
    """The parts of a Hugging Face model that belong together; at least one must be given.

    ``model`` is a ``transformers.PreTrainedModel``; ``tokenizer`` a tokenizer (any
    ``PreTrainedTokenizerBase``); ``processor`` a processor, image processor, video processor or
    feature extractor. Each part is stored in its own subdirectory (``model/``, ``tokenizer/``,
    ``processor/``) and loading the version returns a ``Bundle`` with the same parts filled.
    """

    model: Any = None
    tokenizer: Any = None
    processor: Any = None

    def __post_init__(self) -> None:
        if self.model is None and self.tokenizer is None and self.processor is None:
            raise InvalidModel(
                "an empty Bundle has nothing to store: pass model=, tokenizer= and/or processor="
            )

    def parts(self) -> dict[str, Any]:
        """The parts that are set, by field name (which is also their subdirectory)."""
        return {
            field.name: value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) is not None
        }
