"""Python client of a Trainvisor shared-memory block, over the C ABI (shm/include/tv_shm.h).

Standard library only. Same semantics as the C++ API: attach to a block by name, resolve a key
once, then read it every step (a key that does not exist yet returns your default until the
writer adds it); a Snapshot reads several keys from one tree generation; a trainer pushes
telemetry records and the agent polls them. Every failure raises ShmError with the C library's
message, which names the block or key and the reason.

The library is found through $TRAINVISOR_SHM_LIB, then the build tree next to this package
(build/lib/libtrainvisor_shm.so), then the system library path (ctypes.util.find_library, which
also searches $LD_LIBRARY_PATH). A library that cannot be found, or not be loaded from where it was
found, raises ShmError naming the places or the path.

The per-step calls (Handle.get, Snapshot.read, Block.push) go through the C extension
trainvisor._shmfast when it is there and linked to the library ctypes loaded; ctypes serves them
otherwise, with the same results and errors. The extension is found through $TRAINVISOR_SHM_EXT,
in the build tree (build/python/trainvisor/), or next to this file (installed);
$TRAINVISOR_SHM_NO_EXT=1 keeps to ctypes. implementation() says which one serves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.machinery
import importlib.util
import math
import os
import time
from pathlib import Path
from typing import NamedTuple, Sequence

ABI_VERSION = 2  # TV_SHM_ABI_VERSION of the library this client speaks to
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
        "tv_shm_block_lease_version": (c.c_uint64, [P]),
        "tv_shm_block_heartbeat": (c.c_int, [P, c.POINTER(c.c_uint64)]),
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
        if name == "tv_shm_abi_version" and fn() != ABI_VERSION:
            # An older library lacks later functions: say so rather than name a missing one.
            raise ShmError(f"{path} (from {origin}): C ABI version {fn()}, expected {ABI_VERSION}")
    return lib


def _extension_path() -> str | None:
    """The extension's file outside this package's folder, or None."""
    env = os.environ.get("TRAINVISOR_SHM_EXT")
    if env:
        return env
    built = Path(__file__).resolve().parent.parent.parent / "build" / "python" / "trainvisor"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (built / f"_shmfast{suffix}").exists():
            return str(built / f"_shmfast{suffix}")
    return None


def _load_extension(lib: ctypes.CDLL):
    """trainvisor._shmfast when it is there and uses the library `lib` is, else None."""
    if os.environ.get("TRAINVISOR_SHM_NO_EXT"):
        return None
    path = _extension_path()
    try:
        if path is None:
            from trainvisor import _shmfast as module
        else:
            spec = importlib.util.spec_from_file_location("trainvisor._shmfast", path)
            if spec is None:
                raise ImportError(f"{path} is not a Python extension")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except ImportError:
        if os.environ.get("TRAINVISOR_SHM_EXT"):
            raise  # named explicitly: failing to load it is an error, not a reason to fall back
        return None
    # The extension is linked to libtrainvisor_shm.so by name, and the library ctypes loaded
    # first carries that name, so both normally are one; should they differ, ctypes alone
    # serves rather than two libraries on one block.
    if module.library_address() != ctypes.cast(lib.tv_shm_abi_version, ctypes.c_void_p).value:
        return None
    module.bind(ShmError)
    return module


_lib = None
_fast = None  # trainvisor._shmfast, when it serves


def _c() -> ctypes.CDLL:
    global _lib, _fast
    if _lib is None:
        lib = _load()
        _fast = _load_extension(lib)
        _lib = lib
    return _lib


def implementation() -> str:
    """"extension" when trainvisor._shmfast serves the per-step calls, else "ctypes"."""
    _c()
    return "extension" if _fast is not None else "ctypes"


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


_ZERO = {FLOAT64: 0.0, INT64: 0, BOOL: False, STRING: ""}
_KIND_NAME = {FLOAT64: "float", INT64: "int", BOOL: "bool", STRING: "str"}
_KIND_TEXT = {FLOAT64: "a float", INT64: "an int", BOOL: "a bool", STRING: "a str"}
_OWN = object()  # get() without a default: the handle's own


def _bad_default(path: str, value, kind: int) -> ShmError:
    return ShmError(f"default {value!r} for key '{path}' is not {_KIND_TEXT[kind]}")


class _CtypesHandle:
    """Handle's per-step read through ctypes, when the extension does not serve."""

    def __init__(self, ptr: int, path: str, kind: int, default):
        self._ptr, self._path, self._kind = ptr, path, kind  # owned from here, even if we raise
        lib = _c()
        self._get = {FLOAT64: lib.tv_shm_get_f64, INT64: lib.tv_shm_get_i64,
                     BOOL: lib.tv_shm_get_bool}.get(kind)
        self._buf = ctypes.create_string_buffer(MAX_STRING + 1) if kind == STRING else None
        self._default = default
        try:
            if kind == STRING and not isinstance(default, str):
                raise TypeError
            if kind == INT64 and isinstance(default, float):
                raise TypeError
            if kind in (FLOAT64, INT64):
                (ctypes.c_double if kind == FLOAT64 else ctypes.c_int64)(default)
        except TypeError:
            raise _bad_default(path, default, kind) from None

    def get(self, default=_OWN):
        if default is _OWN:
            default = self._default
        try:
            if self._kind == STRING:
                if not isinstance(default, str):
                    raise ctypes.ArgumentError
                n = _lib.tv_shm_get_string(self._ptr, default.encode(), self._buf, len(self._buf))
                if n < 0:
                    raise _error()
                return self._buf.raw[:n].decode("utf-8", "replace")
            if self._kind == BOOL:
                return bool(self._get(self._ptr, int(bool(default))))
            if self._kind == INT64 and isinstance(default, float):
                raise ctypes.ArgumentError
            return self._get(self._ptr, default)
        except ctypes.ArgumentError:
            raise _bad_default(self._path, default, self._kind) from None

    @property
    def bound(self) -> bool:
        return bool(_lib.tv_shm_handle_bound(self._ptr))

    @property
    def fallbacks(self) -> int:
        return int(_lib.tv_shm_handle_fallbacks(self._ptr))

    def __del__(self):
        if getattr(self, "_ptr", None) and _lib is not None:
            _lib.tv_shm_handle_free(self._ptr)
            self._ptr = None


