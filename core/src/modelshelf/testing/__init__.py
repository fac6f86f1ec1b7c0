"""Contract test suites for storage backends and serializers, for modelshelf's own plugins and for
third-party authors.

Subclass a contract in your test module and override its abstract fixtures::

    from modelshelf.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage_url(self, my_server):
            return f"my://{fresh_bucket(my_server)}/prefix"

A network backend also subclasses :class:`FaultContract` (cut answers, cut bodies, lost answers
to conditional writes), run against its service behind :class:`~.faultproxy.FaultProxy`; its
local server starts with :func:`~.servers.local_server`. See ``docs/plugin-authors.md``. Names are resolved lazily so that the pytest plugin registered by
this package costs nothing in test sessions that do not use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FaultContract", "SerializerContract", "StorageContract"]


def __getattr__(name: str) -> Any:
    if name == "StorageContract":
        from .storage_contract import StorageContract

        return StorageContract
    if name == "FaultContract":
        from .fault_contract import FaultContract

        return FaultContract
    if name == "SerializerContract":
        from .serializer_contract import SerializerContract

        return SerializerContract
    raise AttributeError(f"module 'modelshelf.testing' has no attribute {name!r}")
