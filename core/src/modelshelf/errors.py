"""One exception hierarchy for everything modelshelf raises on purpose.

Every message is meant for a person: it says what was wrong and what to do, on one line.
The CLI prints ``str(error)`` of a :class:`ModelshelfError` and exits 1, without a traceback.
"""

from __future__ import annotations


class ModelshelfError(Exception):
    """Base class of every error modelshelf raises deliberately."""


# --- input -------------------------------------------------------------------------------------


class InvalidName(ModelshelfError, ValueError):
    """A model name, alias or reference does not follow the naming rules."""


class InvalidRecord(ModelshelfError, ValueError):
    """A stored record (manifest, alias, event) is malformed or unsafe."""


class InvalidModel(ModelshelfError, ValueError):
    """A model object or a serializer option cannot be saved (a serializer refuses it)."""


class SchemaTooNew(InvalidRecord):
    """A record was written by a newer modelshelf than this one."""


# --- lookups -----------------------------------------------------------------------------------


class NotFound(ModelshelfError, LookupError):
    """Something that was asked for does not exist."""


class ModelNotFound(NotFound):
    pass


class VersionNotFound(NotFound):
    pass


class AliasNotFound(NotFound):
    pass


class KeyNotFound(NotFound):
    """A storage key does not exist (raised by storage backends)."""


# --- storage -----------------------------------------------------------------------------------


class StorageError(ModelshelfError):
    """A storage backend failed; the message names the shelf URL and what to check."""


class AlreadyExists(StorageError):
    """A create-only write found the key already present."""


class PreconditionFailed(StorageError):
    """A compare-and-swap write found the key changed since it was read."""


class AccessDenied(StorageError):
    """The credentials in use may not perform this operation."""


class ReadOnlyShelf(AccessDenied):
    """The shelf is readable but not writable with the credentials in use."""


class BackendUnavailable(StorageError):
    """The storage service could not be reached (network, endpoint, timeout)."""


class ConditionalWritesUnsupported(StorageError):
    """The storage accepts conditional writes (If-None-Match / If-Match) but ignores the condition."""


class ConflictError(ModelshelfError):
    """Too many concurrent writers: an operation kept losing its compare-and-swap."""


class IntegrityError(ModelshelfError):
    """Stored content does not match its recorded sha256 or size."""


class ChangedWhileUploading(IntegrityError):
    """A local file's bytes changed between hashing it and storing it; nothing was published."""


# --- plugins and serializers -------------------------------------------------------------------


class PluginError(ModelshelfError):
    """A plugin is missing, broken, or conflicts with another one."""


class UnknownScheme(PluginError):
    """No installed storage plugin handles this URL scheme."""


class NoSerializer(PluginError):
    """No installed serializer claims this object, or a named serializer is missing."""


class AmbiguousSerializer(PluginError):
    """Two serializers claim an object equally specifically."""


class UntrustedFormat(ModelshelfError):
    """Loading this version can execute code and trust was not given."""


class PolicyViolation(ModelshelfError):
    """A version does not meet what the shelf's policy (or the caller) requires of it: a protected
    alias's rule, or a required signature. The message is one line naming what is missing."""


class FlaggedByScan(UntrustedFormat):
    """``load(trust=True)`` of a version whose pickle scan flagged dangerous imports."""
