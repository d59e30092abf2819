//! Interpreter version detection and per-version CPython layout facts.
//!
//! Everything that differs between CPython 3.9 and 3.14 lives behind the small named
//! functions of this module, so the decoders in `sizes` and `attrs` never compare version
//! numbers themselves. The running version is parsed once from `Py_GetVersion()` (a static C
//! string: reading it runs no Python code) and cached.
//!
//! Only 64-bit builds with the GIL are described. A free-threaded build has another object
//! header, so [`layout`] returns `None` there and every decoder falls back to "unknown".

use std::ffi::CStr;
use std::sync::OnceLock;

use pyo3::ffi;

/// The interpreter's `major.minor`, as reported by `Py_GetVersion()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PyVersion {
    pub major: u32,
    pub minor: u32,
}

/// The object layouts this module knows, one per minor release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    V3_9,
    V3_10,
    V3_11,
    V3_12,
    V3_13,
    V3_14,
}

struct RuntimeInfo {
    version: Option<PyVersion>,
    free_threaded: bool,
}

static RUNTIME: OnceLock<RuntimeInfo> = OnceLock::new();

fn runtime_info() -> &'static RuntimeInfo {
    RUNTIME.get_or_init(|| {
        // SAFETY: Py_GetVersion returns a pointer to a static NUL-terminated buffer owned by
        // the interpreter; it may be called at any time after the library is loaded.
        let text = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
        RuntimeInfo {
            version: parse_version(&text),
            free_threaded: text.contains("free-threading"),
        }
    })
}

/// Parses the leading `major.minor` of a `sys.version`-style string ("3.11.7 (main, ...").
pub fn parse_version(text: &str) -> Option<PyVersion> {
    let numbers = text.split_whitespace().next()?;
    let mut parts = numbers.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let minor = minor_text.parse().ok()?;
    Some(PyVersion { major, minor })
}

/// The running interpreter's version, or `None` if `Py_GetVersion()` could not be parsed.
pub fn runtime_version() -> Option<PyVersion> {
    runtime_info().version
}

/// Maps a version to a known layout (pure, for tests and for [`layout`]).
pub fn layout_for(version: PyVersion, free_threaded: bool) -> Option<Layout> {
    if free_threaded || version.major != 3 || cfg!(not(target_pointer_width = "64")) {
        return None;
    }
    Some(match version.minor {
        9 => Layout::V3_9,
        10 => Layout::V3_10,
        11 => Layout::V3_11,
        12 => Layout::V3_12,
        13 => Layout::V3_13,
        14 => Layout::V3_14,
        _ => return None,
    })
}

/// The layout of the running interpreter; `None` when it is not one this module describes.
pub fn layout() -> Option<Layout> {
    let info = runtime_info();
    layout_for(info.version?, info.free_threaded)
}

// ---------------------------------------------------------------------------------------
// Type flags (stable numeric values across the supported versions).

pub const TPFLAGS_MANAGED_DICT: u64 = 1 << 4;
/// 3.13+: the instance stores its attribute values inline after the object header.
pub const TPFLAGS_INLINE_VALUES: u64 = 1 << 2;
/// 3.12+: the weak reference list lives in the pre-header.
pub const TPFLAGS_MANAGED_WEAKREF: u64 = 1 << 3;
pub const TPFLAGS_HEAPTYPE: u64 = 1 << 9;
pub const TPFLAGS_HAVE_GC: u64 = 1 << 14;
pub const TPFLAGS_LONG_SUBCLASS: u64 = 1 << 24;
pub const TPFLAGS_TUPLE_SUBCLASS: u64 = 1 << 26;
pub const TPFLAGS_UNICODE_SUBCLASS: u64 = 1 << 28;
pub const TPFLAGS_DICT_SUBCLASS: u64 = 1 << 29;

const POINTER_SIZE: usize = std::mem::size_of::<*mut ffi::PyObject>();
/// `sizeof(PyGC_Head)` on every supported GIL build: two words.
const GC_HEAD_SIZE: usize = 2 * POINTER_SIZE;

/// `tp_flags` of a type object, widened so the flag constants above fit on every platform.
///
/// # Safety
/// `tp` must point to a live, readied type object.
#[inline]
pub unsafe fn type_flags(tp: *mut ffi::PyTypeObject) -> u64 {
    // SAFETY: the caller guarantees `tp` is a live type object.
    // `tp_flags` is a C `unsigned long`: 64 bits here, 32 on Windows. Free-threaded builds
    // declare it atomic.
    #[cfg(Py_GIL_DISABLED)]
    #[allow(clippy::unnecessary_cast)]
    unsafe {
        (*tp).tp_flags.load(std::sync::atomic::Ordering::Relaxed) as u64
    }
    #[cfg(not(Py_GIL_DISABLED))]
    #[allow(clippy::unnecessary_cast)]
    unsafe {
        (*tp).tp_flags as u64
    }
}

/// # Safety
/// `tp` must point to a live, readied type object.
pub unsafe fn type_has_flag(tp: *mut ffi::PyTypeObject, flag: u64) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { type_flags(tp) & flag != 0 }
}

/// # Safety
/// `op` must point to a live object.
pub unsafe fn type_of(op: *mut ffi::PyObject) -> *mut ffi::PyTypeObject {
    // SAFETY: every live object starts with a valid ob_type.
    unsafe { (*op).ob_type }
}

/// Reads `ob_size` (meaningful for variable-size objects other than 3.12+ ints).
///
/// # Safety
/// `op` must point to a live object whose type is variable-size.
pub unsafe fn var_size(op: *mut ffi::PyObject) -> isize {
    // SAFETY: PyVarObject places ob_size right after the object header.
    unsafe { (*(op as *mut ffi::PyVarObject)).ob_size }
}

/// Reads a pointer-sized field at a byte offset from an object.
///
/// # Safety
/// `base + offset` must be inside the object (or its pre-header) and pointer-aligned.
pub unsafe fn read_ptr<T>(base: *const u8, offset: isize) -> *mut T {
    // SAFETY: forwarded caller guarantee.
    unsafe { *(base.offset(offset) as *const *mut T) }
}

