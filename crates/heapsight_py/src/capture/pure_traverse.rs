//! The `tp_traverse` functions the walk's helper thread may call. The helper holds no
//! Python thread state, so it may only run code that reads object memory and reports
//! pointers. Being the interpreter's own code is not enough: on 3.12 `structseq_traverse`
//! reads the type's dict through the interpreter state (`_PyType_GetDict`) and crashes
//! without a thread state, and an extension's traverse may take locks or write borrow
//! flags. So the helper calls only the traverse functions of the builtin types listed
//! here (read from the types themselves, whatever the version), and `subtype_traverse`
//! of classes whose every base traverses with one of them.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// Builtin types whose traverse only visits fields (checked against CPython 3.9-3.14):
/// containers, functions and their parts, frames and generators, descriptors, exceptions,
/// weak references, and the C containers of `collections` and `functools`.
const PURE_TRAVERSE_TYPES: &[(&str, &str)] = &[
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "property"),
    ("builtins", "classmethod"),
    ("builtins", "staticmethod"),
    ("builtins", "super"),
    ("builtins", "BaseException"),
    ("builtins", "enumerate"),
    ("builtins", "zip"),
    ("builtins", "map"),
    ("builtins", "filter"),
    ("types", "FunctionType"),
    ("types", "CellType"),
    ("types", "MethodType"),
    ("types", "FrameType"),
    ("types", "GeneratorType"),
    ("types", "CoroutineType"),
    ("types", "AsyncGeneratorType"),
    ("types", "BuiltinFunctionType"),
    ("types", "MethodWrapperType"),
    ("types", "MappingProxyType"),
    ("types", "SimpleNamespace"),
    ("types", "TracebackType"),
    ("weakref", "ref"),
    ("weakref", "ProxyType"),
    ("weakref", "CallableProxyType"),
    ("collections", "deque"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("functools", "partial"),
    ("functools", "_lru_cache_wrapper"),
];

/// Addresses of the traverse functions the helper may call.
pub struct PureTraverses {
    functions: Vec<usize>,
    /// `subtype_traverse`, the traverse of every class statement's instances.
    subtype_traverse: Option<usize>,
    /// Keeps the probe class (whose traverse is `subtype_traverse`) alive.
    _probe: Option<Py<PyType>>,
}

impl PureTraverses {
    /// Found once per process, before any walk (a fork child inherits it).
    pub fn get(py: Python<'_>) -> &'static PureTraverses {
        // PyOnceLock: the lookup runs Python code (imports, a class statement).
        static FOUND: pyo3::sync::PyOnceLock<PureTraverses> = pyo3::sync::PyOnceLock::new();
        FOUND.get_or_init(py, || PureTraverses::find(py))
    }

    fn find(py: Python<'_>) -> PureTraverses {
        let mut functions = Vec::new();
        let mut add = |ty: &Bound<'_, PyAny>| {
            if let Ok(ty) = ty.cast::<PyType>() {
                // SAFETY: a live type object; its traverse slot is only read.
                if let Some(traverse) = unsafe { (*ty.as_type_ptr()).tp_traverse } {
                    functions.push(traverse as usize);
                }
            }
        };
        for (module, name) in PURE_TRAVERSE_TYPES {
            // A type missing from this version is simply not listed.
            if let Ok(ty) = py.import(*module).and_then(|m| m.getattr(*name)) {
                add(&ty);
            }
        }
        // A plain class: its instances traverse with `subtype_traverse`, which visits
        // slots and the instance dict, then calls each base's traverse in turn.
        let probe = py
            .import("builtins")
            .and_then(|b| b.getattr("type"))
            .and_then(|t| t.call1(("_HeapsightTraverseProbe", (), pyo3::types::PyDict::new(py))))
            .ok();
        let mut subtype_traverse = None;
        if let Some(probe) = &probe {
            add(probe);
            if let Ok(ty) = probe.cast::<PyType>() {
                // SAFETY: a live type object; its traverse slot is only read.
                subtype_traverse = unsafe { (*ty.as_type_ptr()).tp_traverse }.map(|t| t as usize);
            }
        }
        functions.sort_unstable();
        functions.dedup();
        PureTraverses {
            functions,
            subtype_traverse,
            _probe: probe
                .and_then(|p| p.cast_into::<PyType>().ok())
                .map(Bound::unbind),
        }
    }

    /// Whether every traverse function along `ty`'s base chain is one the helper may call.
    ///
    /// # Safety
    /// `ty` a live, ready type object.
    pub unsafe fn all_pure(&self, ty: *mut ffi::PyTypeObject) -> bool {
        let mut base = ty;
        while !base.is_null() {
            // SAFETY: the caller's; `tp_base` of a ready type is a live type or NULL.
            unsafe {
                if let Some(traverse) = (*base).tp_traverse {
                    if self.functions.binary_search(&(traverse as usize)).is_err() {
                        return false;
                    }
                }
                base = (*base).tp_base;
            }
        }
        true
    }

    /// Whether `ty`'s instances traverse with `subtype_traverse` alone: every class from
    /// `ty` down to `object` is a class statement's. Such an instance's traverse visits
    /// exactly its filled `__slots__`, its dict or dict values and its type, which the
    /// walk already enumerates with labels, so it need not be called.
    ///
    /// # Safety
    /// `ty` a live, ready type object.
    pub unsafe fn plain_class_chain(&self, ty: *mut ffi::PyTypeObject) -> bool {
        let Some(subtype_traverse) = self.subtype_traverse else {
            return false;
        };
        let object = &raw mut ffi::PyBaseObject_Type;
        let mut base = ty;
        // SAFETY: the caller's; `tp_base` of a ready type is a live type or NULL.
        unsafe {
            while !std::ptr::eq(base, object) {
                if base.is_null()
                    || (*base).tp_traverse.map(|t| t as usize) != Some(subtype_traverse)
                {
                    return false;
                }
                base = (*base).tp_base;
            }
        }
        !std::ptr::eq(ty, object)
    }
}
