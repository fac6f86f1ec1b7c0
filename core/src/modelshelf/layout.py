"""Where everything lives below a shelf root: every key string is built here.

::

    .modelshelf.json                            format record: layout version (create-only)
    blobs/sha256/<aa>/<64 hex>                  file contents, content-addressed, immutable
    models/<name>/_versions/<0000000042>.json   version manifest (create-only; tombstone on delete)
    models/<name>/_versions/<0000000042>.deleted  deletion flag: listings skip the version unread
    models/<name>/_aliases/<alias>.json         alias pointer (compare-and-swap)
    models/<name>/_index/<first>-<last>.json    manifests of a block of versions, for fast cold
                                                listings (optional, create-only; see indexes.py)
    models/<name>/_log/<time>-<random>.json     append-only event log
    models/<name>/_attached/<0000000042>/<kind>/<id>.json  records plugins keep beside a version
                                                (signatures...): create-only, travel with copies
    policy/<0000000001>.json                    shelf policy (protected aliases, retention), each
                                                change a new create-only record: history is kept
    leases/<upload|gc>/<id>.json                work in progress (see :mod:`modelshelf.leases`)
    probes/<random>.json                        short-lived conditional-write probes
"""

from __future__ import annotations

import datetime as dt

#: The format record at the shelf root.
FORMAT_KEY = ".modelshelf.json"
#: The layout version this modelshelf writes and the newest it reads.
SHELF_FORMAT = 1
BLOBS_PREFIX = "blobs/sha256/"
MODELS_PREFIX = "models/"
LEASES_PREFIX = "leases/"
PROBES_PREFIX = "probes/"
POLICY_PREFIX = "policy/"


def blob_key(sha256: str) -> str:
    return f"{BLOBS_PREFIX}{sha256[:2]}/{sha256}"


def sha256_of_blob_key(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def model_prefix(name: str) -> str:
    return f"{MODELS_PREFIX}{name}/"


def versions_prefix(name: str) -> str:
    return f"{MODELS_PREFIX}{name}/_versions/"


def version_key(name: str, version: int) -> str:
    return f"{versions_prefix(name)}{version:010d}.json"


def deleted_flag_key(name: str, version: int) -> str:
    return f"{versions_prefix(name)}{version:010d}.deleted"


def aliases_prefix(name: str) -> str:
    return f"{MODELS_PREFIX}{name}/_aliases/"


def alias_key(name: str, alias: str) -> str:
    return f"{aliases_prefix(name)}{alias}.json"


def log_prefix(name: str) -> str:
    return f"{MODELS_PREFIX}{name}/_log/"


def log_key(name: str, at: dt.datetime, token: str) -> str:
    return f"{log_prefix(name)}{at:%Y%m%dT%H%M%S%fZ}-{token}.json"


def version_index_prefix(name: str) -> str:
    return f"{MODELS_PREFIX}{name}/_index/"


def version_index_key(name: str, first: int, last: int) -> str:
    return f"{version_index_prefix(name)}{first:010d}-{last:010d}.json"


def leases_prefix(kind: str) -> str:
    return f"{LEASES_PREFIX}{kind}/"


def lease_key(kind: str, lease_id: str) -> str:
    return f"{leases_prefix(kind)}{lease_id}.json"


def probe_key(token: str) -> str:
    return f"{PROBES_PREFIX}{token}.json"


def attached_prefix(name: str, version: int, kind: str | None = None) -> str:
    """Records attached to ``name:version`` (of one ``kind``, or of every kind)."""
    base = f"{MODELS_PREFIX}{name}/_attached/{version:010d}/"
    return f"{base}{kind}/" if kind is not None else base


def attached_key(name: str, version: int, kind: str, record_id: str) -> str:
    return f"{attached_prefix(name, version, kind)}{record_id}.json"


def policy_key(number: int) -> str:
    return f"{POLICY_PREFIX}{number:010d}.json"