/// # Safety
/// `base + offset` must be a readable `isize` field.
pub unsafe fn read_isize(base: *const u8, offset: isize) -> isize {
    // SAFETY: forwarded caller guarantee.
    unsafe { *(base.offset(offset) as *const isize) }
}

// ---------------------------------------------------------------------------------------
// Object headers and what `sys.getsizeof` adds.

/// Bytes allocated before the object: the GC header, plus (3.11) the managed dict and values
/// pointers, or (3.12+) the managed dict and weakref pointers.
///
/// # Safety
/// `tp` must point to a live, readied type object.
pub unsafe fn preheader_size(layout: Layout, tp: *mut ffi::PyTypeObject) -> usize {
    // SAFETY: forwarded caller guarantee.
    let flags = unsafe { type_flags(tp) };
    let gc = if flags & TPFLAGS_HAVE_GC != 0 {
        GC_HEAD_SIZE
    } else {
        0
    };
    let managed_mask = match layout {
        Layout::V3_9 | Layout::V3_10 => 0,
        Layout::V3_11 => TPFLAGS_MANAGED_DICT,
        _ => TPFLAGS_MANAGED_DICT | TPFLAGS_MANAGED_WEAKREF,
    };
    let managed = if flags & managed_mask != 0 {
        2 * POINTER_SIZE
    } else {
        0
    };
    gc + managed
}

/// What `sys.getsizeof(op)` adds to `op.__sizeof__()`.
///
/// 3.9/3.10 add the GC header when the object itself is GC (`tp_is_gc` included, so static
/// type objects get nothing); 3.11/3.12 add the type's whole pre-header even for static type
/// objects; 3.13+ skip the pre-header for static type objects again.
///
/// # Safety
/// `op` must point to a live object; the GIL must be held.
pub unsafe fn getsizeof_overhead(layout: Layout, op: *mut ffi::PyObject) -> usize {
    // SAFETY: forwarded caller guarantee; PyObject_IS_GC only reads flags and calls the
    // type's C-level tp_is_gc.
    unsafe {
        let tp = type_of(op);
        match layout {
            Layout::V3_9 | Layout::V3_10 => {
                if ffi::PyObject_IS_GC(op) != 0 {
                    GC_HEAD_SIZE
                } else {
                    0
                }
            }
            Layout::V3_11 | Layout::V3_12 => preheader_size(layout, tp),
            Layout::V3_13 | Layout::V3_14 => {
                let is_static_type_object = tp == &raw mut ffi::PyType_Type
                    && !type_has_flag(op as *mut ffi::PyTypeObject, TPFLAGS_HEAPTYPE);
                if is_static_type_object {
                    0
                } else {
                    preheader_size(layout, tp)
                }
            }
        }
    }
}

/// Immortal objects (3.12+) carry a sentinel refcount: on 64-bit GIL builds the low 32 bits
/// of `ob_refcnt`, read as a signed integer, are negative. Before 3.12 nothing is immortal.
///
/// # Safety
/// `op` must point to a live object.
pub unsafe fn is_immortal(op: *mut ffi::PyObject) -> bool {
    match layout() {
        None | Some(Layout::V3_9 | Layout::V3_10 | Layout::V3_11) => false,
        Some(Layout::V3_12 | Layout::V3_13 | Layout::V3_14) => {
            // SAFETY: ob_refcnt is the first word of every object.
            let refcnt = unsafe { *(op as *const u64) };
            (refcnt as u32 as i32) < 0
        }
    }
}

// ---------------------------------------------------------------------------------------
// int

/// Bytes before the digits of an int: object header plus `ob_size` / `lv_tag`.
pub const LONG_DIGITS_OFFSET: usize = 3 * POINTER_SIZE;

/// Number of digits `int.__sizeof__` counts: 3.9/3.10 `|ob_size|` (0 for zero), 3.11 at least
/// one, 3.12+ `lv_tag >> 3` with at least one.
///
/// # Safety
/// `op` must point to a live int (or int subclass instance).
pub unsafe fn long_sizeof_digits(layout: Layout, op: *mut ffi::PyObject) -> usize {
    // SAFETY: forwarded caller guarantee.
    let (_, n_digits) = unsafe { long_sign_and_digits(layout, op) };
    match layout {
        Layout::V3_9 | Layout::V3_10 => n_digits,
        _ => n_digits.max(1),
    }
}

/// Whether an int is negative, and how many digits it has: from `ob_size` (3.9-3.11) or
/// `lv_tag` (3.12+: the count above three flag bits, sign 0 positive, 1 zero, 2 negative).
///
/// # Safety
/// `op` must point to a live int (or int subclass instance).
unsafe fn long_sign_and_digits(layout: Layout, op: *mut ffi::PyObject) -> (bool, usize) {
    // SAFETY: the word after the header is ob_size (<3.12) or lv_tag (3.12+).
    let word = unsafe { var_size(op) };
    match layout {
        Layout::V3_9 | Layout::V3_10 | Layout::V3_11 => (word < 0, word.unsigned_abs()),
        _ => ((word as usize) & 3 == 2, (word as usize) >> 3),
    }
}

/// The value of an int that fits in an `i64`, read from its digits: no C API call, so no
/// error state to set and clear during the walk. `None` for a larger value.
///
/// # Safety
/// `op` must point to a live int (or int subclass instance).
pub unsafe fn long_value(layout: Layout, op: *mut ffi::PyObject) -> Option<i64> {
    // SAFETY: the digits follow ob_size / lv_tag; only the `n_digits` present are read.
    unsafe {
        let (negative, n_digits) = long_sign_and_digits(layout, op);
        // 30-bit digits in 4 bytes, or 15-bit digits in 2 (a build option).
        let digit_bytes = usize::try_from(ffi::PyLong_Type.tp_itemsize).ok()?;
        let shift = match digit_bytes {
            4 => 30,
            2 => 15,
            _ => return None,
        };
        if n_digits > (64 + shift) / shift {
            return None;
        }
        let digits = (op as *const u8).add(LONG_DIGITS_OFFSET);
        let mut magnitude: u128 = 0;
        for i in (0..n_digits).rev() {
            let digit = match digit_bytes {
                4 => u128::from(*(digits as *const u32).add(i)),
                _ => u128::from(*(digits as *const u16).add(i)),
            };
            magnitude = (magnitude << shift) | digit;
        }
        if negative {
            0i128.checked_sub_unsigned(magnitude)
        } else {
            i128::try_from(magnitude).ok()
        }
        .and_then(|value| i64::try_from(value).ok())
    }
}