class Handle:
    """A resolved key. get() reads it (bounded, lock-free) and returns the handle's default, or
    get(default)'s, while the key does not exist; a default of the wrong type raises ShmError
    naming the key. One thread at a time."""

    def __init__(self, ptr: int, path: str, kind: int, default=None):
        self.path = path
        self.kind = kind
        self.default = _ZERO[kind] if default is None else default
        # The read is the implementation's own bound method, looked up once: a call costs one C
        # call through the extension, with no Python frame in between.
        if _fast is not None:
            self._impl = _fast.handle(ptr, path, kind, self.default)
        else:
            self._impl = _CtypesHandle(ptr, path, kind, self.default)
        self.get = self._impl.get

    @property
    def bound(self) -> bool:
        """Whether the key exists in the block (the handle found it)."""
        return bool(self._impl.bound)

    @property
    def fallbacks(self) -> int:
        """Reads that gave up on a key that stayed mid-write and served the last good value."""
        return int(self._impl.fallbacks)

    def __repr__(self):
        return f"Handle({self.path!r}, {_KIND_NAME[self.kind]})"


class _CtypesSnapshot:
    def __init__(self, ptr: int, count: int):
        self._ptr = ptr
        self._out = (_Value * count)()
        self._gen = ctypes.c_uint64(0)
        self.count = count

    def read(self) -> tuple[bool, tuple]:
        rc = _lib.tv_shm_snapshot_read(self._ptr, self._out, self.count, ctypes.byref(self._gen))
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


class Snapshot:
    """Keys read together from one tree generation. read() -> (fresh, values) never blocks: fresh
    is False when the last good values were served again (writes kept overlapping)."""

    def __init__(self, ptr: int, count: int):
        self.count = count
        self._impl = _fast.snapshot(ptr, count) if _fast is not None else _CtypesSnapshot(ptr,
                                                                                          count)
        self.read = self._impl.read

    @property
    def generation(self) -> int:
        """The tree generation of the last read."""
        return int(self._impl.generation)


class _CtypesBlock:
    """Block's per-step calls through ctypes; owns the tv_shm_block."""

    def __init__(self, ptr: int):
        self.ptr = ptr

    def push(self, step, epoch=0, flags=0, loss=math.nan, grad_norm=math.nan,
             learning_rate=math.nan, config_revision=0, val_loss=math.nan, val_accuracy=math.nan,
             samples_per_sec=math.nan, /):
        r = _Telemetry(step, epoch, flags, time.time_ns(), loss, grad_norm, learning_rate,
                       config_revision, val_loss, val_accuracy, samples_per_sec)
        if _lib.tv_shm_telemetry_push(self.ptr, ctypes.byref(r)) != 0:
            raise _error()

    def lease_version(self) -> int:
        return int(_lib.tv_shm_block_lease_version(self.ptr))

    def detach(self):
        if self.ptr:
            _lib.tv_shm_detach(self.ptr)
            self.ptr = None

    def __del__(self):
        if getattr(self, "ptr", None) and _lib is not None:
            self.detach()


class Block:
    """An attached block. read_write=True for a trainer, which pushes telemetry.

    push(step, epoch, flags, loss, grad_norm, learning_rate, config_revision, val_loss,
    val_accuracy, samples_per_sec) is the positional per-step form (only step is required; the
    record's wall time is the push's); push_telemetry(**fields) is the general one."""

    def __init__(self, name: str, read_write: bool = False):
        self.name = name
        ptr = _c().tv_shm_attach(name.encode(), READ_WRITE if read_write else READ_ONLY)
        if not ptr:
            raise _error()
        self._impl = _fast.block(ptr) if _fast is not None else _CtypesBlock(ptr)
        self.push = self._impl.push
        self._records = (_Telemetry * 256)()
        self._missed = ctypes.c_uint64(0)

    @property
    def _ptr(self):
        return self._impl.ptr

    @classmethod
    def for_job(cls, job_id: str, read_write: bool = False) -> "Block":
        return cls(block_name_for_job(job_id), read_write)

    def resolve(self, path: str, kind, default=None) -> Handle:
        """kind: float, int, bool or str (or FLOAT64, INT64, BOOL, STRING). default: what get()
        returns while the key does not exist (the type's zero when None)."""
        code = _TYPES.get(kind, kind)
        if code not in _ZERO:
            raise ShmError(f"cannot resolve '{path}': {kind!r} is not float, int, bool or str")
        ptr = _c().tv_shm_resolve(self._ptr, path.encode(), code)
        if not ptr:
            raise _error()
        return Handle(ptr, path, code, default)

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

    def lease_version(self) -> int:
        """Moves whenever the block's lease is stamped: compare lease() again only then."""
        return self._impl.lease_version()

    def heartbeat_unix_ns(self) -> int:
        """Wall time of the config writer's last heartbeat (0: it never beat)."""
        beat = ctypes.c_uint64(0)
        if _c().tv_shm_block_heartbeat(self._ptr, ctypes.byref(beat)) != 0:
            raise _error()
        return int(beat.value)

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
        self._impl.detach()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
