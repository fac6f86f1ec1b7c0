"""The pickle scan at upload: which callables a pickle would import when loaded, without loading it.

A pickle runs code by importing a callable (opcodes ``GLOBAL``, ``STACK_GLOBAL``, ``INST``) and
calling it (``REDUCE``, ``OBJ``, ``NEWOBJ``, ``BUILD``). This scanner walks the opcode stream with
:mod:`pickletools` (which parses and never executes) and lists every import outside an allow-list
of constructors that ML pickles need and that cannot reach the file system, a process or the
network (numpy arrays, collections, scikit-learn estimators, torch tensor rebuilders...).

It is a tripwire, not a proof: an allow-listed class with a harmful ``__setstate__`` would pass,
and a file that stops parsing half-way is reported with a note (its start was scanned). The
verdict goes into the manifest; ``load(trust=True)`` of a version the scan flagged still refuses
unless told ``trust="ignore-scan"``. Files are recognised by their bytes (a pickle protocol
header, or a zip archive holding ``.pkl`` members as torch writes them), not by their names.
"""

from __future__ import annotations

import pickletools
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from .records import ScanFinding, ScanVerdict

SCANNER = "modelshelf-pickletools/1"
#: Scan at most this much of one pickle stream (a weights blob inside a pickle is skipped by
#: pickletools without being read into an object, so this bounds time, not correctness of the start).
MAX_SCAN_BYTES = 4 << 30

#: Modules whose every public name is a harmless data constructor for ML pickles.
SAFE_MODULE_PREFIXES = (
    "numpy.",
    "sklearn.",
    "scipy.sparse.",
    "collections.",
    "datetime.",
    "decimal.",
    "fractions.",
    "xgboost.",
    "lightgbm.",
    "catboost.",
    "pandas.core.",
    "pandas._libs.",
    "torch.nn.modules.",
    "statsmodels.",
    "uuid.",
    "copyreg._reconstructor",
)
#: Exact ``module.name`` imports that are harmless.
SAFE_GLOBALS = frozenset(
    {
        "builtins.set",
        "builtins.frozenset",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.complex",
        "builtins.bool",
        "builtins.str",
        "builtins.bytes",
        "builtins.bytearray",
        "builtins.slice",
        "builtins.range",
        "builtins.object",
        "copyreg._reconstructor",
        "collections.OrderedDict",
        "collections.defaultdict",
        "_codecs.encode",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch.FloatStorage",
        "torch.DoubleStorage",
        "torch.HalfStorage",
        "torch.LongStorage",
        "torch.IntStorage",
        "torch.BFloat16Storage",
        "torch.ByteStorage",
        "torch.BoolStorage",
        "torch.storage._load_from_bytes",
        "torch.Size",
        "torch.device",
        "torch.float32",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
    }
)
#: Names that are never harmless, even inside an allowed module prefix.
_NEVER = (
    "os.",
    "posix.",
    "nt.",
    "subprocess.",
    "builtins.eval",
    "builtins.exec",
    "builtins.open",
    "builtins.__import__",
    "builtins.getattr",
    "builtins.compile",
    "runpy.",
    "importlib.",
    "socket.",
    "shutil.",
    "sys.",
    "pickle.",
    "marshal.",
    "ctypes.",
    "webbrowser.",
    "pty.",
)
_PROTOCOL_HEADER = {bytes([0x80, n]) for n in range(2, 6)}
#: Protocols 0 and 1 have no header: files with these suffixes are scanned whatever they start with.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".pt", ".pth", ".ckpt")
_STRING_OPS = frozenset(
    {
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
    }
)


#: Beyond ``_NEVER``: what reaches files, the network, processes or arbitrary attributes.
_DANGEROUS = (
    *_NEVER,
    "builtins.setattr",
    "builtins.delattr",
    "builtins.globals",
    "builtins.locals",
    "builtins.vars",
    "builtins.breakpoint",
    "builtins.input",
    "builtins.memoryview",
    "io.",
    "_io.",
    "pathlib.",
    "codecs.open",
    "tempfile.",
    "glob.",
    "zipfile.",
    "tarfile.",
    "urllib.",
    "http.",
    "requests.",
    "code.",
    "codeop.",
    "pdb.",
    "multiprocessing.",
    "signal.",
    "asyncio.",
    "threading.",
    "operator.attrgetter",
    "operator.methodcaller",
    "<STACK_GLOBAL of a computed name>",
)


def is_dangerous_global(flagged: str) -> bool:
    """True for an import (as a finding records it, maybe ``member: module.name``) that can run
    code or reach the system by itself; a framework's own classes are not."""
    qualified = _modern(flagged.split(": ", 1)[-1])
    return qualified.startswith(_DANGEROUS)