// ---------------------------------------------------------------------------------------
// str

/// Where the pieces of a `str` object sit, per version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnicodeLayout {
    /// `sizeof(PyASCIIObject)`: compact ASCII data starts here.
    pub ascii_size: usize,
    /// `sizeof(PyCompactUnicodeObject)`: compact non-ASCII data starts here.
    pub compact_size: usize,
    /// `sizeof(PyUnicodeObject)` (legacy strings, e.g. str subclass instances).
    pub legacy_size: usize,
    /// Offset of `utf8_length` / `utf8` in PyCompactUnicodeObject.
    pub utf8_length_offset: usize,
    pub utf8_offset: usize,
    /// `wstr` (PyASCIIObject) and `wstr_length` (PyCompactUnicodeObject), 3.9-3.11 only.
    pub wstr: Option<(usize, usize)>,
    /// Offset of `data.any` in PyUnicodeObject.
    pub legacy_data_offset: usize,
}

pub const UNICODE_LENGTH_OFFSET: usize = 2 * POINTER_SIZE;
pub const UNICODE_STATE_OFFSET: usize = 4 * POINTER_SIZE;

pub fn unicode_layout(layout: Layout) -> UnicodeLayout {
    match layout {
        Layout::V3_9 | Layout::V3_10 | Layout::V3_11 => UnicodeLayout {
            ascii_size: 48,
            compact_size: 72,
            legacy_size: 80,
            utf8_length_offset: 48,
            utf8_offset: 56,
            wstr: Some((40, 64)),
            legacy_data_offset: 72,
        },
        _ => UnicodeLayout {
            ascii_size: 40,
            compact_size: 56,
            legacy_size: 64,
            utf8_length_offset: 40,
            utf8_offset: 48,
            wstr: None,
            legacy_data_offset: 56,
        },
    }
}

/// The decoded `state` bitfield of a str (same bit positions 3.9-3.14 on GIL builds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnicodeState {
    pub kind: u32,
    pub compact: bool,
    pub ascii: bool,
    /// Always true on 3.12+, where the `ready` bit no longer exists.
    pub ready: bool,
}

/// # Safety
/// `op` must point to a live str (or subclass instance).
pub unsafe fn unicode_state(layout: Layout, op: *mut ffi::PyObject) -> UnicodeState {
    // SAFETY: the state bitfield is a 32-bit word at a fixed offset in every version.
    let state = unsafe { *((op as *const u8).add(UNICODE_STATE_OFFSET) as *const u32) };
    let ready = match layout {
        Layout::V3_9 | Layout::V3_10 | Layout::V3_11 => state & (1 << 7) != 0,
        _ => true,
    };
    UnicodeState {
        kind: (state >> 2) & 0b111,
        compact: state & (1 << 5) != 0,
        ascii: state & (1 << 6) != 0,
        ready,
    }
}

/// The code points of a ready str, read straight from its buffer.
pub enum UnicodeData {
    Latin1(*const u8),
    Ucs2(*const u16),
    Ucs4(*const u32),
}

/// Locates a str's character buffer and length without touching any cache (never
/// `PyUnicode_AsUTF8*`, which would allocate the UTF-8 copy inside the object).
///
/// # Safety
/// `op` must point to a live exact str or str subclass instance.
pub unsafe fn unicode_data(layout: Layout, op: *mut ffi::PyObject) -> Option<(UnicodeData, usize)> {
    let fields = unicode_layout(layout);
    let base = op as *const u8;
    // SAFETY: offsets come from the version's struct layout; the caller guarantees a str.
    unsafe {
        let state = unicode_state(layout, op);
        if !state.ready {
            return None;
        }
        let length = read_isize(base, UNICODE_LENGTH_OFFSET as isize);
        let length = usize::try_from(length).ok()?;
        let data: *const u8 = if state.compact && state.ascii {
            base.add(fields.ascii_size)
        } else if state.compact {
            base.add(fields.compact_size)
        } else {
            read_ptr::<u8>(base, fields.legacy_data_offset as isize)
        };
        if data.is_null() {
            return None;
        }
        let data = match state.kind {
            1 => UnicodeData::Latin1(data),
            2 => UnicodeData::Ucs2(data as *const u16),
            4 => UnicodeData::Ucs4(data as *const u32),
            _ => return None,
        };
        Some((data, length))
    }
}

