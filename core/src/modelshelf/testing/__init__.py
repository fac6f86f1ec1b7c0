"""Contract test suites for storage backends and serializers, for modelshelf's own plugins and for
third-party authors.

Subclass a contract in your test module and override its abstract fixtures::

    from modelshelf.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage_url(self, my_server):
            return f"my://{fresh_bucket(my_server)}/prefix"

See ``docs/plugin-authors.md``. Names are resolved lazily so that the pytest plugin registered by
this package costs nothing in test sessions that do not use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SerializerContract", "StorageContract"]


def __getattr__(name: str) -> Any:
    if name == "StorageContract":
        from .storage_contract import StorageContract

        return StorageContract
    if name == "SerializerContract":
        from .serializer_contract import SerializerContract

        return SerializerContract
    raise AttributeError(f"module 'modelshelf.testing' has no attribute {name!r}")
