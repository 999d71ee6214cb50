/* trainvisor._shmfast: the per-step calls of trainvisor.shm in C, over the same C ABI (tv_shm.h).
 *
 * shm.py creates these objects from pointers it got through ctypes and hands each one its
 * pointer to own: Handle.get, Snapshot.read and Block.push then cost one C call each instead of a
 * ctypes call with argument conversion. Semantics and errors are the ctypes path's (shm.py keeps
 * it as the fallback; the tests run both): a library failure raises the ShmError class shm.py
 * registers with bind(), with tv_shm_last_error()'s message.
 *
 * Objects returned by get() and read() are reused while the value they hold is unchanged, so a
 * read of a knob that did not move allocates nothing. Like the handles of the C ABI, an object
 * belongs to one thread at a time; the GIL is held throughout (each call is a few loads).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "tv_shm.h"

static PyObject* shm_error; /* trainvisor.shm.ShmError, from bind() */

static PyObject* raise_last_error(void) {
  PyErr_SetString(shm_error ? shm_error : PyExc_RuntimeError, tv_shm_last_error());
  return NULL;
}

static void* pointer_of(PyObject* ptr) {
  void* p = PyLong_AsVoidPtr(ptr);
  if (p == NULL && !PyErr_Occurred())
    PyErr_SetString(PyExc_ValueError, "a NULL pointer cannot be owned");
  return p;
}

/* ---- Handle ---------------------------------------------------------------------------------- */

typedef struct {
  PyObject ob_base; /* PyObject_HEAD, spelled out for clang-format */
  tv_shm_handle* handle;
  int kind;
  PyObject* path;
  tv_shm_value fallback; /* the default get() uses without an argument */
  tv_shm_value last;     /* the value `cached` holds */
  PyObject* cached;
} Handle;

/* The error both paths raise for a default of the wrong type, naming the key. */
static int bad_default(Handle* self, PyObject* value, const char* expected) {
  PyErr_Clear();
  PyErr_Format(shm_error ? shm_error : PyExc_TypeError, "default %R for key '%U' is not %s", value,
               self->path, expected);
  return -1;
}

static int convert_default(Handle* self, PyObject* value, tv_shm_value* out) {
  out->type = self->kind;
  switch (self->kind) {
    case TV_SHM_FLOAT64:
      out->f64 = PyFloat_AsDouble(value);
      if (out->f64 == -1.0 && PyErr_Occurred()) return bad_default(self, value, "a float");
      return 0;
    case TV_SHM_INT64:
      if (PyFloat_Check(value)) return bad_default(self, value, "an int");
      out->i64 = PyLong_AsLongLong(value);
      if (out->i64 == -1 && PyErr_Occurred()) return bad_default(self, value, "an int");
      return 0;
    case TV_SHM_BOOL:
      out->b = PyObject_IsTrue(value);
      return out->b < 0 ? -1 : 0;
    default: {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &n) : NULL;
      if (s == NULL) return bad_default(self, value, "a str");
      if (n > TV_SHM_MAX_STRING) n = TV_SHM_MAX_STRING; /* as the C ABI truncates a fallback */
      memcpy(out->str, s, (size_t)n);
      out->str[n] = '\0';
      out->str_len = (uint32_t)n;
      return 0;
    }
  }
}

/* Whether two values of the same key are the same (bitwise for floats: NaN and -0.0 too). */
static int same_value(const tv_shm_value* a, const tv_shm_value* b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
    case TV_SHM_FLOAT64:
      return memcmp(&a->f64, &b->f64, sizeof a->f64) == 0;
    case TV_SHM_INT64:
      return a->i64 == b->i64;
    case TV_SHM_BOOL:
      return a->b == b->b;
    case TV_SHM_STRING:
      return a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0;
    default:
      return 1;
  }
}

static PyObject* object_of(const tv_shm_value* v) {
  switch (v->type) {
    case TV_SHM_FLOAT64:
      return PyFloat_FromDouble(v->f64);
    case TV_SHM_INT64:
      return PyLong_FromLongLong(v->i64);
    case TV_SHM_BOOL:
      return PyBool_FromLong(v->b);
    case TV_SHM_STRING:
      return PyUnicode_DecodeUTF8(v->str, v->str_len, "replace");
    default:
      Py_RETURN_NONE;
  }
}

/* `cached` when *v equals *last, else a new object that becomes the cached one. */
static PyObject* reuse_or_make(const tv_shm_value* v, tv_shm_value* last, PyObject** cached) {
  if (*cached != NULL && same_value(v, last)) return Py_NewRef(*cached);
  PyObject* o = object_of(v);
  if (o == NULL) return NULL;
  Py_XSETREF(*cached, Py_NewRef(o));
  *last = *v;
  return o;
}