/// Copies an exact-or-subclass str into a Rust `String`, transcoding in Rust. Lone surrogates
/// become U+FFFD. Returns `None` for non-str objects and unready legacy strings.
///
/// # Safety
/// `op` must point to a live object; the GIL must be held.
pub unsafe fn unicode_to_string(op: *mut ffi::PyObject) -> Option<String> {
    let layout = layout()?;
    // SAFETY: type check before any str-specific read.
    unsafe {
        if op.is_null() || !type_has_flag(type_of(op), TPFLAGS_UNICODE_SUBCLASS) {
            return None;
        }
        let (data, length) = unicode_data(layout, op)?;
        let text = match data {
            UnicodeData::Latin1(p) => std::slice::from_raw_parts(p, length)
                .iter()
                .map(|&b| char::from(b))
                .collect(),
            UnicodeData::Ucs2(p) => std::slice::from_raw_parts(p, length)
                .iter()
                .map(|&u| char::from_u32(u32::from(u)).unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
            UnicodeData::Ucs4(p) => std::slice::from_raw_parts(p, length)
                .iter()
                .map(|&u| char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
        };
        Some(text)
    }
}

/// True when `op` is a str whose characters equal the ASCII bytes `expected`; compares in
/// Rust so no `__eq__` can run.
///
/// # Safety
/// `op` must point to a live object; the GIL must be held.
pub unsafe fn unicode_equals_ascii(op: *mut ffi::PyObject, expected: &[u8]) -> bool {
    let Some(layout) = layout() else {
        return false;
    };
    // SAFETY: type check before any str-specific read.
    unsafe {
        if op.is_null() || !type_has_flag(type_of(op), TPFLAGS_UNICODE_SUBCLASS) {
            return false;
        }
        let Some((data, length)) = unicode_data(layout, op) else {
            return false;
        };
        if length != expected.len() {
            return false;
        }
        match data {
            UnicodeData::Latin1(p) => std::slice::from_raw_parts(p, length) == expected,
            UnicodeData::Ucs2(p) => std::slice::from_raw_parts(p, length)
                .iter()
                .zip(expected)
                .all(|(&a, &b)| a == u16::from(b)),
            UnicodeData::Ucs4(p) => std::slice::from_raw_parts(p, length)
                .iter()
                .zip(expected)
                .all(|(&a, &b)| a == u32::from(b)),
        }
    }
}

/// True when `op` is a str whose text equals the UTF-8 bytes `expected` (ASCII fast path,
/// otherwise a Rust-side transcoding).
///
/// # Safety
/// `op` must point to a live object; the GIL must be held.
pub unsafe fn unicode_equals_utf8(op: *mut ffi::PyObject, expected: &[u8]) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if expected.is_ascii() {
            unicode_equals_ascii(op, expected)
        } else {
            unicode_to_string(op).is_some_and(|text| text.as_bytes() == expected)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Code objects

/// Where `code.__sizeof__` finds its inputs (offsets measured with each version's headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeLayout {
    /// 3.9/3.10: fixed-size object; adds the `co_cell2arg` array (one `Py_ssize_t` per cell
    /// variable) and, once warmed up, the opcache map (one byte per code unit of `co_code`)
    /// and the opcache (`co_opcache_size` entries of 32 bytes).
    Classic {
        co_code_offset: isize,
        cellvars_offset: isize,
        cell2arg_offset: isize,
        co_extra_offset: isize,
        opcache_offset: isize,
        opcache_size_offset: isize,
        opcache_entry_size: usize,
    },
    /// 3.11+: variable-size object holding its adaptive bytecode, rounded up to a word.
    Adaptive { co_extra_offset: isize },
}

pub fn code_layout(layout: Layout) -> CodeLayout {
    match layout {
        Layout::V3_9 | Layout::V3_10 => CodeLayout::Classic {
            co_code_offset: 48,
            cellvars_offset: 88,
            cell2arg_offset: 96,
            co_extra_offset: 144,
            opcache_offset: 160,
            opcache_size_offset: 172,
            opcache_entry_size: 32,
        },
        Layout::V3_11 => CodeLayout::Adaptive {
            co_extra_offset: 176,
        },
        Layout::V3_12 => CodeLayout::Adaptive {
            co_extra_offset: 184,
        },
        Layout::V3_13 => CodeLayout::Adaptive {
            co_extra_offset: 192,
        },
        // 3.14 added `_co_unique_id` (a Py_ssize_t) before `_co_firsttraceable`.
        Layout::V3_14 => CodeLayout::Adaptive {
            co_extra_offset: 200,
        },
    }
}

/// Offsets of the `int` fields that size an evaluation frame, per version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeFrameFields {
    pub stacksize_offset: isize,
    /// 3.9/3.10 `co_nlocals`, 3.11+ `co_nlocalsplus` (locals, cells and free variables).
    pub locals_offset: isize,
    /// 3.9/3.10 only: the cell and free variable name tuples, counted separately.
    pub cell_and_free_tuples: Option<(isize, isize)>,
}

pub fn code_frame_fields(layout: Layout) -> CodeFrameFields {
    match layout {
        Layout::V3_9 | Layout::V3_10 => CodeFrameFields {
            stacksize_offset: 32,
            locals_offset: 28,
            cell_and_free_tuples: Some((88, 80)),
        },
        Layout::V3_11 => CodeFrameFields {
            stacksize_offset: 68,
            locals_offset: 76,
            cell_and_free_tuples: None,
        },
        Layout::V3_12 | Layout::V3_13 | Layout::V3_14 => CodeFrameFields {
            stacksize_offset: 64,
            locals_offset: 72,
            cell_and_free_tuples: None,
        },
    }
}

/// Number of `PyObject*` slots a frame for `code` needs: 3.9/3.10 `stacksize + nlocals +
/// ncells + nfrees`, 3.11+ `nlocalsplus + stacksize`.
///
/// # Safety
/// `code` must point to a live code object.
pub unsafe fn code_frame_slots(layout: Layout, code: *mut ffi::PyObject) -> Option<usize> {
    let fields = code_frame_fields(layout);
    let base = code as *const u8;
    // SAFETY: offsets from the version's PyCodeObject; the tuples are live.
    unsafe {
        let int_at = |offset: isize| usize::try_from(*(base.offset(offset) as *const i32)).ok();
        let mut slots = int_at(fields.stacksize_offset)? + int_at(fields.locals_offset)?;
        if let Some((cellvars_offset, freevars_offset)) = fields.cell_and_free_tuples {
            for offset in [cellvars_offset, freevars_offset] {
                let names = read_ptr::<ffi::PyObject>(base, offset);
                if !names.is_null() {
                    slots += usize::try_from(ffi::PyTuple_GET_SIZE(names)).ok()?;
                }
            }
        }
        Some(slots)
    }
}

/// Where a frame object (`f_code` 3.9/3.10, else `f_frame->f_code` / `f_executable`) and a
/// 3.11+ generator (`gi_code` 3.11, else the embedded frame's code) keep their code object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeLocation {
    /// A pointer field of the object itself.
    Direct(isize),
    /// A pointer to an interpreter frame, then the code field inside it.
    ViaFrame {
        frame_pointer: isize,
        code_in_frame: isize,
    },
    /// An interpreter frame embedded in the object, then the code field inside it.
    Embedded {
        frame_offset: isize,
        code_in_frame: isize,
    },
}

