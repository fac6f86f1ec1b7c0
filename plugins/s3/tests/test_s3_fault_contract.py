"""The core fault contract on S3Storage: moto behind the fault-injecting proxy.

It also shows the contract catches a backend that misreports a lost or cut answer: the same cases,
run on S3Storage variants that skip the read-back of an uncertain write or the retry of a garbled
answer, fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from modelshelf.testing import FaultContract
from modelshelf.testing.faultproxy import FaultProxy
from modelshelf_s3.storage import S3Storage


class TestS3Faults(FaultContract):
    cut_write_headers = ("Content-Length", "ETag")
    impatient_options = {"max_attempts": 2}

    @pytest.fixture
    def storage_url(self, bucket: str) -> str:
        return f"s3://{bucket}/faults"

    @pytest.fixture
    def server_port(self, moto_endpoint: str) -> int:
        return urlsplit(moto_endpoint).port or 80

    @pytest.fixture
    def proxied_options(self) -> Callable[[str], dict[str, Any]]:
        return lambda endpoint: {"endpoint_url": endpoint}


class _NeverReadsBack(S3Storage):
    """Takes the refusal of a repeated write at face value: a lost answer becomes a conflict."""

    def _etag_if_holds(self, name: str, key: str, data: bytes) -> str | None:
        return None


class _TrustsGarbledAnswers(S3Storage):
    """Never retries a malformed answer."""

    def _is_malformed(self, exc: BaseException) -> bool:
        return False


@pytest.fixture
def broken(
    bucket: str, moto_endpoint: str
) -> Iterator[Callable[[type[S3Storage]], tuple[S3Storage, S3Storage, FaultProxy]]]:
    """``broken(cls)``: a clean S3Storage, a ``cls`` one behind a fault proxy, and the proxy."""
    made: list[Any] = []

    def make(cls: type[S3Storage]) -> tuple[S3Storage, S3Storage, FaultProxy]:
        proxy = FaultProxy(urlsplit(moto_endpoint).port or 80)
        clean = S3Storage(f"s3://{bucket}/broken")
        faulty = cls(f"s3://{bucket}/broken", endpoint_url=proxy.endpoint)
        faulty.stat("warm-up")
        made.extend((clean, faulty, proxy))
        return clean, faulty, proxy

    yield make
    for thing in made:
        thing.close()


def test_contract_fails_a_backend_that_reports_its_own_lost_write_as_a_conflict(
    broken: Any,
) -> None:
    clean, faulty, proxy = broken(_NeverReadsBack)
    contract = TestS3Faults()
    with pytest.raises(pytest.fail.Exception, match="lost is the caller's win; got AlreadyExists"):
        contract.test_lost_answer_to_create_only_write_is_our_win(
            clean, faulty, lambda: proxy.lose_answers(when="PUT")
        )


def test_contract_fails_a_backend_that_does_not_ask_again_after_a_cut_answer(
    broken: Any, tmp_path: Path
) -> None:
    clean, faulty, proxy = broken(_TrustsGarbledAnswers)
    contract = TestS3Faults()
    with pytest.raises(pytest.fail.Exception, match="must be asked again; got MalformedAnswer"):
        contract.test_one_cut_answer_is_asked_again(
            "read", "Content-Length", clean, faulty, proxy, tmp_path
        )