def _modern(qualified: str) -> str:
    """Protocol 0-2 pickles name the builtins module ``__builtin__`` (its Python 2 name)."""
    return (
        "builtins." + qualified[len("__builtin__.") :]
        if qualified.startswith("__builtin__.")
        else qualified
    )


def is_safe_global(qualified: str) -> bool:
    qualified = _modern(qualified)
    if qualified.startswith(_NEVER):
        return False
    return qualified in SAFE_GLOBALS or qualified.startswith(SAFE_MODULE_PREFIXES)


def looks_like_pickle(head: bytes) -> bool:
    """A pickle of protocol 2-5 starts with PROTO; older protocols are recognised by name only."""
    return head[:2] in _PROTOCOL_HEADER


def _imports(stream: IO[bytes]) -> tuple[set[str], str | None]:
    """Every ``module.name`` the pickle stream imports, and a note if parsing stopped early.

    ``STACK_GLOBAL`` takes module and name from the stack: the strings pushed (or fetched from
    the memo) just before it, which is how every pickler writes them.
    """
    found: set[str] = set()
    # What each push left on the stack, as far as the scan needs it: the string, or None.
    pushed: list[str | None] = []
    memo: dict[int, str | None] = {}
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            name = opcode.name
            top = pushed[-1] if pushed else None
            if name in _STRING_OPS:
                pushed.append(str(arg))
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg or 0)] = top
            elif name == "MEMOIZE":
                memo[len(memo)] = top
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                pushed.append(memo.get(int(arg or 0)))
            elif name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.add(f"{module}.{attr}")
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                module_name = pushed[-2:] if len(pushed) >= 2 else [None, None]
                if None in module_name:
                    found.add("<STACK_GLOBAL of a computed name>")
                else:
                    found.add(f"{module_name[0]}.{module_name[1]}")
                pushed.append(None)
            elif name not in ("PROTO", "FRAME", "STOP"):
                pushed.append(None)
            del pushed[:-8]  # only the last few pushes matter
            if stream.tell() > MAX_SCAN_BYTES:
                return found, f"scanned the first {MAX_SCAN_BYTES} bytes only"
            if name == "STOP":
                break
    except (ValueError, EOFError, UnicodeDecodeError, KeyError, IndexError) as exc:
        return found, f"stopped parsing at byte {stream.tell()}: {exc}"
    return found, None


def _members(path: Path, relative: str) -> Iterable[tuple[str, IO[bytes]]]:
    """The pickle streams inside a file: the file itself, or the ``.pkl`` members of a zip."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:4] != b"PK\x03\x04" and (
        looks_like_pickle(head) or relative.lower().endswith(PICKLE_SUFFIXES)
    ):
        with open(path, "rb") as handle:
            yield "", handle
    elif head[:4] == b"PK\x03\x04" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".pkl"):
                    with archive.open(info) as member:
                        yield info.filename, member


def scan_file(path: Path, relative: str) -> ScanFinding | None:
    """``None`` if ``path`` holds no pickle; else its finding (``imports`` empty when harmless)."""
    seen = False
    bad: set[str] = set()
    notes: list[str] = []
    for member, stream in _members(path, relative):
        seen = True
        found, note = _imports(stream)
        prefix = f"{member}: " if member else ""
        bad |= {f"{prefix}{g}" for g in found if not is_safe_global(g)}
        if note:
            notes.append(f"{prefix}{note}")
    if not seen:
        return None
    return ScanFinding(relative, tuple(sorted(bad)), "; ".join(notes) or None)


def scan_files(files: Mapping[str, Path]) -> ScanVerdict | None:
    """Scan every file (relative path -> local copy); ``None`` when none of them is a pickle."""
    scanned: list[str] = []
    findings: list[ScanFinding] = []
    for relative, path in sorted(files.items()):
        finding = scan_file(path, relative)
        if finding is None:
            continue
        scanned.append(relative)
        if finding.imports or finding.note:
            findings.append(finding)
    if not scanned:
        return None
    return ScanVerdict(SCANNER, tuple(scanned), tuple(findings))


def describe(verdict: ScanVerdict) -> str:
    """One line naming what the scan flagged."""
    flagged = [f for f in verdict.findings if f.imports]

    def ordered(imports: tuple[str, ...]) -> list[str]:  # the dangerous ones first
        return sorted(imports, key=lambda name: not is_dangerous_global(name))

    parts = [
        f"{f.path} imports {', '.join(ordered(f.imports)[:3])}{' ...' if len(f.imports) > 3 else ''}"
        for f in flagged[:2]
    ]
    more = f" (and {len(flagged) - 2} more files)" if len(flagged) > 2 else ""
    return "; ".join(parts) + more