pub fn frame_code_location(layout: Layout) -> CodeLocation {
    match layout {
        Layout::V3_9 | Layout::V3_10 => CodeLocation::Direct(32),
        Layout::V3_11 => CodeLocation::ViaFrame {
            frame_pointer: 24,
            code_in_frame: 32,
        },
        _ => CodeLocation::ViaFrame {
            frame_pointer: 24,
            code_in_frame: 0,
        },
    }
}

/// Byte offset of `f_back` in a frame object: after `PyObject_VAR_HEAD` on 3.9/3.10, after
/// `PyObject_HEAD` from 3.11.
pub fn frame_back_offset(version: (u8, u8)) -> usize {
    if version >= (3, 11) {
        2 * POINTER_SIZE
    } else {
        3 * POINTER_SIZE
    }
}

/// Generators only have their own `__sizeof__` from 3.11 (`None` before).
pub fn generator_code_location(layout: Layout) -> Option<CodeLocation> {
    match layout {
        Layout::V3_9 | Layout::V3_10 => None,
        Layout::V3_11 => Some(CodeLocation::Direct(16)),
        _ => Some(CodeLocation::Embedded {
            frame_offset: 72,
            code_in_frame: 0,
        }),
    }
}

/// Follows a [`CodeLocation`], returning the object only if it is an exact code object.
///
/// # Safety
/// `op` must point to a live object of the kind the location was chosen for.
pub unsafe fn code_at(
    op: *mut ffi::PyObject,
    location: CodeLocation,
) -> Option<*mut ffi::PyObject> {
    let base = op as *const u8;
    // SAFETY: forwarded caller guarantee; the result is type-checked before use.
    unsafe {
        let code = match location {
            CodeLocation::Direct(offset) => read_ptr::<ffi::PyObject>(base, offset),
            CodeLocation::ViaFrame {
                frame_pointer,
                code_in_frame,
            } => {
                let frame = read_ptr::<u8>(base, frame_pointer);
                if frame.is_null() {
                    return None;
                }
                stack_ref_object(read_ptr::<u8>(frame, code_in_frame) as usize)?
            }
            CodeLocation::Embedded {
                frame_offset,
                code_in_frame,
            } => stack_ref_object(read_ptr::<u8>(base, frame_offset + code_in_frame) as usize)?,
        };
        (!code.is_null() && type_of(code) == &raw mut ffi::PyCode_Type).then_some(code)
    }
}

/// The object a word of an interpreter frame refers to. 3.14 keeps `_PyStackRef`s there
/// (`f_executable`, `localsplus`): bit 0 set marks a reference that owns no count (an
/// immortal or borrowed object), both low bits set a tagged int that is no object at all.
/// Earlier versions store plain, aligned pointers, which this leaves as they are.
pub fn stack_ref_object(bits: usize) -> Option<*mut ffi::PyObject> {
    const TAGGED_INT: usize = 0b11;
    if bits & TAGGED_INT == TAGGED_INT {
        return None;
    }
    let object = (bits & !TAGGED_INT) as *mut ffi::PyObject;
    (!object.is_null()).then_some(object)
}

/// Bytes of a `_PyCodeObjectExtra` block (`ce_size` then `ce_size` pointers, the first of
/// which is inside the struct), as `code.__sizeof__` counts it.
///
/// # Safety
/// `co_extra` must be NULL or point to a live `_PyCodeObjectExtra`.
pub unsafe fn code_extra_size(co_extra: *const u8) -> usize {
    if co_extra.is_null() {
        return 0;
    }
    // SAFETY: ce_size is the first field.
    let count = unsafe { read_isize(co_extra, 0) }.max(1).unsigned_abs();
    2 * POINTER_SIZE + (count - 1) * POINTER_SIZE
}

// ---------------------------------------------------------------------------------------
// Type objects

/// `sizeof(PyTypeObject)`: fields are only ever appended (3.12 added `tp_watched`, 3.13
/// `tp_versions_used`, both inside the padding of the last word).
pub fn type_object_size(layout: Layout) -> usize {
    match layout {
        Layout::V3_9 | Layout::V3_10 | Layout::V3_11 => 408,
        _ => 416,
    }
}

/// Offset of `ht_name` in PyHeapTypeObject: the type object followed by the async, number,
/// mapping, sequence and buffer method tables (3.10 added `am_send`).
fn heap_type_names_offset(layout: Layout) -> usize {
    let async_methods = match layout {
        Layout::V3_9 => 3,
        _ => 4,
    };
    let number_methods = 36;
    let mapping_methods = 3;
    let sequence_methods = 10;
    let buffer_procs = 2;
    type_object_size(layout)
        + POINTER_SIZE
            * (async_methods + number_methods + mapping_methods + sequence_methods + buffer_procs)
}

/// Offset of `ht_slots` (tuple of slot names, mangled, in member order).
pub fn heap_type_slots_offset(layout: Layout) -> usize {
    heap_type_names_offset(layout) + POINTER_SIZE
}

/// Offset of `ht_qualname`.
pub fn heap_type_qualname_offset(layout: Layout) -> usize {
    heap_type_names_offset(layout) + 2 * POINTER_SIZE
}

/// Offset of `ht_cached_keys` (the shared keys of instances' split dicts / inline values).
pub fn heap_type_cached_keys_offset(layout: Layout) -> usize {
    heap_type_names_offset(layout) + 3 * POINTER_SIZE
}

/// # Safety
/// `tp` must point to a live type object.
pub unsafe fn is_heap_type(tp: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { type_has_flag(tp, TPFLAGS_HEAPTYPE) }
}

/// Iterates a dict with `PyDict_Next` (borrowed references, no hashing, no comparison, no
/// Python code). Stops early when `f` returns `false`.
///
/// # Safety
/// `dict` must point to a live dict (or subclass instance); the GIL must be held and no
/// Python code may run while iterating.
pub unsafe fn dict_for_each(
    dict: *mut ffi::PyObject,
    mut f: impl FnMut(*mut ffi::PyObject, *mut ffi::PyObject) -> bool,
) {
    // SAFETY: PyDict_Check reads the type of a live object; null is refused first.
    if dict.is_null() || unsafe { ffi::PyDict_Check(dict) } == 0 {
        return;
    }
    let mut position: ffi::Py_ssize_t = 0;
    let mut key: *mut ffi::PyObject = std::ptr::null_mut();
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: forwarded caller guarantee; PyDict_Next only reads the table.
    while unsafe { ffi::PyDict_Next(dict, &mut position, &mut key, &mut value) } != 0 {
        if !f(key, value) {
            break;
        }
    }
}