static PyObject* Handle_get(Handle* self, PyObject* const* args, Py_ssize_t nargs) {
  tv_shm_value given;
  const tv_shm_value* d = &self->fallback;
  if (nargs == 1) {
    if (convert_default(self, args[0], &given) < 0) return NULL;
    d = &given;
  } else if (nargs != 0) {
    return PyErr_Format(PyExc_TypeError, "get() takes at most 1 argument (%zd given)", nargs);
  }
  tv_shm_value v;
  v.type = self->kind;
  switch (self->kind) {
    case TV_SHM_FLOAT64:
      v.f64 = tv_shm_get_f64(self->handle, d->f64);
      break;
    case TV_SHM_INT64:
      v.i64 = tv_shm_get_i64(self->handle, d->i64);
      break;
    case TV_SHM_BOOL:
      return PyBool_FromLong(tv_shm_get_bool(self->handle, d->b));
    default: {
      const int n = tv_shm_get_string(self->handle, d->str, v.str, sizeof v.str);
      if (n < 0) return raise_last_error();
      v.str_len = (uint32_t)n;
    }
  }
  return reuse_or_make(&v, &self->last, &self->cached);
}

static PyObject* Handle_bound(Handle* self, void* unused) {
  (void)unused;
  return PyBool_FromLong(tv_shm_handle_bound(self->handle));
}

static PyObject* Handle_fallbacks(Handle* self, void* unused) {
  (void)unused;
  return PyLong_FromUnsignedLongLong(tv_shm_handle_fallbacks(self->handle));
}

