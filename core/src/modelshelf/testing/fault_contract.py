"""The fault contract: what a network storage backend must do when the network fails it.

Run it like the storage contract, against the real service (or its emulator), which the contract
reaches a second time through a :class:`~modelshelf.testing.faultproxy.FaultProxy`::

    class TestMyStoreFaults(FaultContract):
        @pytest.fixture
        def storage_url(self, my_bucket):
            return f"my://{my_bucket}/faults"

        @pytest.fixture
        def server_port(self, my_server):
            return my_server.port

        @pytest.fixture
        def proxied_options(self):
            return lambda endpoint: {"endpoint_url": endpoint}

Fixtures to override: ``storage_url`` (a fresh, empty shelf), ``storage_options`` (default
``{}``), ``server_port`` (where the service listens on 127.0.0.1), and ``proxied_options``: a
function from the proxy's ``http://127.0.0.1:PORT`` to the options that reach the same shelf
through it (an SDK configured by environment sets the variable with ``monkeypatch`` and returns
``{}``).

Knobs (class attributes):

* ``cut_headers``: headers every answer to a read or a listing carries (default
  ``("Content-Length",)``); each case runs once per header. ``cut_write_headers``: the same for
  answers to writes (default: ``cut_headers``).
* ``impatient_options``: options that bound the SDK's own retries, for the cases where every
  answer is cut (``{"max_attempts": 2}``); the backend's own ``answer_retry`` is made quick too.
* ``lost_answers``: how answers get lost: ``None`` (the connection closes) and/or an HTTP status
  that replaces the answer (``503``).
* ``conditional_headers``: the request headers that carry the conditions of ``put_if_absent`` and
  ``put_if_match`` (default ``If-None-Match`` and ``If-Match``); ``()`` for a service whose
  conditions travel otherwise (GCS: query parameters), which skips the ignored-conditions cases.

A service whose requests are signed over those headers (Azure Shared Key) overrides
``stripped_options`` (endpoint -> all the shelf's options through the proxy; default:
``storage_options`` updated by ``proxied_options``) with credentials that survive their removal.

The promises, each a case: an answer cut inside its headers is asked again and never misread; a
service that keeps cutting them is :class:`~modelshelf.errors.BackendUnavailable` in one line; a
body cut short is resumed or read again; a conditional write whose answer was lost is reported as
what happened to it (the caller's win, or the conflict), never guessed; a service that accepts
conditional writes but ignores their conditions gets no write at all (:mod:`modelshelf.write_probe`),
while one that honours them pays the probe once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import modelshelf
from modelshelf import write_probe
from modelshelf.errors import (
    AlreadyExists,
    BackendUnavailable,
    ConditionalWritesUnsupported,
    PreconditionFailed,
)
from modelshelf.retry import Backoff
from modelshelf.storage import Storage

from .faultproxy import CONDITIONAL_HEADERS, FaultProxy

__all__ = ["FaultContract"]

#: Methods that write an object on the services modelshelf supports (GCS uploads are POSTs).
WRITES = "PUT,POST"
MiB = 1 << 20
#: Operations whose one cut answer must be asked again.
OPERATIONS = (
    "stat",
    "read",
    "read_stream",
    "list",
    "list_prefixes",
    "put_if_absent",
    "put_if_match",
    "put_file",
)
#: Cut-header cases and the operations each runs.
_CUT_CASES = {
    "test_one_cut_answer_is_asked_again": OPERATIONS,
    "test_answers_always_cut_are_backend_unavailable": ("stat", "read", "list", "put_if_absent"),
}
#: "Every answer": more than any retry budget.
ALWAYS = 1000


def _seed(storage: Storage) -> None:
    storage.put_if_absent("a.json", b'{"a": 1}')
    storage.put_if_absent("models/x/1.json", b"{}")
    storage.put_if_absent("models/y/1.json", b"{}")


def _run(op: str, faulty: Storage, clean: Storage, tmp_path: Path) -> None:
    """Run ``op`` through ``faulty``; check its result against what ``clean`` sees."""
    if op == "stat":
        got = faulty.stat("a.json")
        assert got == clean.stat("a.json"), f"stat misread a cut answer: {got}"
    elif op == "read":
        stored = faulty.read("a.json")
        expected = clean.read("a.json")
        assert (stored.data, stored.etag) == (expected.data, expected.etag), (
            "read misread a cut answer"
        )
    elif op == "read_stream":
        assert b"".join(faulty.read_stream("a.json")) == b'{"a": 1}', (
            "read_stream misread a cut answer"
        )
    elif op == "list":
        keys = sorted(info.key for info in faulty.list("models/"))
        assert keys == ["models/x/1.json", "models/y/1.json"], f"list misread a cut answer: {keys}"
    elif op == "list_prefixes":
        prefixes = sorted(faulty.list_prefixes("models/"))
        assert prefixes == ["models/x/", "models/y/"], (
            f"list_prefixes misread a cut answer: {prefixes}"
        )
    elif op == "put_if_absent":
        etag = faulty.put_if_absent("new.json", b"{}")
        assert etag == _etag(clean, "new.json"), "put_if_absent returned another etag than stored"
    elif op == "put_if_match":
        before = _etag(clean, "a.json")
        etag = faulty.put_if_match("a.json", b'{"a": 2}', before)
        assert etag == _etag(clean, "a.json") != before, (
            "put_if_match returned another etag than stored"
        )
        assert clean.read("a.json").data == b'{"a": 2}'
    else:
        assert op == "put_file"
        local = tmp_path / "blob.bin"
        local.write_bytes(b"z" * 1000)
        faulty.put_file("blobs/z", local)
        assert clean.read("blobs/z").data == b"z" * 1000, "put_file stored other bytes"


def _etag(storage: Storage, key: str) -> str:
    info = storage.stat(key)
    assert info is not None, f"{key} is missing"
    return info.etag


def _lost(promise: str, call: Callable[[], Any]) -> Any:
    """``call()``, failing the contract with ``promise`` if it raises."""
    try:
        return call()
    except Exception as exc:  # any exception: a raw SDK one breaks the promise too
        pytest.fail(f"{promise}; got {type(exc).__name__}: {exc}")


class FaultContract:
    """Tests every network :class:`~modelshelf.storage.Storage` backend must pass."""

    #: A header every answer of the service carries: the one the cut-header cases cut before.
    cut_headers: tuple[str, ...] = ("Content-Length",)
    #: Headers every answer to a write carries (``None``: ``cut_headers``).
    cut_write_headers: tuple[str, ...] | None = None
    #: Options bounding the SDK's own retries when every answer is cut.
    impatient_options: dict[str, Any] = {}
    #: How answers to writes get lost: None closes the connection, a number replaces the answer.
    lost_answers: tuple[int | None, ...] = (None, 503)
    #: Request headers carrying the write conditions; ``()`` skips the ignored-conditions cases.
    conditional_headers: tuple[str, ...] = CONDITIONAL_HEADERS

    # --- fixtures to override ----------------------------------------------------------------

    @pytest.fixture
    def storage_url(self) -> str:
        raise NotImplementedError(
            "override the storage_url fixture: a URL for a fresh, empty shelf"
        )

    @pytest.fixture
    def storage_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def server_port(self) -> int:
        raise NotImplementedError("override the server_port fixture: where the service listens")

    @pytest.fixture
    def proxied_options(self) -> Callable[[str], dict[str, Any]]:
        raise NotImplementedError(
            "override the proxied_options fixture: endpoint -> options reaching the shelf through it"
        )

    def _headers(self, op: str) -> tuple[str, ...]:
        if op.startswith("put") and self.cut_write_headers is not None:
            return self.cut_write_headers
        return self.cut_headers

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """The cut-header cases run once per operation and per header of that operation."""
        ops = _CUT_CASES.get(metafunc.function.__name__)
        if ops is not None:
            pairs = [(op, header) for op in ops for header in self._headers(op)]
            metafunc.parametrize(("op", "header"), pairs, ids=[f"{op}-{h}" for op, h in pairs])

    @pytest.fixture
    def stripped_options(
        self, storage_options: dict[str, Any], proxied_options: Callable[[str], dict[str, Any]]
    ) -> Callable[[str], dict[str, Any]]:
        """Endpoint -> all the options of a shelf reached through a proxy that removes the
        condition headers (default: ``storage_options`` updated by ``proxied_options``)."""
        return lambda endpoint: {**storage_options, **proxied_options(endpoint)}

    # --- derived fixtures ---------------------------------------------------------------------

    @pytest.fixture
    def fault_proxy(self, server_port: int) -> Iterator[FaultProxy]:
        with FaultProxy(server_port) as proxy:
            yield proxy

    @pytest.fixture
    def clean_storage(
        self, storage_url: str, storage_options: dict[str, Any], tmp_path: Path
    ) -> Iterator[Storage]:
        shelf = modelshelf.open(storage_url, cache=tmp_path / "clean-cache", **storage_options)
        try:
            yield shelf.storage
        finally:
            shelf.close()

    @pytest.fixture
    def open_faulty(
        self,
        clean_storage: Storage,
        storage_url: str,
        storage_options: dict[str, Any],
        proxied_options: Callable[[str], dict[str, Any]],
        fault_proxy: FaultProxy,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[Callable[..., Storage]]:
        """``open_faulty(**extra)``: the same shelf through the proxy, with quick retries."""
        opened: list[modelshelf.Shelf] = []

        def open_(**extra: Any) -> Storage:
            options = {**storage_options, **proxied_options(fault_proxy.endpoint), **extra}
            shelf = modelshelf.open(storage_url, cache=tmp_path / "faulty-cache", **options)
            opened.append(shelf)
            if isinstance(getattr(type(shelf.storage), "answer_retry", None), Backoff):
                monkeypatch.setattr(
                    type(shelf.storage), "answer_retry", Backoff(attempts=3, first=0.01)
                )
            # First-use checks (does the bucket exist?) pass before any fault is armed.
            shelf.storage.stat("fault-contract/warm-up")
            return shelf.storage

        yield open_
        for shelf in opened:
            shelf.close()

    @pytest.fixture
    def faulty_storage(self, open_faulty: Callable[..., Storage]) -> Storage:
        return open_faulty()

    # --- answers cut inside their headers -------------------------------------------------------

    def test_one_cut_answer_is_asked_again(
        self,
        op: str,
        header: str,
        clean_storage: Storage,
        faulty_storage: Storage,
        fault_proxy: FaultProxy,
        tmp_path: Path,
    ) -> None:
        _seed(clean_storage)
        fault = fault_proxy.cut_headers(header)
        try:
            _run(op, faulty_storage, clean_storage, tmp_path)
        except Exception as exc:  # any exception: a raw SDK one breaks the promise too
            pytest.fail(
                f"{op}: an answer cut before its {header} header must be asked again; "
                f"got {type(exc).__name__}: {exc}"
            )
        assert fault.hits == 1, f"{op} met no answer carrying {header}: the case proved nothing"

    def test_answers_always_cut_are_backend_unavailable(
        self,
        op: str,
        header: str,
        clean_storage: Storage,
        open_faulty: Callable[..., Storage],
        fault_proxy: FaultProxy,
        tmp_path: Path,
    ) -> None:
        """Every answer cut: BackendUnavailable in one line after asking again, or (a write
        whose cut answer still carried what it needs) the right result; never a misread."""
        _seed(clean_storage)
        faulty = open_faulty(**self.impatient_options)
        fault = fault_proxy.cut_headers(header, times=ALWAYS)
        try:
            _run(op, faulty, clean_storage, tmp_path)
        except BackendUnavailable as exc:
            message = str(exc)
            assert message and "\n" not in message, f"not one line: {message!r}"
            assert fault.hits >= 2, "a cut answer must be asked again before giving up"
        except Exception as exc:  # any other exception, a raw SDK one included
            pytest.fail(
                f"{op}: answers that keep being cut must be BackendUnavailable, not {exc!r}"
            )
        else:
            assert op.startswith("put"), f"{op} returned although every answer was cut"
        assert fault.hits >= 1, f"{op} met no answer carrying {header}: the case proved nothing"

    # --- bodies cut short -------------------------------------------------------------------------

    @pytest.mark.parametrize("op", ["read", "read_stream"])
    def test_body_cut_short_is_read_again(
        self, op: str, clean_storage: Storage, faulty_storage: Storage, fault_proxy: FaultProxy
    ) -> None:
        payload = bytes(range(256)) * (3 * MiB // 256)
        clean_storage.put_if_absent("blob.bin", payload)
        fault = fault_proxy.cut_body(MiB, when="GET")
        if op == "read":
            got = _lost(
                "a read whose body was cut must be read again",
                lambda: faulty_storage.read("blob.bin").data,
            )
        else:
            got = _lost(
                "a stream whose body was cut must resume",
                lambda: b"".join(faulty_storage.read_stream("blob.bin", chunk_size=256 * 1024)),
            )
        assert fault.hits == 1, "no answer body was cut: the case proved nothing"
        assert got == payload, "a body cut short was returned as if whole, or spliced"

    # --- answers to conditional writes lost --------------------------------------------------------

    @pytest.fixture(params=["closed", "status"])
    def lose(self, request: pytest.FixtureRequest, fault_proxy: FaultProxy) -> Callable[[], Any]:
        """``lose()`` arms the loss of the next write's answer, the ways ``lost_answers`` lists."""
        status = next((s for s in self.lost_answers if s is not None), None)
        if request.param == "closed" and None not in self.lost_answers:
            pytest.skip("this backend's answers are not lost by closing the connection")
        if request.param == "status" and status is None:
            pytest.skip("this backend's answers are not replaced by an error status")
        return lambda: fault_proxy.lose_answers(
            when=WRITES, status=None if request.param == "closed" else status
        )

    def test_lost_answer_to_create_only_write_is_our_win(
        self, clean_storage: Storage, faulty_storage: Storage, lose: Callable[[], Any]
    ) -> None:
        fault = lose()
        promise = "a create-only write that landed although its answer was lost is the caller's win"
        etag = _lost(promise, lambda: faulty_storage.put_if_absent("v/1.json", b'{"mine": 1}'))
        assert fault.hits == 1, "no answer was lost: the case proved nothing"
        stored = clean_storage.read("v/1.json")
        assert (stored.data, stored.etag) == (b'{"mine": 1}', etag), promise

    def test_lost_answer_to_conflicting_create_is_a_conflict(
        self, clean_storage: Storage, faulty_storage: Storage, lose: Callable[[], Any]
    ) -> None:
        clean_storage.put_if_absent("v/1.json", b'{"theirs": 1}')
        fault = lose()
        with pytest.raises(AlreadyExists):
            faulty_storage.put_if_absent("v/1.json", b'{"mine": 1}')
        assert fault.hits == 1, "no answer was lost: the case proved nothing"
        assert clean_storage.read("v/1.json").data == b'{"theirs": 1}'

    def test_lost_answer_to_compare_and_swap_is_our_win(
        self, clean_storage: Storage, faulty_storage: Storage, lose: Callable[[], Any]
    ) -> None:
        first = clean_storage.put_if_absent("alias.json", b"1")
        fault = lose()
        promise = "a compare-and-swap that landed although its answer was lost is the caller's win"
        etag = _lost(promise, lambda: faulty_storage.put_if_match("alias.json", b"2", first))
        assert fault.hits == 1, "no answer was lost: the case proved nothing"
        stored = clean_storage.read("alias.json")
        assert (stored.data, stored.etag) == (b"2", etag), promise

    def test_lost_answer_to_stale_compare_and_swap_is_refused(
        self, clean_storage: Storage, faulty_storage: Storage, lose: Callable[[], Any]
    ) -> None:
        first = clean_storage.put_if_absent("alias.json", b"1")
        clean_storage.put_if_match("alias.json", b"2", first)
        fault = lose()
        with pytest.raises(PreconditionFailed):
            faulty_storage.put_if_match("alias.json", b"3", first)
        assert fault.hits == 1, "no answer was lost: the case proved nothing"
        assert clean_storage.read("alias.json").data == b"2"

    # --- a service that ignores the conditions ------------------------------------------------------

    @pytest.fixture
    def open_stripped(
        self,
        clean_storage: Storage,
        storage_url: str,
        stripped_options: Callable[[str], dict[str, Any]],
        server_port: int,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[Callable[[bool], tuple[modelshelf.Shelf, FaultProxy]]]:
        """``open_stripped(strip)``: a fresh shelf on the same root through a proxy that removes
        the condition headers (``strip``) or forwards them (a request-counting pass-through)."""
        if not self.conditional_headers:
            pytest.skip("this service's write conditions travel in no header")
        # Each case starts as a fresh process would: no storage proven yet.
        monkeypatch.setattr(write_probe, "_verified", set())
        opened: list[Any] = []

        def open_(strip: bool) -> tuple[modelshelf.Shelf, FaultProxy]:
            proxy = FaultProxy(server_port, strip=self.conditional_headers if strip else ())
            cache = tmp_path / f"stripped-cache-{len(opened)}"
            shelf = modelshelf.open(storage_url, cache=cache, **stripped_options(proxy.endpoint))
            opened.extend((shelf, proxy))
            return shelf, proxy

        yield open_
        for thing in opened:
            thing.close()

    def test_stripped_conditions_make_the_hazard_real(
        self, open_stripped: Callable[[bool], tuple[modelshelf.Shelf, FaultProxy]]
    ) -> None:
        """Through the stripping proxy two writers both claim a key and a stale compare-and-swap
        wins: the service really ignores the conditions, so the next case proves something."""
        first, proxy = open_stripped(True)
        second, _ = open_stripped(True)
        first.storage.put_if_absent("v/1.json", b'{"writer": "first"}')
        second.storage.put_if_absent("v/1.json", b'{"writer": "second"}')
        assert first.storage.read("v/1.json").data == b'{"writer": "second"}'
        seen = first.storage.put_if_absent("alias.json", b"1")
        second.storage.put_if_match("alias.json", b"2", seen)
        first.storage.put_if_match("alias.json", b"3", seen)
        assert first.storage.read("alias.json").data == b"3"
        assert sum(proxy.stripped.values()) > 0, "no condition header was removed"

    def test_a_service_ignoring_conditions_gets_no_write_and_still_reads(
        self,
        clean_storage: Storage,
        storage_url: str,
        storage_options: dict[str, Any],
        open_stripped: Callable[[bool], tuple[modelshelf.Shelf, FaultProxy]],
        tmp_path: Path,
    ) -> None:
        weights = tmp_path / "weights.bin"
        weights.write_bytes(b"\x07" * 5000)
        with modelshelf.open(
            storage_url, cache=tmp_path / "direct-cache", **storage_options
        ) as direct:
            direct.upload("churn", weights)
        before = sorted(info.key for info in clean_storage.list(""))
        shelf, proxy = open_stripped(True)
        for write in (
            lambda: shelf.upload("churn", weights),
            lambda: shelf.upload("fraud", weights),
            lambda: shelf.set_alias("churn", "prod", 1),
        ):
            with pytest.raises(ConditionalWritesUnsupported) as caught:
                write()
            message = str(caught.value)
            assert "\n" not in message, f"not one line: {message!r}"
            assert shelf.url in message, f"the message does not name the shelf: {message}"
            assert "accepted but not enforced" in message and "upgrade the server" in message
        assert sorted(info.key for info in clean_storage.list("")) == before, (
            "something was written"
        )
        assert shelf.models() == ["churn"]
        assert Path(shelf.load("churn:1")).read_bytes() == b"\x07" * 5000, "reads must keep working"
        assert sum(proxy.stripped.values()) > 0, "no condition header was removed"

    def test_a_service_honouring_conditions_pays_the_probe_once(
        self,
        clean_storage: Storage,
        open_stripped: Callable[[bool], tuple[modelshelf.Shelf, FaultProxy]],
        tmp_path: Path,
    ) -> None:
        shelf, proxy = open_stripped(False)
        write_probe.check_conditional_writes(shelf.storage)
        assert proxy.requests == write_probe.PROBE_REQUESTS
        write_probe.check_conditional_writes(shelf.storage)  # proven in this process: free now
        assert proxy.requests == write_probe.PROBE_REQUESTS
        # A shelf through another endpoint is another storage: one probe on its first write,
        # none for the reads before it or the writes after it.
        weights = tmp_path / "weights.bin"
        weights.write_bytes(b"\x01" * 3000)
        other, again = open_stripped(False)
        assert other.models() == []
        other.upload("churn", weights)
        other.upload("churn", weights)
        other.set_alias("churn", "prod", 2)
        assert Path(other.load("churn@prod")).read_bytes() == b"\x01" * 3000
        probing = [path for _, path in again.seen if f"/{write_probe.PROBE_PREFIX}" in path]
        assert len(probing) == write_probe.PROBE_REQUESTS, f"probe requests: {probing}"
        assert not list(clean_storage.list(write_probe.PROBE_PREFIX)), (
            "a probe object was left behind"
        )