/// Finds the value stored under the str key `name` in a dict, comparing keys in Rust.
///
/// # Safety
/// As [`dict_for_each`].
pub unsafe fn dict_find_ascii(dict: *mut ffi::PyObject, name: &[u8]) -> Option<*mut ffi::PyObject> {
    let mut found = None;
    // SAFETY: forwarded caller guarantee.
    unsafe {
        dict_for_each(dict, |key, value| {
            if unicode_equals_ascii(key, name) {
                found = Some(value);
                false
            } else {
                true
            }
        });
    }
    found
}

/// `module.QualName` of a type, without running Python code: heap types combine
/// `ht_qualname` with `__module__` from their own dict; static types already carry
/// `module.Name` (or a bare name for builtins) in `tp_name`. The `builtins` module is dropped.
///
/// # Safety
/// `tp` must point to a live type object; the GIL must be held.
pub unsafe fn type_qualified_name(tp: *mut ffi::PyTypeObject) -> String {
    // SAFETY: forwarded caller guarantee; all reads are of the type's own fields.
    unsafe {
        if let (Some(layout), true) = (layout(), is_heap_type(tp)) {
            let qualname_obj = read_ptr::<ffi::PyObject>(
                tp as *const u8,
                heap_type_qualname_offset(layout) as isize,
            );
            if let Some(qualname) = unicode_to_string(qualname_obj) {
                let dict = (*tp).tp_dict;
                let module = if dict.is_null() {
                    None
                } else {
                    dict_find_ascii(dict, b"__module__").and_then(|m| unicode_to_string(m))
                };
                return match module {
                    Some(module) if module != "builtins" && !module.is_empty() => {
                        format!("{module}.{qualname}")
                    }
                    _ => qualname,
                };
            }
        }
        let raw = (*tp).tp_name;
        if raw.is_null() {
            return String::from("?");
        }
        let name = CStr::from_ptr(raw).to_string_lossy();
        match name.strip_prefix("builtins.") {
            Some(bare) => bare.to_owned(),
            None => name.into_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// dict internals

/// Layout of `PyDictKeysObject` and its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DictKeysLayout {
    /// 3.9/3.10: `dk_refcnt, dk_size, dk_lookup, dk_usable, dk_nentries, dk_indices[]`;
    /// entries are always `{hash, key, value}`.
    Classic,
    /// 3.11+: `dk_refcnt, dk_log2_size, dk_log2_index_bytes, dk_kind, dk_version, dk_usable,
    /// dk_nentries, dk_indices[]`; unicode/split tables use `{key, value}` entries.
    Compact,
}

pub fn dict_keys_layout(layout: Layout) -> DictKeysLayout {
    match layout {
        Layout::V3_9 | Layout::V3_10 => DictKeysLayout::Classic,
        _ => DictKeysLayout::Compact,
    }
}

/// 3.11+ `dk_kind` values.
pub const DICT_KEYS_GENERAL: u8 = 0;
pub const DICT_KEYS_SPLIT: u8 = 2;

/// Decoded header of a `PyDictKeysObject`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DictKeys {
    pub refcnt: isize,
    /// Number of hash slots (`DK_SIZE`).
    pub size: usize,
    pub usable: isize,
    pub nentries: isize,
    /// True for 3.11+ unicode and split tables (16-byte entries).
    pub unicode_entries: bool,
    pub kind: u8,
    /// Bytes of the index array.
    pub index_bytes: usize,
    /// Bytes of the fixed header before `dk_indices`.
    pub header_size: usize,
}

/// `USABLE_FRACTION(n)`.
pub fn usable_fraction(size: usize) -> usize {
    (size << 1) / 3
}

/// Width of one index entry for a classic keys table of `size` slots (`DK_IXSIZE`).
pub fn classic_index_width(size: usize) -> usize {
    if size <= 0xff {
        1
    } else if size <= 0xffff {
        2
    } else if size <= 0xffff_ffff {
        4
    } else {
        8
    }
}

/// # Safety
/// `keys` must point to a live `PyDictKeysObject` of the running interpreter.
pub unsafe fn dict_keys(layout: Layout, keys: *const u8) -> DictKeys {
    // SAFETY: forwarded caller guarantee; offsets per the version's struct.
    unsafe {
        match dict_keys_layout(layout) {
            DictKeysLayout::Classic => {
                let size = read_isize(keys, 8).max(0) as usize;
                DictKeys {
                    refcnt: read_isize(keys, 0),
                    size,
                    usable: read_isize(keys, 24),
                    nentries: read_isize(keys, 32),
                    unicode_entries: false,
                    kind: DICT_KEYS_GENERAL,
                    index_bytes: classic_index_width(size) * size,
                    header_size: 40,
                }
            }
            DictKeysLayout::Compact => {
                let log2_size = u32::from(*keys.add(8));
                let log2_index_bytes = u32::from(*keys.add(9));
                let kind = *keys.add(10);
                DictKeys {
                    refcnt: read_isize(keys, 0),
                    size: 1usize << log2_size,
                    usable: read_isize(keys, 16),
                    nentries: read_isize(keys, 24),
                    unicode_entries: kind != DICT_KEYS_GENERAL,
                    kind,
                    index_bytes: 1usize << log2_index_bytes,
                    header_size: 32,
                }
            }
        }
    }
}

impl DictKeys {
    /// Bytes of one entry.
    pub fn entry_size(&self) -> usize {
        if self.unicode_entries {
            2 * POINTER_SIZE
        } else {
            3 * POINTER_SIZE
        }
    }

    /// `_PyDict_KeysSize`: header, indices and `USABLE_FRACTION(size)` entries.
    pub fn allocation_size(&self) -> usize {
        self.header_size + self.index_bytes + usable_fraction(self.size) * self.entry_size()
    }

    /// Byte offset of entry `index` from the start of the keys object.
    pub fn entry_offset(&self, index: usize) -> usize {
        self.header_size + self.index_bytes + index * self.entry_size()
    }

    /// Byte offset of the key pointer inside an entry (after the hash in general entries).
    pub fn key_field_offset(&self) -> usize {
        if self.unicode_entries {
            0
        } else {
            POINTER_SIZE
        }
    }
}

/// Field offsets of `PyDictObject` (stable 3.9-3.14: `ma_used`, a 64-bit version/watcher
/// tag, `ma_keys`, `ma_values`).
pub const DICT_KEYS_OFFSET: isize = 4 * POINTER_SIZE as isize;
pub const DICT_VALUES_OFFSET: isize = 5 * POINTER_SIZE as isize;

/// Slots counted for a split dict's values array by `dict.__sizeof__`: 3.9/3.10 the usable
/// fraction of the keys table, 3.11+ `dk_nentries + dk_usable`.
pub fn split_values_capacity(layout: Layout, keys: &DictKeys) -> usize {
    match dict_keys_layout(layout) {
        DictKeysLayout::Classic => usable_fraction(keys.size),
        DictKeysLayout::Compact => (keys.nentries.max(0) + keys.usable.max(0)) as usize,
    }
}

// ---------------------------------------------------------------------------------------
// Instance dictionaries

/// How instances of a version keep their attribute dictionaries when the type has
/// `Py_TPFLAGS_MANAGED_DICT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagedDictScheme {
    /// 3.9/3.10: no managed dicts; only `tp_dictoffset`.
    None,
    /// 3.11: pre-header word -3 is the dict pointer, word -4 the values pointer.
    PreHeaderDictAndValues,
    /// 3.12: pre-header word -3 is a dict pointer, or a values pointer minus one (low bit set).
    TaggedDictOrValues,
    /// 3.13+: pre-header word -3 is the dict pointer; values live inline after the object
    /// header (`Py_TPFLAGS_INLINE_VALUES`) with a `valid` flag.
    InlineValues,
}

