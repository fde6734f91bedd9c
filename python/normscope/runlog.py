"""ctypes binding of normscope's run-log writer, libnormscope-runlog.so
(include/normscope_runlog.h).

One writer for every run log: the file's layout, chunking, SWMR flushing, one-writer lock and
crash behaviour are the C writer's, the same as `normscope train`'s. The library is found, in
order, at $NORMSCOPE_RUNLOG_LIB, in the meson build folders of the checkout this package lives in
(build, build-test, build-asan, builddir), beside the `normscope` program on PATH (a build folder,
or an installed prefix's lib/), then by the system's loader (an installed library).
"""
import ctypes
import ctypes.util
import os
import shutil

API_VERSION = 1
F64, I64, F32_VEC = 0, 1, 2
_ERRLEN = 1024


class RunLogError(RuntimeError):
    """A failure of the run-log writer, in one line (what, which file, what to do)."""


def _candidates():
    env = os.environ.get("NORMSCOPE_RUNLOG_LIB")
    if env:
        yield env
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for build in ("build", "build-test", "build-asan", "builddir"):
        yield os.path.join(root, build, "libnormscope-runlog.so")
    program = shutil.which("normscope")
    if program:  # a pip-installed package beside a build or an installed normscope
        where = os.path.dirname(os.path.realpath(program))
        prefix = os.path.dirname(where)
        yield os.path.join(where, "libnormscope-runlog.so")
        for lib in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu"),
                    os.path.join("lib", "aarch64-linux-gnu")):
            yield os.path.join(prefix, lib, "libnormscope-runlog.so")
    found = ctypes.util.find_library("normscope-runlog")
    if found:
        yield found


def _declare(lib):
    c = ctypes
    P, S, I = c.c_void_p, c.c_char_p, c.c_int
    sigs = {
        "nsrl_api_version": (I, []),
        "nsrl_format": (S, []),
        "nsrl_create": (P, [S, I, I, c.c_char_p, c.c_size_t]),
        "nsrl_error": (S, [P]),
        "nsrl_attr_dtype": (I, [S]),
        "nsrl_set_attr_str": (I, [P, S, S]),
        "nsrl_set_attr_i64": (I, [P, S, c.c_int64]),
        "nsrl_set_attr_f64": (I, [P, S, c.c_double]),
        "nsrl_add_group": (I, [P, S, S, I, I, I, I]),
        "nsrl_series": (I, [P, S]),
        "nsrl_series_width": (I, [P, I]),
        "nsrl_series_dtype": (I, [P, I]),
        "nsrl_start": (I, [P]),
        "nsrl_append_f64": (I, [P, I, c.c_double]),
        "nsrl_append_i64": (I, [P, I, c.c_int64]),
        "nsrl_append_f32": (I, [P, I, c.POINTER(c.c_float), I]),
        "nsrl_flush": (I, [P]),
        "nsrl_close": (I, [P, c.c_char_p, c.c_size_t]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


_lib = None


def library():
    """The loaded writer library (loaded once), or RunLogError saying where it was looked for."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        tried.append(path)
        if os.path.sep in path and not os.path.exists(path):
            continue
        try:
            lib = _declare(ctypes.CDLL(path))
        except OSError:
            continue
        if lib.nsrl_api_version() != API_VERSION:
            raise RunLogError(f"normscope: {path} speaks run-log API "
                              f"{lib.nsrl_api_version()}, this package {API_VERSION}: rebuild "
                              "normscope (ninja -C build) or set NORMSCOPE_RUNLOG_LIB")
        _lib = lib
        return lib
    raise RunLogError("normscope: libnormscope-runlog.so not found (looked at "
                      + ", ".join(tried or ["$NORMSCOPE_RUNLOG_LIB"]) + "): build normscope "
                      "(meson setup build && ninja -C build) or set NORMSCOPE_RUNLOG_LIB")


def check_attr_names(names):
    """RunLogError naming the first name that is not a root attribute of the schema."""
    lib = library()
    for name in names:
        if lib.nsrl_attr_dtype(_b(name)) < 0 or name == "format":
            raise RunLogError(f"normscope: '{name}' is not a root attribute a writer may set "
                              "(docs/runlog.md lists them): remove it from config")


def _b(text):
    return str(text).encode("utf-8")


class RunLog:
    """One run log being written: declare (attributes, groups), start, append rows, flush, close.
    Every failure raises RunLogError with the writer's one-line message."""

    def __init__(self, path, overwrite=False, flush_every=10):
        self._lib = library()
        err = ctypes.create_string_buffer(_ERRLEN)
        self._h = self._lib.nsrl_create(_b(path), int(bool(overwrite)), int(flush_every), err,
                                        _ERRLEN)
        if not self._h:
            raise RunLogError("normscope: " + err.value.decode("utf-8", "replace"))
        self.path = str(path)

    def _check(self, rc):
        if rc < 0:
            raise RunLogError("normscope: " + self._lib.nsrl_error(self._h).decode("utf-8",
                                                                                    "replace"))
        return rc

    def set_attr(self, name, value):
        """A root attribute declared by the schema, converted to the schema's dtype."""
        dtype = self._lib.nsrl_attr_dtype(_b(name))
        try:
            if dtype == 0:
                return self._check(self._lib.nsrl_set_attr_i64(self._h, _b(name), int(value)))
            if dtype == 1:
                return self._check(self._lib.nsrl_set_attr_f64(self._h, _b(name), float(value)))
        except (TypeError, ValueError):
            raise RunLogError(f"normscope: run log '{self.path}': attribute '{name}' takes a "
                              f"{'n integer' if dtype == 0 else ' number'}, not {value!r}")
        return self._check(self._lib.nsrl_set_attr_str(self._h, _b(name), _b(value)))

    def add_group(self, group_id, path, channels=0, grid=0, hessian_top=0, density=0):
        self._check(self._lib.nsrl_add_group(self._h, _b(group_id), _b(path), channels, grid,
                                             hessian_top, density))

    def series(self, path):
        """Handle of a declared series."""
        h = self._lib.nsrl_series(self._h, _b(path))
        if h < 0:
            raise RunLogError(f"normscope: run log '{self.path}': no series '{path}' declared")
        return h

    def start(self):
        self._check(self._lib.nsrl_start(self._h))

    def append_f64(self, series, value):
        self._check(self._lib.nsrl_append_f64(self._h, series, float(value)))

    def append_i64(self, series, value):
        self._check(self._lib.nsrl_append_i64(self._h, series, int(value)))

    def append_f32(self, series, row):
        """row: a contiguous float32 numpy array of the series' width."""
        ptr = row.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self._check(self._lib.nsrl_append_f32(self._h, series, ptr, int(row.shape[0])))

    def flush(self):
        self._check(self._lib.nsrl_flush(self._h))

    def close(self):
        if not self._h:
            return
        err = ctypes.create_string_buffer(_ERRLEN)
        rc = self._lib.nsrl_close(self._h, err, _ERRLEN)
        self._h = None
        if rc < 0:
            raise RunLogError("normscope: " + err.value.decode("utf-8", "replace"))

    def __del__(self):
        if getattr(self, "_h", None):
            try:
                self.close()
            except RunLogError:
                pass
