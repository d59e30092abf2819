//! Native `sys.getsizeof` equivalents, computed from object memory without running Python.
//!
//! `sys.getsizeof(o)` is `type(o).__sizeof__(o)` plus the GC header / pre-header (see
//! [`shims::getsizeof_overhead`]). Which `__sizeof__` runs depends on the first class in the
//! MRO that defines one, so each type is first classified into a [`SizeModel`] by scanning
//! its MRO: a builtin we model natively, `object`'s generic formula, or something we cannot
//! reproduce (a Python-level override, or a C type whose `__sizeof__` we do not model). The
//! last case yields `None`: the caller calls `__sizeof__` outside the walk.

use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::ffi;

use super::shims::{self, Layout};

const POINTER_SIZE: usize = std::mem::size_of::<*mut ffi::PyObject>();

/// Which `__sizeof__` implementation applies to a type's instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeModel {
    /// `object.__sizeof__`: `tp_basicsize + tp_itemsize * ob_size`.
    Generic,
    Int,
    Str,
    ByteArray,
    List,
    Dict,
    Set,
    Type,
    Code,
    Frame,
    /// 3.11+ generators, coroutines and async generators (one shared layout): header plus
    /// their embedded frame's slots.
    Generator,
    /// Python-level override or an unmodelled C `__sizeof__`: must be called outside the walk.
    NotNative,
}

/// Sizes objects, caching each type's [`SizeModel`] by type pointer.
///
/// Keep one per walk: the cache assumes type dictionaries do not change while it lives,
/// which holds while no Python code runs.
pub struct NativeSizer {
    layout: Option<Layout>,
    models: HashMap<usize, SizeModel, BuildHasherDefault<TypePointerHasher>>,
    /// Consecutive objects often share a type: skip the map for a repeat.
    last: Option<(usize, SizeModel)>,
}

/// Type pointers are unique and well spread above their alignment bits: one multiply
/// (Fibonacci hashing) is enough, and far cheaper than SipHash on the hot path.
#[derive(Default)]
pub struct TypePointerHasher(u64);