pub fn managed_dict_scheme(layout: Layout) -> ManagedDictScheme {
    match layout {
        Layout::V3_9 | Layout::V3_10 => ManagedDictScheme::None,
        Layout::V3_11 => ManagedDictScheme::PreHeaderDictAndValues,
        Layout::V3_12 => ManagedDictScheme::TaggedDictOrValues,
        Layout::V3_13 | Layout::V3_14 => ManagedDictScheme::InlineValues,
    }
}

/// Byte offset (negative, from the object) of the managed dict word.
pub const MANAGED_DICT_OFFSET: isize = -3 * POINTER_SIZE as isize;
/// 3.11: byte offset of the managed values pointer.
pub const MANAGED_VALUES_OFFSET_3_11: isize = -4 * POINTER_SIZE as isize;

// ---------------------------------------------------------------------------------------
// Checking the facts above against the interpreter's own headers

/// The struct offsets and sizes hard-coded above for `layout`, named as the C fields are.
/// `tests/layout/offsets.c`, compiled against the running interpreter's headers, prints the
/// same names; `tests/test_layout_headers.py` compares the two on every interpreter.
pub fn layout_facts(layout: Layout) -> Vec<(&'static str, usize)> {
    let at = |offset: isize| offset.unsigned_abs();
    let mut facts = match code_layout(layout) {
        CodeLayout::Classic {
            co_code_offset,
            cellvars_offset,
            cell2arg_offset,
            co_extra_offset,
            opcache_offset,
            opcache_size_offset,
            ..
        } => vec![
            ("PyCodeObject.co_code", at(co_code_offset)),
            ("PyCodeObject.co_cellvars", at(cellvars_offset)),
            ("PyCodeObject.co_cell2arg", at(cell2arg_offset)),
            ("PyCodeObject.co_extra", at(co_extra_offset)),
            ("PyCodeObject.co_opcache", at(opcache_offset)),
            ("PyCodeObject.co_opcache_size", at(opcache_size_offset)),
        ],
        CodeLayout::Adaptive { co_extra_offset } => {
            vec![("PyCodeObject.co_extra", at(co_extra_offset))]
        }
    };
    let frame_fields = code_frame_fields(layout);
    facts.push((
        "PyCodeObject.co_stacksize",
        at(frame_fields.stacksize_offset),
    ));
    if let Some((cellvars, freevars)) = frame_fields.cell_and_free_tuples {
        facts.push(("PyCodeObject.co_nlocals", at(frame_fields.locals_offset)));
        facts.push(("PyCodeObject.co_cellvars", at(cellvars)));
        facts.push(("PyCodeObject.co_freevars", at(freevars)));
    } else {
        facts.push((
            "PyCodeObject.co_nlocalsplus",
            at(frame_fields.locals_offset),
        ));
    }
    match frame_code_location(layout) {
        CodeLocation::Direct(offset) => facts.push(("PyFrameObject.f_code", at(offset))),
        CodeLocation::ViaFrame {
            frame_pointer,
            code_in_frame,
        } => {
            facts.push(("struct _frame.f_frame", at(frame_pointer)));
            let field = match layout {
                Layout::V3_11 | Layout::V3_12 => "_PyInterpreterFrame.f_code",
                _ => "_PyInterpreterFrame.f_executable",
            };
            facts.push((field, at(code_in_frame)));
        }
        CodeLocation::Embedded { .. } => {}
    }
    match generator_code_location(layout) {
        Some(CodeLocation::Direct(offset)) => facts.push(("PyGenObject.gi_code", at(offset))),
        Some(CodeLocation::Embedded { frame_offset, .. }) => {
            facts.push(("PyGenObject.gi_iframe", at(frame_offset)))
        }
        _ => {}
    }
    if dict_keys_layout(layout) == DictKeysLayout::Compact {
        facts.extend([
            ("PyDictKeysObject.dk_log2_size", 8),
            ("PyDictKeysObject.dk_log2_index_bytes", 9),
            ("PyDictKeysObject.dk_kind", 10),
            ("PyDictKeysObject.dk_usable", 16),
            ("PyDictKeysObject.dk_nentries", 24),
            ("PyDictKeysObject.dk_indices", 32),
        ]);
    }
    facts.extend([
        ("sizeof(PyTypeObject)", type_object_size(layout)),
        ("PyHeapTypeObject.ht_name", heap_type_names_offset(layout)),
        ("PyHeapTypeObject.ht_slots", heap_type_slots_offset(layout)),
        (
            "PyHeapTypeObject.ht_qualname",
            heap_type_qualname_offset(layout),
        ),
        (
            "PyHeapTypeObject.ht_cached_keys",
            heap_type_cached_keys_offset(layout),
        ),
        ("PyASCIIObject.length", UNICODE_LENGTH_OFFSET),
        ("PyASCIIObject.state", UNICODE_STATE_OFFSET),
        ("PyDictObject.ma_keys", at(DICT_KEYS_OFFSET)),
        ("PyDictObject.ma_values", at(DICT_VALUES_OFFSET)),
    ]);
    let unicode = unicode_layout(layout);
    facts.extend([
        ("sizeof(PyASCIIObject)", unicode.ascii_size),
        ("sizeof(PyCompactUnicodeObject)", unicode.compact_size),
        ("sizeof(PyUnicodeObject)", unicode.legacy_size),
        (
            "PyCompactUnicodeObject.utf8_length",
            unicode.utf8_length_offset,
        ),
        ("PyCompactUnicodeObject.utf8", unicode.utf8_offset),
        ("PyUnicodeObject.data", unicode.legacy_data_offset),
    ]);
    if let Some((wstr, wstr_length)) = unicode.wstr {
        facts.push(("PyASCIIObject.wstr", wstr));
        facts.push(("PyCompactUnicodeObject.wstr_length", wstr_length));
        facts.push(("PyLongObject.ob_digit", LONG_DIGITS_OFFSET));
    } else {
        facts.push(("PyLongObject.long_value.ob_digit", LONG_DIGITS_OFFSET));
    }
    facts
}

