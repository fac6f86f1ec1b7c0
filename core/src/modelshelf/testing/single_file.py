"""Extra contract cases for serializers that store a model as one file of a fixed name.

Formats such as skops, XGBoost UBJSON, LightGBM text and CatBoost ``.cbm`` always write the same
file name. Mix :class:`SingleFileCases` into the :class:`~modelshelf.testing.SerializerContract`
subclass of such a serializer and name the file::

    class TestXGBoostContract(SingleFileCases, SerializerContract):
        model_file = "model.ubj"

The cases: a version is that one file; whatever ``details`` say, ``load`` opens only that file;
a link planted in its place and a missing file are one :class:`~modelshelf.errors.IntegrityError` line; a damaged file
(cut short, garbled, empty) is one :class:`~modelshelf.errors.InvalidModel` line naming the file
and the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelshelf.errors import IntegrityError, InvalidModel
from modelshelf.plugins import get_registry

__all__ = ["SingleFileCases", "one_line", "version_with_decoy"]

#: Ways a stored file is damaged: cut in half, every byte changed, or emptied.
DAMAGE = ("truncated", "garbage", "empty")


def one_line(error: BaseException) -> str:
    """The message of ``error``, asserting it is one non-empty line (modelshelf's error style)."""
    message = str(error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def version_with_decoy(
    serializer: Any, obj: Any, tmp_path: Path, stored: str, *, link: str = "link"
) -> tuple[Path, Any, Path]:
    """Save ``obj`` into ``tmp_path/snapshot/version`` and plant decoys for ``load`` to refuse: a
    loadable copy of the ``stored`` file outside the version, and a link named ``link`` inside the
    version pointing to it. Returns ``(version, saved model, outside copy)``: had ``load`` opened a
    decoy named by hostile details, it would have succeeded."""
    version = tmp_path / "snapshot" / "version"
    version.mkdir(parents=True)
    saved = serializer.save(obj, version)
    outside = tmp_path / "snapshot" / f"outside{Path(stored).suffix}"
    outside.write_bytes((version / stored).read_bytes())
    (version / link).symlink_to(outside)
    return version, saved, outside


def _damaged(stored: bytes, how: str) -> bytes:
    if how == "truncated":
        return stored[: len(stored) // 2]
    if how == "garbage":
        return bytes((b * 7 + 3) % 256 for b in stored)
    return b""


class SingleFileCases:
    """Cases for a serializer that always writes :attr:`model_file` (use with the contract)."""

    #: The one file the serializer writes into a version.
    model_file = ""

    def _save(self, serializer_name: str, model: Any, version: Path) -> tuple[Any, Any]:
        assert self.model_file, "set model_file to the name of the file the serializer writes"
        serializer = get_registry().serializers()[serializer_name].serializer
        return serializer, serializer.save(model, version)

    def test_a_version_is_that_one_file(
        self, contract_shelf: Any, serializer_name: str, model: Any
    ) -> None:
        version = contract_shelf.upload("single-file", model, serializer=serializer_name)
        assert [f.path for f in version.files] == [self.model_file], "not the one file it names"

    def test_load_opens_only_its_file_whatever_details_say(
        self, serializer_name: str, model: Any, load_options: dict[str, Any], tmp_path: Path
    ) -> None:
        version = tmp_path / "snapshot" / "version"
        version.mkdir(parents=True)
        serializer, saved = self._save(serializer_name, model, version)
        # The file name is fixed: details naming another file are ignored, never followed.
        outside = tmp_path / "snapshot" / "outside.bin"
        outside.write_bytes(b"never to be opened" * 64)
        for value in ("/etc/passwd", str(outside), "../outside.bin", 4, None, "other.bin"):
            serializer.load(
                version, details={**saved.details, "file": value}, trust=True, **load_options
            )
        # A link planted in place of the version's file leads outside it: refused, not followed.
        (version / self.model_file).rename(outside)
        (version / self.model_file).symlink_to(outside)
        with pytest.raises(IntegrityError, match="symbolic link") as caught:
            serializer.load(version, details=saved.details, trust=True, **load_options)
        one_line(caught.value)
        (version / self.model_file).unlink()
        with pytest.raises(IntegrityError, match=f"no file '{self.model_file}'") as caught:
            serializer.load(version, details=saved.details, trust=True, **load_options)
        one_line(caught.value)

    @pytest.mark.parametrize("how", DAMAGE)
    def test_damaged_file_is_one_invalid_model_line(
        self,
        serializer_name: str,
        model: Any,
        load_options: dict[str, Any],
        tmp_path: Path,
        how: str,
    ) -> None:
        serializer, saved = self._save(serializer_name, model, tmp_path)
        path = tmp_path / self.model_file
        path.write_bytes(_damaged(path.read_bytes(), how))
        with pytest.raises(InvalidModel) as caught:
            serializer.load(tmp_path, details=saved.details, trust=True, **load_options)
        message = one_line(caught.value)
        assert f"'{self.model_file}'" in message, f"the message does not name the file: {message}"
        words = serializer_name.split("-")
        assert any(word in message for word in words), f"the message names no format: {message}"