impl Hasher for TypePointerHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.0 = (value as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Default for NativeSizer {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeSizer {
    pub fn new() -> Self {
        Self {
            layout: shims::layout(),
            models: HashMap::default(),
            last: None,
        }
    }

    /// This interpreter's struct layouts, when they are known.
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// Exactly `sys.getsizeof(op)`, or `None` when it cannot be computed natively.
    ///
    /// # Safety
    /// `op` must point to a live object; the GIL must be held.
    pub unsafe fn size(&mut self, op: *mut ffi::PyObject) -> Option<u64> {
        let layout = self.layout?;
        // SAFETY: forwarded caller guarantee.
        unsafe {
            let tp = shims::type_of(op) as usize;
            let model = match self.last {
                Some((last_tp, model)) if last_tp == tp => model,
                _ => {
                    let model = *self
                        .models
                        .entry(tp)
                        .or_insert_with(|| size_model(tp as *mut ffi::PyTypeObject));
                    self.last = Some((tp, model));
                    model
                }
            };
            size_with_model(layout, op, model)
        }
    }
}

/// Exactly `sys.getsizeof(op)` for objects whose `__sizeof__` is modelled natively; `None`
/// when the type (or a base) overrides `__sizeof__` at Python level or in unmodelled C code.
/// Runs no Python code and allocates no Python objects. For many objects prefer
/// [`NativeSizer`], which caches the per-type MRO scan.
///
/// # Safety
/// `op` must point to a live object; the GIL must be held.
pub unsafe fn native_size(op: *mut ffi::PyObject) -> Option<u64> {
    let layout = shims::layout()?;
    // SAFETY: forwarded caller guarantee.
    unsafe { size_with_model(layout, op, size_model(shims::type_of(op))) }
}

/// Static builtins whose own `__sizeof__` we reproduce (or whose `__sizeof__` equals the
/// generic formula).
fn known_model(tp: *mut ffi::PyTypeObject) -> Option<SizeModel> {
    // Other C types with their own `__sizeof__` (deque, OrderedDict, ...) are left to the
    // caller.
    let known: [(*mut ffi::PyTypeObject, SizeModel); 14] = [
        (&raw mut ffi::PyBaseObject_Type, SizeModel::Generic),
        (&raw mut ffi::PyLong_Type, SizeModel::Int),
        (&raw mut ffi::PyUnicode_Type, SizeModel::Str),
        (&raw mut ffi::PyByteArray_Type, SizeModel::ByteArray),
        (&raw mut ffi::PyList_Type, SizeModel::List),
        (&raw mut ffi::PyDict_Type, SizeModel::Dict),
        (&raw mut ffi::PySet_Type, SizeModel::Set),
        (&raw mut ffi::PyFrozenSet_Type, SizeModel::Set),
        (&raw mut ffi::PyType_Type, SizeModel::Type),
        (&raw mut ffi::PyCode_Type, SizeModel::Code),
        (&raw mut ffi::PyFrame_Type, SizeModel::Frame),
        (&raw mut ffi::PyGen_Type, SizeModel::Generator),
        (&raw mut ffi::PyCoro_Type, SizeModel::Generator),
        (&raw mut ffi::PyAsyncGen_Type, SizeModel::Generator),
    ];
    known
        .iter()
        .find(|(known_tp, _)| *known_tp == tp)
        .map(|&(_, model)| model)
}

/// True when a static type's `tp_methods` table defines `__sizeof__`.
///
/// # Safety
/// `tp` must point to a live type object.
unsafe fn static_type_defines_sizeof(tp: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: tp_methods is NULL or a table terminated by a NULL ml_name.
    unsafe {
        let mut method = (*tp).tp_methods;
        if method.is_null() {
            return false;
        }
        while !(*method).ml_name.is_null() {
            if CStr::from_ptr((*method).ml_name).to_bytes() == b"__sizeof__" {
                return true;
            }
            method = method.add(1);
        }
        false
    }
}

/// Classifies a type by the first class in its MRO that provides `__sizeof__`.
///
/// # Safety
/// `tp` must point to a live type object; the GIL must be held.
pub unsafe fn size_model(tp: *mut ffi::PyTypeObject) -> SizeModel {
    // SAFETY: tp_mro is a tuple of live types once the type is ready; dicts are read with
    // PyDict_Next and str keys compared in Rust.
    unsafe {
        let mro = (*tp).tp_mro;
        if mro.is_null()
            || !shims::type_has_flag(shims::type_of(mro), shims::TPFLAGS_TUPLE_SUBCLASS)
        {
            return SizeModel::NotNative;
        }
        let count = ffi::PyTuple_GET_SIZE(mro);
        for index in 0..count {
            let base = ffi::PyTuple_GET_ITEM(mro, index) as *mut ffi::PyTypeObject;
            if let Some(model) = known_model(base) {
                return model;
            }
            let defines = if shims::is_heap_type(base) {
                let dict = (*base).tp_dict;
                !dict.is_null() && shims::dict_find_ascii(dict, b"__sizeof__").is_some()
            } else {
                static_type_defines_sizeof(base)
            };
            if defines {
                return SizeModel::NotNative;
            }
        }
        // An MRO without `object` is not something we can reason about.
        SizeModel::NotNative
    }
}

/// # Safety
/// `op` must point to a live object of a type classified as `model`; the GIL must be held.
unsafe fn size_with_model(layout: Layout, op: *mut ffi::PyObject, model: SizeModel) -> Option<u64> {
    // SAFETY: each arm reads fields of the struct its model stands for.
    let dunder_sizeof = unsafe {
        let tp = shims::type_of(op);
        let basicsize = usize::try_from((*tp).tp_basicsize).ok()?;
        match model {
            SizeModel::NotNative => return None,
            SizeModel::Generic => {
                let itemsize = usize::try_from((*tp).tp_itemsize).ok()?;
                if itemsize > 0 {
                    // Some types set tp_itemsize without being variable-size; CPython then
                    // reads whatever word sits in ob_size, and so do we (overflow aside).
                    let items = usize::try_from(shims::var_size(op)).ok()?;
                    itemsize.checked_mul(items)?.checked_add(basicsize)?
                } else {
                    basicsize
                }
            }
            SizeModel::Int => {
                let digit_size = usize::try_from(ffi::PyLong_Type.tp_itemsize).ok()?;
                shims::LONG_DIGITS_OFFSET + shims::long_sizeof_digits(layout, op) * digit_size
            }
            SizeModel::Str => unicode_sizeof(layout, op)?,
            SizeModel::ByteArray => {
                // PyByteArrayObject: PyObject_VAR_HEAD, then ob_alloc.
                basicsize + usize::try_from(shims::read_isize(op as *const u8, 24)).ok()?
            }
            SizeModel::List => {
                // PyListObject: PyObject_VAR_HEAD, ob_item, then allocated.
                basicsize
                    + POINTER_SIZE * usize::try_from(shims::read_isize(op as *const u8, 32)).ok()?
            }
            SizeModel::Dict => dict_sizeof(layout, op, basicsize)?,
            SizeModel::Set => set_sizeof(op, basicsize)?,
            SizeModel::Type => type_sizeof(layout, op)?,
            SizeModel::Code => code_sizeof(layout, op, basicsize)?,
            SizeModel::Frame => frame_sizeof(layout, op, basicsize)?,
            SizeModel::Generator => match shims::generator_code_location(layout) {
                // Before 3.11 generators use object.__sizeof__ (fixed size).
                None => basicsize,
                Some(location) => {
                    let code = shims::code_at(op, location)?;
                    basicsize + shims::code_frame_slots(layout, code)? * POINTER_SIZE
                }
            },
        }
    };
    // SAFETY: forwarded caller guarantee.
    let overhead = unsafe { shims::getsizeof_overhead(layout, op) };
    u64::try_from(dunder_sizeof + overhead).ok()
}

/// `str.__sizeof__`: header by representation, character buffer with its terminator, plus a
/// separately allocated UTF-8 copy and (3.9-3.11) wchar_t copy when cached.
///
/// # Safety
/// `op` must point to a live str or str subclass instance.
unsafe fn unicode_sizeof(layout: Layout, op: *mut ffi::PyObject) -> Option<usize> {
    let fields = shims::unicode_layout(layout);
    let base = op as *const u8;
    // SAFETY: offsets per the version's PyASCIIObject / PyCompactUnicodeObject layout.
    unsafe {
        let state = shims::unicode_state(layout, op);
        let length = usize::try_from(shims::read_isize(
            base,
            shims::UNICODE_LENGTH_OFFSET as isize,
        ))
        .ok()?;
        let kind = state.kind as usize;
        let compact_ascii = state.compact && state.ascii;
        let data: *const u8 = if compact_ascii {
            base.add(fields.ascii_size)
        } else if state.compact {
            base.add(fields.compact_size)
        } else {
            shims::read_ptr::<u8>(base, fields.legacy_data_offset as isize)
        };
        let mut size = if compact_ascii {
            fields.ascii_size + length + 1
        } else if state.compact {
            fields.compact_size + (length + 1) * kind
        } else if data.is_null() {
            fields.legacy_size
        } else {
            fields.legacy_size + (length + 1) * kind
        };
        if let Some((wstr_offset, wstr_length_offset)) = fields.wstr {
            let wstr = shims::read_ptr::<u8>(base, wstr_offset as isize);
            let has_wstr_memory = !wstr.is_null() && (!state.ready || !std::ptr::eq(wstr, data));
            if has_wstr_memory {
                let wstr_length = if compact_ascii {
                    length
                } else {
                    usize::try_from(shims::read_isize(base, wstr_length_offset as isize)).ok()?
                };
                size += (wstr_length + 1) * WCHAR_SIZE;
            }
        }
        if !compact_ascii {
            let utf8 = shims::read_ptr::<u8>(base, fields.utf8_offset as isize);
            if !utf8.is_null() && !std::ptr::eq(utf8, data) {
                let utf8_length =
                    usize::try_from(shims::read_isize(base, fields.utf8_length_offset as isize))
                        .ok()?;
                size += utf8_length + 1;
            }
        }
        Some(size)
    }
}

/// `sizeof(wchar_t)`: UTF-16 on Windows, UTF-32 elsewhere.
const WCHAR_SIZE: usize = if cfg!(windows) { 2 } else { 4 };

/// `dict.__sizeof__`: the object, a split table's values array, and the keys table unless
/// it is shared (a shared table is accounted to the type).
///
/// # Safety
/// `op` must point to a live dict or dict subclass instance.
unsafe fn dict_sizeof(layout: Layout, op: *mut ffi::PyObject, basicsize: usize) -> Option<usize> {
    // SAFETY: PyDictObject field offsets are stable 3.9-3.14.
    unsafe {
        let keys_ptr = shims::read_ptr::<u8>(op as *const u8, shims::DICT_KEYS_OFFSET);
        if keys_ptr.is_null() {
            return None;
        }
        let values = shims::read_ptr::<u8>(op as *const u8, shims::DICT_VALUES_OFFSET);
        let keys = shims::dict_keys(layout, keys_ptr);
        let mut size = basicsize;
        if !values.is_null() {
            size += shims::split_values_capacity(layout, &keys) * POINTER_SIZE;
        }
        if keys.refcnt == 1 {
            size += keys.allocation_size();
        }
        Some(size)
    }
}

/// `set.__sizeof__`: the object plus the hash table when it outgrew the inline small table.
///
/// # Safety
/// `op` must point to a live set/frozenset or subclass instance.
unsafe fn set_sizeof(op: *mut ffi::PyObject, basicsize: usize) -> Option<usize> {
    // PySetObject: header, fill, used, mask, table, hash, finger, smalltable[8], weakreflist.
    const MASK_OFFSET: isize = 32;
    const TABLE_OFFSET: isize = 40;
    const SMALLTABLE_OFFSET: usize = 64;
    const SETENTRY_SIZE: usize = 2 * POINTER_SIZE;
    // SAFETY: the PySetObject layout is stable 3.9-3.14.
    unsafe {
        let base = op as *const u8;
        let table = shims::read_ptr::<u8>(base, TABLE_OFFSET);
        if std::ptr::eq(table, base.add(SMALLTABLE_OFFSET)) {
            Some(basicsize)
        } else {
            let mask = usize::try_from(shims::read_isize(base, MASK_OFFSET)).ok()?;
            Some(basicsize + (mask + 1) * SETENTRY_SIZE)
        }
    }
}

/// `type.__sizeof__`: `sizeof(PyHeapTypeObject)` plus the shared instance keys for heap
/// types, `sizeof(PyTypeObject)` for static ones (never the metaclass's basicsize).
///
/// # Safety
/// `op` must point to a live type object.
unsafe fn type_sizeof(layout: Layout, op: *mut ffi::PyObject) -> Option<usize> {
    let tp = op as *mut ffi::PyTypeObject;
    // SAFETY: reads the type's own flags and PyHeapTypeObject fields.
    unsafe {
        if !shims::is_heap_type(tp) {
            return Some(shims::type_object_size(layout));
        }
        // type's own basicsize is sizeof(PyHeapTypeObject) in every version.
        let mut size = usize::try_from(ffi::PyType_Type.tp_basicsize).ok()?;
        let cached_keys = shims::read_ptr::<u8>(
            tp as *const u8,
            shims::heap_type_cached_keys_offset(layout) as isize,
        );
        if !cached_keys.is_null() {
            size += shims::dict_keys(layout, cached_keys).allocation_size();
        }
        Some(size)
    }
}

/// `code.__sizeof__`.
///
/// # Safety
/// `op` must point to a live code object.
unsafe fn code_sizeof(layout: Layout, op: *mut ffi::PyObject, basicsize: usize) -> Option<usize> {
    let base = op as *const u8;
    // SAFETY: offsets from the version's PyCodeObject.
    unsafe {
        match shims::code_layout(layout) {
            shims::CodeLayout::Classic {
                co_code_offset,
                cellvars_offset,
                cell2arg_offset,
                co_extra_offset,
                opcache_offset,
                opcache_size_offset,
                opcache_entry_size,
            } => {
                let mut size = basicsize;
                let cell2arg = shims::read_ptr::<u8>(base, cell2arg_offset);
                let cellvars = shims::read_ptr::<ffi::PyObject>(base, cellvars_offset);
                if !cell2arg.is_null() && !cellvars.is_null() {
                    let cells = usize::try_from(ffi::PyTuple_GET_SIZE(cellvars)).ok()?;
                    size += cells * std::mem::size_of::<isize>();
                }
                size += shims::code_extra_size(shims::read_ptr::<u8>(base, co_extra_offset));
                if !shims::read_ptr::<u8>(base, opcache_offset).is_null() {
                    let bytecode = shims::read_ptr::<ffi::PyObject>(base, co_code_offset);
                    if !bytecode.is_null() {
                        let code_units = usize::try_from(shims::var_size(bytecode)).ok()? / 2;
                        size += code_units;
                    }
                    let entries = usize::from(*base.offset(opcache_size_offset));
                    size += entries * opcache_entry_size;
                }
                Some(size)
            }
            shims::CodeLayout::Adaptive { co_extra_offset } => {
                let tp = shims::type_of(op);
                let itemsize = usize::try_from((*tp).tp_itemsize).ok()?;
                let items = usize::try_from(shims::var_size(op)).ok()?;
                let unaligned = basicsize + itemsize * items;
                let size = unaligned.div_ceil(POINTER_SIZE) * POINTER_SIZE;
                Some(size + shims::code_extra_size(shims::read_ptr::<u8>(base, co_extra_offset)))
            }
        }
    }
}

/// `frame.__sizeof__`: 3.9/3.10 `sizeof(PyFrameObject)` already holds one slot; 3.11+ the
/// basic size is the header plus the interpreter frame up to its slots.
///
/// # Safety
/// `op` must point to a live frame object.
unsafe fn frame_sizeof(layout: Layout, op: *mut ffi::PyObject, basicsize: usize) -> Option<usize> {
    // SAFETY: the code object is type-checked before its fields are read.
    unsafe {
        let code = shims::code_at(op, shims::frame_code_location(layout))?;
        let slots = shims::code_frame_slots(layout, code)?;
        match layout {
            Layout::V3_9 | Layout::V3_10 => {
                Some((basicsize + slots * POINTER_SIZE).checked_sub(POINTER_SIZE)?)
            }
            _ => Some(basicsize + slots * POINTER_SIZE),
        }
    }
}