/// `layout_facts` of the running interpreter, plus what the capture reads elsewhere: the
/// frame fields of `frames` and the walk (`f_back`, the probed first local slot).
#[pyo3::pyfunction]
pub fn _layout_facts(py: pyo3::Python<'_>) -> Vec<(&'static str, usize)> {
    let Some(layout) = layout() else {
        return Vec::new();
    };
    let mut facts = layout_facts(layout);
    facts.extend(super::frames::layout_facts(py, layout));
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_strings() {
        assert_eq!(
            parse_version("3.11.7 (main, Jan  1 2024, 00:00:00) [GCC 12.2.0]"),
            Some(PyVersion {
                major: 3,
                minor: 11
            })
        );
        assert_eq!(
            parse_version("3.13.0rc1 experimental free-threading build"),
            Some(PyVersion {
                major: 3,
                minor: 13
            })
        );
        assert_eq!(
            parse_version("3.14.0a1+"),
            Some(PyVersion {
                major: 3,
                minor: 14
            })
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn maps_versions_to_layouts() {
        let v = |minor| PyVersion { major: 3, minor };
        assert_eq!(layout_for(v(8), false), None);
        assert_eq!(layout_for(v(9), false), Some(Layout::V3_9));
        assert_eq!(layout_for(v(14), false), Some(Layout::V3_14));
        assert_eq!(layout_for(v(15), false), None);
        assert_eq!(layout_for(v(13), true), None);
    }

    #[test]
    fn heap_type_offsets_follow_the_method_tables() {
        // 3.9: 408-byte type object + 3 async + 36 number + 3 mapping + 10 sequence + 2 buffer.
        assert_eq!(heap_type_qualname_offset(Layout::V3_9), 408 + 54 * 8 + 16);
        assert_eq!(
            heap_type_cached_keys_offset(Layout::V3_11),
            408 + 55 * 8 + 24
        );
        assert_eq!(
            heap_type_cached_keys_offset(Layout::V3_13),
            416 + 55 * 8 + 24
        );
    }

    /// pyo3-ffi describes the structs of the interpreter this crate is compiled for (the
    /// extension is built per interpreter): one of the runtime tables must agree with it.
    /// Unit tests cannot link libpython, so the runtime version itself is not consulted.
    #[test]
    fn one_runtime_table_agrees_with_the_compiled_headers() {
        let all = [
            Layout::V3_9,
            Layout::V3_10,
            Layout::V3_11,
            Layout::V3_12,
            Layout::V3_13,
            Layout::V3_14,
        ];
        let matches = |layout: Layout| {
            let unicode = unicode_layout(layout);
            type_object_size(layout) == std::mem::size_of::<ffi::PyTypeObject>()
                && heap_type_slots_offset(layout)
                    == std::mem::offset_of!(ffi::PyHeapTypeObject, ht_slots)
                && heap_type_qualname_offset(layout)
                    == std::mem::offset_of!(ffi::PyHeapTypeObject, ht_qualname)
                && heap_type_cached_keys_offset(layout)
                    == std::mem::offset_of!(ffi::PyHeapTypeObject, ht_cached_keys)
                && unicode.ascii_size == std::mem::size_of::<ffi::PyASCIIObject>()
                && unicode.compact_size == std::mem::size_of::<ffi::PyCompactUnicodeObject>()
                && unicode.legacy_size == std::mem::size_of::<ffi::PyUnicodeObject>()
        };
        assert!(all.into_iter().any(matches));
        assert_eq!(
            DICT_KEYS_OFFSET as usize,
            std::mem::offset_of!(ffi::PyDictObject, ma_keys)
        );
        assert_eq!(
            DICT_VALUES_OFFSET as usize,
            std::mem::offset_of!(ffi::PyDictObject, ma_values)
        );
    }

    #[test]
    fn classic_index_widths() {
        assert_eq!(classic_index_width(8), 1);
        assert_eq!(classic_index_width(256), 2);
        assert_eq!(classic_index_width(1 << 16), 4);
        assert_eq!(usable_fraction(8), 5);
    }
}
