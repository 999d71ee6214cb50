"""Python client of a Trainvisor shared-memory block: ctypes over the C ABI (shm/include/tv_shm.h).

Standard library only. Same semantics as the C++ API: attach to a block by name, resolve a key
once, then read it every step (a key that does not exist yet returns your default until the
writer adds it); a Snapshot reads several keys from one tree generation; a trainer pushes
telemetry records and the agent polls them. Every failure raises ShmError with the C library's
message, which names the block or key and the reason.

The library is found through $TRAINVISOR_SHM_LIB, then the build tree next to this package
(build/lib/libtrainvisor_shm.so), then the system library path (ctypes.util.find_library, which
also searches $LD_LIBRARY_PATH). A library that cannot be found, or not be loaded from where it was
found, raises ShmError naming the places or the path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
from pathlib import Path
from typing import NamedTuple, Sequence

FLOAT64, INT64, BOOL, STRING = 1, 2, 3, 4
MAX_STRING = 48

READ_ONLY, READ_WRITE = 0, 1

# TelemetryRecord flags (trainvisor/shm/telemetry_ring.hpp).
FLAG_EVAL = 1 << 0
FLAG_NON_FINITE_LOSS = 1 << 1
FLAG_CONFIG_REFUSED = 1 << 2
FLAG_CHECKPOINT = 1 << 3
FLAG_EPOCH_END = 1 << 4
FLAG_FINISHED = 1 << 5


class ShmError(RuntimeError):
    """A failure reported by the shm library; the message names the block or key."""


class _Value(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int32),
        ("b", ctypes.c_int32),
        ("f64", ctypes.c_double),
        ("i64", ctypes.c_int64),
        ("str_len", ctypes.c_uint32),
        ("str", ctypes.c_char * (MAX_STRING + 1)),
    ]


class _Telemetry(ctypes.Structure):
    _fields_ = [
        ("step", ctypes.c_uint64),
        ("epoch", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("wall_time_ns", ctypes.c_int64),
        ("loss", ctypes.c_double),
        ("grad_norm", ctypes.c_double),
        ("learning_rate", ctypes.c_double),
        ("config_revision", ctypes.c_uint64),
        ("val_loss", ctypes.c_double),
        ("val_accuracy", ctypes.c_double),
        ("samples_per_sec", ctypes.c_double),
    ]


class TelemetryRecord(NamedTuple):
    step: int = 0
    epoch: int = 0
    flags: int = 0
    wall_time_ns: int = 0
    loss: float = math.nan
    grad_norm: float = math.nan
    learning_rate: float = math.nan
    config_revision: int = 0
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    samples_per_sec: float = math.nan


def _library_path() -> tuple[str, str]:
    """The library to load and where that came from (for error messages)."""
    env = os.environ.get("TRAINVISOR_SHM_LIB")
    if env:
        return env, "$TRAINVISOR_SHM_LIB"
    here = Path(__file__).resolve().parent
    built = here.parent.parent / "build" / "lib" / "libtrainvisor_shm.so"
    if built.exists():
        return str(built), "the build tree"
    found = ctypes.util.find_library("trainvisor_shm")
    if found:
        return found, "the system library path"
    raise ShmError(
        "libtrainvisor_shm.so not found: set TRAINVISOR_SHM_LIB or build the project "
        f"(looked in $TRAINVISOR_SHM_LIB, {built}, the system library path)"
    )


def _load() -> ctypes.CDLL:
    path, origin = _library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        # An explicit $TRAINVISOR_SHM_LIB that is wrong is an error, not a reason to look on.
        raise ShmError(f"cannot load {path} (from {origin}): {e}") from None
    P, c = ctypes.c_void_p, ctypes
    sig = {
        "tv_shm_abi_version": (c.c_int, []),
        "tv_shm_last_error": (c.c_char_p, []),
        "tv_shm_block_name_for_job": (c.c_int, [c.c_char_p, c.c_char_p, c.c_size_t]),
        "tv_shm_attach": (P, [c.c_char_p, c.c_int]),
        "tv_shm_detach": (None, [P]),
        "tv_shm_resolve": (P, [P, c.c_char_p, c.c_int]),
        "tv_shm_handle_free": (None, [P]),
        "tv_shm_get_f64": (c.c_double, [P, c.c_double]),
        "tv_shm_get_i64": (c.c_int64, [P, c.c_int64]),
        "tv_shm_get_bool": (c.c_int, [P, c.c_int]),
        "tv_shm_get_string": (c.c_int, [P, c.c_char_p, c.c_char_p, c.c_size_t]),
        "tv_shm_handle_bound": (c.c_int, [P]),
        "tv_shm_handle_fallbacks": (c.c_uint64, [P]),
        "tv_shm_snapshot_new": (P, [P, c.POINTER(c.c_char_p), c.POINTER(_Value), c.c_size_t]),
        "tv_shm_snapshot_free": (None, [P]),
        "tv_shm_snapshot_read": (c.c_int, [P, c.POINTER(_Value), c.c_size_t, c.POINTER(c.c_uint64)]),
        "tv_shm_block_lease": (c.c_int, [P, c.POINTER(c.c_uint64), c.c_char_p, c.c_size_t]),
        "tv_shm_block_check": (c.c_int, [P]),
        "tv_shm_telemetry_push": (c.c_int, [P, c.POINTER(_Telemetry)]),
        "tv_shm_telemetry_poll": (
            c.c_long, [P, c.POINTER(_Telemetry), c.c_size_t, c.POINTER(c.c_uint64)]),
    }
    for name, (restype, argtypes) in sig.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ShmError(f"{path} (from {origin}) is not the Trainvisor shm library: it has no "
                           f"{name}") from None
        fn.restype = restype
        fn.argtypes = argtypes
    if lib.tv_shm_abi_version() != 1:
        raise ShmError(f"{path}: C ABI version {lib.tv_shm_abi_version()}, expected 1")
    return lib


_lib = None


def _c() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _error() -> ShmError:
    return ShmError(_c().tv_shm_last_error().decode("utf-8", "replace"))


def _type_of(default) -> int:
    # bool first: it is a subclass of int.
    if isinstance(default, bool):
        return BOOL
    if isinstance(default, int):
        return INT64
    if isinstance(default, float):
        return FLOAT64
    if isinstance(default, str):
        return STRING
    raise ShmError(f"default {default!r} has no block type (use float, int, bool or str)")


_TYPES = {float: FLOAT64, int: INT64, bool: BOOL, str: STRING}


def _to_value(default) -> _Value:
    v = _Value()
    v.type = _type_of(default)
    if v.type == BOOL:
        v.b = int(default)
    elif v.type == INT64:
        v.i64 = default
    elif v.type == FLOAT64:
        v.f64 = default
    else:
        raw = default.encode()
        if len(raw) > MAX_STRING:
            raise ShmError(f"string default of {len(raw)} bytes is too long (limit {MAX_STRING})")
        v.str = raw
        v.str_len = len(raw)
    return v


def _from_value(v: _Value):
    if v.type == FLOAT64:
        return v.f64
    if v.type == INT64:
        return v.i64
    if v.type == BOOL:
        return bool(v.b)
    if v.type == STRING:
        return v.str[: v.str_len].decode("utf-8", "replace")
    return None


def block_name_for_job(job_id: str) -> str:
    buf = ctypes.create_string_buffer(256)
    n = _c().tv_shm_block_name_for_job(job_id.encode(), buf, len(buf))
    if n < 0:
        raise _error()
    return buf.value.decode()


class Handle:
    """A resolved key; get(default) is a bounded, lock-free read. One thread at a time."""

    def __init__(self, ptr: int, path: str, kind: int):
        self._ptr = ptr
        self.path = path
        self._kind = kind
        lib = _c()
        self._get = {FLOAT64: lib.tv_shm_get_f64, INT64: lib.tv_shm_get_i64,
                     BOOL: lib.tv_shm_get_bool}.get(kind)
        self._buf = ctypes.create_string_buffer(MAX_STRING + 1) if kind == STRING else None

    def get(self, default):
        if self._kind == STRING:
            n = _c().tv_shm_get_string(self._ptr, default.encode(), self._buf, len(self._buf))
            if n < 0:
                raise _error()
            return self._buf.raw[:n].decode("utf-8", "replace")
        if self._kind == BOOL:
            return bool(self._get(self._ptr, int(bool(default))))
        return self._get(self._ptr, default)

    @property
    def bound(self) -> bool:
        return bool(_c().tv_shm_handle_bound(self._ptr))

    @property
    def fallbacks(self) -> int:
        return int(_c().tv_shm_handle_fallbacks(self._ptr))

    def __del__(self):
        if getattr(self, "_ptr", None) and _lib is not None:
            _lib.tv_shm_handle_free(self._ptr)
            self._ptr = None


class Snapshot:
    """Keys read together from one tree generation; read() never blocks."""

    def __init__(self, ptr: int, count: int):
        self._ptr = ptr
        self._out = (_Value * count)()
        self._gen = ctypes.c_uint64(0)
        self.count = count

    def read(self) -> tuple[bool, tuple]:
        """(fresh, values): fresh is False when the last good values were served again."""
        rc = _c().tv_shm_snapshot_read(self._ptr, self._out, self.count, ctypes.byref(self._gen))
        if rc < 0:
            raise _error()
        return rc == 1, tuple(_from_value(v) for v in self._out)

    @property
    def generation(self) -> int:
        return int(self._gen.value)

    def __del__(self):
        if getattr(self, "_ptr", None) and _lib is not None:
            _lib.tv_shm_snapshot_free(self._ptr)
            self._ptr = None


class Block:
    """An attached block. read_write=True for a trainer, which pushes telemetry."""

    def __init__(self, name: str, read_write: bool = False):
        self.name = name
        self._ptr = _c().tv_shm_attach(name.encode(), READ_WRITE if read_write else READ_ONLY)
        if not self._ptr:
            raise _error()
        self._records = (_Telemetry * 256)()
        self._missed = ctypes.c_uint64(0)

    @classmethod
    def for_job(cls, job_id: str, read_write: bool = False) -> "Block":
        return cls(block_name_for_job(job_id), read_write)

    def resolve(self, path: str, kind) -> Handle:
        """kind: float, int, bool or str (or FLOAT64, INT64, BOOL, STRING)."""
        code = _TYPES.get(kind, kind)
        ptr = _c().tv_shm_resolve(self._ptr, path.encode(), code)
        if not ptr:
            raise _error()
        return Handle(ptr, path, code)

    def snapshot(self, keys: Sequence[tuple[str, object]]) -> Snapshot:
        """keys: (path, default) pairs; each default's Python type is the key's type."""
        paths = (ctypes.c_char_p * len(keys))(*[p.encode() for p, _ in keys])
        defaults = (_Value * len(keys))(*[_to_value(d) for _, d in keys])
        ptr = _c().tv_shm_snapshot_new(self._ptr, paths, defaults, len(keys))
        if not ptr:
            raise _error()
        return Snapshot(ptr, len(keys))

    def lease(self) -> tuple[int, str] | None:
        """(attempt, token digest in hex) of the lease the block belongs to; None while another
        holder is stamping its own (the block is being taken over). A trainer started for a
        lease stops once this is not its own."""
        attempt = ctypes.c_uint64(0)
        buf = ctypes.create_string_buffer(65)
        rc = _c().tv_shm_block_lease(self._ptr, ctypes.byref(attempt), buf, len(buf))
        if rc < 0:
            raise _error()
        return (int(attempt.value), buf.value.decode()) if rc == 1 else None

    def check(self) -> None:
        """Raises ShmError naming the block and its sizes once it was truncated (an access to a
        truncated block reads zeros instead of killing the process)."""
        if _c().tv_shm_block_check(self._ptr) != 0:
            raise _error()

    def push_telemetry(self, record: TelemetryRecord | None = None, **fields) -> None:
        r = (record or TelemetryRecord())._replace(**fields)
        if _c().tv_shm_telemetry_push(self._ptr, ctypes.byref(_Telemetry(*r))) != 0:
            raise _error()

    def poll_telemetry(self, max_records: int = 256) -> tuple[list[TelemetryRecord], int]:
        """(records, missed): missed counts records overwritten before they could be read."""
        if max_records > len(self._records):
            self._records = (_Telemetry * max_records)()
        self._missed.value = 0
        n = _c().tv_shm_telemetry_poll(self._ptr, self._records, max_records,
                                       ctypes.byref(self._missed))
        if n < 0:
            raise _error()
        out = [TelemetryRecord(*(getattr(t, f) for f, _ in _Telemetry._fields_))
               for t in self._records[:n]]
        return out, int(self._missed.value)

    def close(self) -> None:
        if self._ptr:
            _c().tv_shm_detach(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ptr", None) and _lib is not None:
            _lib.tv_shm_detach(self._ptr)
            self._ptr = None