static void Handle_dealloc(Handle* self) {
  tv_shm_handle_free(self->handle);
  Py_XDECREF(self->path);
  Py_XDECREF(self->cached);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static PyMethodDef Handle_methods[] = {
    {"get", (PyCFunction)(void (*)(void))Handle_get, METH_FASTCALL,
     "get([default]): the key's value, or default (the handle's own without one)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Handle_getset[] = {{"bound", (getter)Handle_bound, NULL, NULL, NULL},
                                      {"fallbacks", (getter)Handle_fallbacks, NULL, NULL, NULL},
                                      {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject HandleType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "trainvisor._shmfast.Handle",
    .tp_basicsize = sizeof(Handle),
    .tp_dealloc = (destructor)Handle_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A resolved key that owns its tv_shm_handle (made by trainvisor.shm).",
    .tp_methods = Handle_methods,
    .tp_getset = Handle_getset,
};

/* handle(ptr, path, kind, default): takes ownership of ptr, also when it fails. */
static PyObject* make_handle(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  (void)module;
  if (nargs != 4) return PyErr_Format(PyExc_TypeError, "handle() takes 4 arguments");
  tv_shm_handle* h = pointer_of(args[0]);
  if (h == NULL) return NULL;
  Handle* self = PyObject_New(Handle, &HandleType);
  if (self == NULL) {
    tv_shm_handle_free(h);
    return NULL;
  }
  self->handle = h;
  self->kind = (int)PyLong_AsLong(args[2]);
  self->path = Py_NewRef(args[1]);
  self->cached = NULL;
  memset(&self->fallback, 0, sizeof self->fallback);
  memset(&self->last, 0, sizeof self->last);
  if (self->kind < TV_SHM_FLOAT64 || self->kind > TV_SHM_STRING) {
    Py_DECREF(self);
    return PyErr_Format(PyExc_ValueError, "kind %R is not a tv_shm_type", args[2]);
  }
  if (convert_default(self, args[3], &self->fallback) < 0) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject*)self;
}

/* ---- Snapshot -------------------------------------------------------------------------------- */

typedef struct {
  PyObject ob_base; /* PyObject_HEAD, spelled out for clang-format */
  tv_shm_snapshot* snapshot;
  Py_ssize_t count;
  uint64_t generation;
  tv_shm_value* out;  /* count values: this read */
  tv_shm_value* last; /* count values: what cached[i] holds */
  PyObject** cached;
} Snapshot;

static PyObject* Snapshot_read(Snapshot* self, PyObject* unused) {
  (void)unused;
  const int rc =
      tv_shm_snapshot_read(self->snapshot, self->out, (size_t)self->count, &self->generation);
  if (rc < 0) return raise_last_error();
  PyObject* values = PyTuple_New(self->count);
  if (values == NULL) return NULL;
  for (Py_ssize_t i = 0; i < self->count; ++i) {
    PyObject* o = reuse_or_make(&self->out[i], &self->last[i], &self->cached[i]);
    if (o == NULL) {
      Py_DECREF(values);
      return NULL;
    }
    PyTuple_SET_ITEM(values, i, o);
  }
  PyObject* result = PyTuple_New(2);
  if (result == NULL) {
    Py_DECREF(values);
    return NULL;
  }
  PyTuple_SET_ITEM(result, 0, PyBool_FromLong(rc == 1));
  PyTuple_SET_ITEM(result, 1, values);
  return result;
}

static PyObject* Snapshot_generation(Snapshot* self, void* unused) {
  (void)unused;
  return PyLong_FromUnsignedLongLong(self->generation);
}

static void Snapshot_dealloc(Snapshot* self) {
  tv_shm_snapshot_free(self->snapshot);
  if (self->cached != NULL) {
    for (Py_ssize_t i = 0; i < self->count; ++i)
      Py_XDECREF(self->cached[i]);
  }
  PyMem_Free(self->cached);
  PyMem_Free(self->out);
  PyMem_Free(self->last);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static PyMethodDef Snapshot_methods[] = {
    {"read", (PyCFunction)Snapshot_read, METH_NOARGS,
     "read() -> (fresh, values): one tree generation; fresh is False when the last good values "
     "were served again"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Snapshot_getset[] = {
    {"generation", (getter)Snapshot_generation, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject SnapshotType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "trainvisor._shmfast.Snapshot",
    .tp_basicsize = sizeof(Snapshot),
    .tp_dealloc = (destructor)Snapshot_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Keys read from one generation; owns its tv_shm_snapshot (made by trainvisor.shm).",
    .tp_methods = Snapshot_methods,
    .tp_getset = Snapshot_getset,
};

/* snapshot(ptr, count): takes ownership of ptr, also when it fails. */
static PyObject* make_snapshot(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  (void)module;
  if (nargs != 2) return PyErr_Format(PyExc_TypeError, "snapshot() takes 2 arguments");
  tv_shm_snapshot* s = pointer_of(args[0]);
  if (s == NULL) return NULL;
  Snapshot* self = PyObject_New(Snapshot, &SnapshotType);
  if (self == NULL) {
    tv_shm_snapshot_free(s);
    return NULL;
  }
  self->snapshot = s;
  self->generation = 0;
  self->count = PyLong_AsSsize_t(args[1]);
  self->out = NULL;
  self->last = NULL;
  self->cached = NULL;
  if (self->count < 0) {
    Py_DECREF(self);
    return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "negative key count");
  }
  const size_t n = (size_t)self->count + 1; /* a snapshot of no keys is valid */
  self->out = PyMem_Calloc(n, sizeof(tv_shm_value));
  self->last = PyMem_Calloc(n, sizeof(tv_shm_value));
  self->cached = PyMem_Calloc(n, sizeof(PyObject*));
  if (self->out == NULL || self->last == NULL || self->cached == NULL) {
    Py_DECREF(self);
    return PyErr_NoMemory();
  }
  return (PyObject*)self;
}

/* ---- Block ----------------------------------------------------------------------------------- */

typedef struct {
  PyObject ob_base;    /* PyObject_HEAD, spelled out for clang-format */
  tv_shm_block* block; /* NULL once detached: the C ABI then names the NULL block */
} Block;

static int unsigned_field(PyObject* o, uint64_t* out) {
  *out = PyLong_AsUnsignedLongLongMask(o); /* wraps as a ctypes unsigned field does */
  return *out == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}

static int float_field(PyObject* o, double* out) {
  *out = PyFloat_AsDouble(o);
  return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* push(step, epoch=0, flags=0, loss=nan, grad_norm=nan, learning_rate=nan, config_revision=0,
 *      val_loss=nan, val_accuracy=nan, samples_per_sec=nan), positional only; the record's wall
 * time is the push's. */
static PyObject* Block_push(Block* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 10)
    return PyErr_Format(PyExc_TypeError, "push() takes 1 to 10 arguments (%zd given)", nargs);
  tv_shm_telemetry r = {0, 0, 0, 0, NAN, NAN, NAN, 0, NAN, NAN, NAN};
  uint64_t u = 0;
  if (unsigned_field(args[0], &r.step) < 0) return NULL;
  if (nargs > 1) {
    if (unsigned_field(args[1], &u) < 0) return NULL;
    r.epoch = (uint32_t)u;
  }
  if (nargs > 2) {
    if (unsigned_field(args[2], &u) < 0) return NULL;
    r.flags = (uint32_t)u;
  }
  double* const doubles[] = {&r.loss, &r.grad_norm, &r.learning_rate};
  for (Py_ssize_t i = 3; i < nargs && i < 6; ++i) {
    if (float_field(args[i], doubles[i - 3]) < 0) return NULL;
  }
  if (nargs > 6 && unsigned_field(args[6], &r.config_revision) < 0) return NULL;
  double* const evals[] = {&r.val_loss, &r.val_accuracy, &r.samples_per_sec};
  for (Py_ssize_t i = 7; i < nargs; ++i) {
    if (float_field(args[i], evals[i - 7]) < 0) return NULL;
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  r.wall_time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  if (tv_shm_telemetry_push(self->block, &r) != 0) return raise_last_error();
  Py_RETURN_NONE;
}

static PyObject* Block_lease_version(Block* self, PyObject* unused) {
  (void)unused;
  return PyLong_FromUnsignedLongLong(tv_shm_block_lease_version(self->block));
}

static PyObject* Block_detach(Block* self, PyObject* unused) {
  (void)unused;
  tv_shm_detach(self->block);
  self->block = NULL;
  Py_RETURN_NONE;
}

static PyObject* Block_ptr(Block* self, void* unused) {
  (void)unused;
  if (self->block == NULL) Py_RETURN_NONE;
  return PyLong_FromVoidPtr(self->block);
}

static void Block_dealloc(Block* self) {
  tv_shm_detach(self->block);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static PyMethodDef Block_methods[] = {
    {"push", (PyCFunction)(void (*)(void))Block_push, METH_FASTCALL,
     "push(step, epoch, flags, loss, grad_norm, learning_rate, config_revision, val_loss, "
     "val_accuracy, samples_per_sec): one telemetry record, positional, stamped now"},
    {"lease_version", (PyCFunction)Block_lease_version, METH_NOARGS,
     "moves whenever the block's lease is stamped"},
    {"detach", (PyCFunction)Block_detach, METH_NOARGS, "detach; later calls name a NULL block"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Block_getset[] = {{"ptr", (getter)Block_ptr, NULL, NULL, NULL},
                                     {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "trainvisor._shmfast.Block",
    .tp_basicsize = sizeof(Block),
    .tp_dealloc = (destructor)Block_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An attached block that owns its tv_shm_block (made by trainvisor.shm).",
    .tp_methods = Block_methods,
    .tp_getset = Block_getset,
};

/* block(ptr): takes ownership of ptr, also when it fails. */
static PyObject* make_block(PyObject* module, PyObject* ptr) {
  (void)module;
  tv_shm_block* b = pointer_of(ptr);
  if (b == NULL) return NULL;
  Block* self = PyObject_New(Block, &BlockType);
  if (self == NULL) {
    tv_shm_detach(b);
    return NULL;
  }
  self->block = b;
  return (PyObject*)self;
}

/* ---- Module ---------------------------------------------------------------------------------- */

static PyObject* bind(PyObject* module, PyObject* error_class) {
  (void)module;
  Py_XSETREF(shm_error, Py_NewRef(error_class));
  Py_RETURN_NONE;
}

/* Where tv_shm_abi_version lives: shm.py compares it with the library ctypes loaded, so both
 * paths always use one library. */
static PyObject* library_address(PyObject* module, PyObject* unused) {
  (void)module;
  (void)unused;
  return PyLong_FromVoidPtr((void*)&tv_shm_abi_version);
}

static PyMethodDef module_methods[] = {
    {"handle", (PyCFunction)(void (*)(void))make_handle, METH_FASTCALL,
     "handle(ptr, path, kind, default): owns ptr"},
    {"snapshot", (PyCFunction)(void (*)(void))make_snapshot, METH_FASTCALL,
     "snapshot(ptr, count): owns ptr"},
    {"block", (PyCFunction)make_block, METH_O, "block(ptr): owns ptr"},
    {"bind", (PyCFunction)bind, METH_O, "bind(ShmError): the class library failures raise"},
    {"library_address", (PyCFunction)library_address, METH_NOARGS,
     "the address of tv_shm_abi_version in the library this module is linked to"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "trainvisor._shmfast",
    "The per-step calls of trainvisor.shm in C (used by trainvisor.shm; not an API)",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL};

PyMODINIT_FUNC PyInit__shmfast(void) {
  if (tv_shm_abi_version() != TV_SHM_ABI_VERSION) {
    return PyErr_Format(PyExc_ImportError, "libtrainvisor_shm has C ABI version %d, expected %d",
                        tv_shm_abi_version(), TV_SHM_ABI_VERSION);
  }
  if (PyType_Ready(&HandleType) < 0 || PyType_Ready(&SnapshotType) < 0 ||
      PyType_Ready(&BlockType) < 0)
    return NULL;
  return PyModule_Create(&module_def);
}
