//! Frame locals as labelled references: `frame -> local 'session' -> UserSession`.
//!
//! A running frame of 3.11+ reports nothing of its locals through `tp_traverse` (the thread
//! owns them), so without this an object kept alive only by a local variable of a thread
//! looked like a native reference. 3.9/3.10 frames do traverse their locals, unnamed.
//! The slots (`f_localsplus` / `_PyInterpreterFrame.localsplus`) are found by probing a
//! frame whose first two locals are known, the slot count comes from the code object
//! (`co_nlocals` + cells + frees, or `co_nlocalsplus`), and the names are read after the
//! walk, where Python code may run.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::shims::{self, Layout};

/// Where a frame keeps its local slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalsLayout {
    layout: Layout,
    /// 3.11+: the slots live in the interpreter frame `f_frame` points to.
    via_interpreter_frame: bool,
    /// Byte offset of slot 0 from the frame object (or the interpreter frame).
    offset: usize,
}

/// Offset of `f_frame` in a 3.11+ frame object (after `PyObject_HEAD` and `f_back`).
const F_FRAME_OFFSET: isize = 24;
/// Words scanned for the probe's locals.
const PROBE_WORDS: usize = 96;

impl LocalsLayout {
    /// The layout, probed once per process (the probe compiles and calls a function).
    pub fn get(py: Python<'_>) -> Option<LocalsLayout> {
        // PyOnceLock: see `BoundedTypes::get`.
        static PROBED: pyo3::sync::PyOnceLock<Option<LocalsLayout>> = pyo3::sync::PyOnceLock::new();
        *PROBED.get_or_init(py, || LocalsLayout::probe(py))
    }

    /// Finds the slots on a live frame whose locals are `a` then `b`; `None` when the
    /// interpreter is not one whose frames this module can read or the probe is ambiguous.
    fn probe(py: Python<'_>) -> Option<LocalsLayout> {
        let layout = shims::layout()?;
        let globals = PyDict::new(py);
        // The unused locals make the frame larger than the words scanned.
        let source = format!(
            "import sys\ndef probe(a, b):\n    {} = None\n    return sys._getframe()\n",
            (0..PROBE_WORDS)
                .map(|i| format!("x{i}"))
                .collect::<Vec<_>>()
                .join(" = ")
        );
        let source = std::ffi::CString::new(source).ok()?;
        py.run(&source, Some(&globals), None).ok()?;
        let a = PyDict::new(py);
        let b = PyDict::new(py);
        let frame = globals
            .get_item("probe")
            .ok()??
            .call1((a.clone(), b.clone()))
            .ok()?;
        let via_interpreter_frame = !matches!(layout, Layout::V3_9 | Layout::V3_10);
        let base = frame_base(frame.as_ptr(), via_interpreter_frame)?;
        let words = base as *const usize;
        let mut found = None;
        for i in 0..PROBE_WORDS {
            // SAFETY: the probe frame has PROBE_WORDS + 2 local slots, so PROBE_WORDS + 1
            // words past its base are inside the frame.
            let (first, second) = unsafe { (*words.add(i), *words.add(i + 1)) };
            let refers_to = |word: usize, object: &Bound<'_, PyDict>| {
                shims::stack_ref_object(word) == Some(object.as_ptr())
            };
            if refers_to(first, &a) && refers_to(second, &b) {
                if found.is_some() {
                    return None;
                }
                found = Some(i * std::mem::size_of::<usize>());
                break;
            }
        }
        drop(frame);
        Some(LocalsLayout {
            layout,
            via_interpreter_frame,
            offset: found?,
        })
    }

    /// The local slots of a frame object, as raw words (decode each with
    /// [`shims::stack_ref_object`]), and its code object (for the names).
    ///
    /// # Safety
    /// `frame` a live frame object; GIL held.
    pub unsafe fn slots(
        &self,
        frame: *mut ffi::PyObject,
    ) -> Option<(&[usize], *mut ffi::PyObject)> {
        // SAFETY: forwarded; the code object's counts size the slot array.
        unsafe {
            let code = shims::code_at(frame, shims::frame_code_location(self.layout))?;
            let count = local_slot_count(self.layout, code)?;
            let base = frame_base(frame, self.via_interpreter_frame)?;
            let first = base.add(self.offset) as *const usize;
            Some((std::slice::from_raw_parts(first, count), code))
        }
    }
}

fn frame_base(frame: *mut ffi::PyObject, via_interpreter_frame: bool) -> Option<*const u8> {
    if !via_interpreter_frame {
        return Some(frame as *const u8);
    }
    // SAFETY: a 3.11+ frame object keeps `f_frame` right after `f_back`.
    let interpreter_frame = unsafe { shims::read_ptr::<u8>(frame as *const u8, F_FRAME_OFFSET) };
    (!interpreter_frame.is_null()).then_some(interpreter_frame as *const u8)
}

/// Locals, cells and free variables of a frame running `code`.
///
/// # Safety
/// `code` a live code object.
unsafe fn local_slot_count(layout: Layout, code: *mut ffi::PyObject) -> Option<usize> {
    let fields = shims::code_frame_fields(layout);
    let base = code as *const u8;
    // SAFETY: offsets from the version's PyCodeObject; the name tuples are live.
    unsafe {
        let mut count = usize::try_from(*(base.offset(fields.locals_offset) as *const i32)).ok()?;
        if let Some((cellvars_offset, freevars_offset)) = fields.cell_and_free_tuples {
            for offset in [cellvars_offset, freevars_offset] {
                let names = shims::read_ptr::<ffi::PyObject>(base, offset);
                if !names.is_null() {
                    count += usize::try_from(ffi::PyTuple_GET_SIZE(names)).ok()?;
                }
            }
        }
        Some(count)
    }
}

/// Which names of a code object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// One per local slot of a frame, in slot order (locals, then cells, then free
    /// variables; 3.11+ merges an argument that is also a cell into one slot).
    LocalSlots,
    /// `co_freevars`: one per cell of a closure tuple.
    FreeVariables,
}

/// Offsets in `PyCodeObject` of the name tuples (from each version's `cpython/code.h`).
enum NameFields {
    /// 3.9/3.10: `co_varnames`, `co_cellvars`, `co_freevars`.
    Separate {
        varnames: isize,
        cellvars: isize,
        freevars: isize,
    },
    /// 3.11+: `co_localsplusnames`, with the free variables last, `co_nfreevars` of them.
    Merged { names: isize, nfreevars: isize },
}

fn name_fields(layout: Layout) -> Option<NameFields> {
    Some(match layout {
        Layout::V3_9 | Layout::V3_10 => NameFields::Separate {
            varnames: 72,
            cellvars: 88,
            freevars: 80,
        },
        Layout::V3_11 => NameFields::Merged {
            names: 96,
            nfreevars: 92,
        },
        Layout::V3_12 | Layout::V3_13 | Layout::V3_14 => NameFields::Merged {
            names: 96,
            nfreevars: 88,
        },
    })
}

/// Names of `code`, read from its own tuples: no Python code runs, so this serves in a
/// forked child as well.
///
/// # Safety
/// `code` a live code object; GIL held (or a forked child's single thread).
pub unsafe fn code_names(code: *mut ffi::PyObject, which: Names) -> Option<Vec<String>> {
    let fields = name_fields(shims::layout()?)?;
    let base = code as *const u8;
    // SAFETY: offsets of this version's PyCodeObject; every tuple is type-checked.
    unsafe {
        let tuple_names = |offset: isize| -> Option<Vec<String>> {
            let tuple = shims::read_ptr::<ffi::PyObject>(base, offset);
            if tuple.is_null() || ffi::PyTuple_Check(tuple) == 0 {
                return None;
            }
            let n = usize::try_from(ffi::PyTuple_GET_SIZE(tuple)).ok()?;
            let items = (*(tuple as *mut ffi::PyTupleObject)).ob_item.as_ptr();
            (0..n)
                .map(|i| shims::unicode_to_string(*items.add(i)))
                .collect()
        };
        match (fields, which) {
            (
                NameFields::Separate {
                    varnames,
                    cellvars,
                    freevars,
                },
                Names::LocalSlots,
            ) => {
                let mut names = tuple_names(varnames)?;
                names.extend(tuple_names(cellvars)?);
                names.extend(tuple_names(freevars)?);
                Some(names)
            }
            (NameFields::Separate { freevars, .. }, Names::FreeVariables) => tuple_names(freevars),
            (NameFields::Merged { names, .. }, Names::LocalSlots) => tuple_names(names),
            (NameFields::Merged { names, nfreevars }, Names::FreeVariables) => {
                let all = tuple_names(names)?;
                let n = usize::try_from(*(base.offset(nfreevars) as *const i32)).ok()?;
                Some(all[all.len().checked_sub(n)?..].to_vec())
            }
        }
    }
}

/// The frame and code-object offsets this module and the walk read, named as the C fields
/// are (see `shims::layout_facts`); the first local slot is the probed one.
pub fn layout_facts(py: Python<'_>, layout: Layout) -> Vec<(&'static str, usize)> {
    let mut facts = Vec::new();
    let old_frames = matches!(layout, Layout::V3_9 | Layout::V3_10);
    let version = py.version_info();
    let f_back = shims::frame_back_offset((version.major, version.minor));
    if old_frames {
        facts.push(("PyFrameObject.f_back", f_back));
    } else {
        facts.push(("struct _frame.f_back", f_back));
        facts.push(("struct _frame.f_frame", F_FRAME_OFFSET.unsigned_abs()));
    }
    match name_fields(layout) {
        Some(NameFields::Separate {
            varnames,
            cellvars,
            freevars,
        }) => facts.extend([
            ("PyCodeObject.co_varnames", varnames.unsigned_abs()),
            ("PyCodeObject.co_cellvars", cellvars.unsigned_abs()),
            ("PyCodeObject.co_freevars", freevars.unsigned_abs()),
        ]),
        Some(NameFields::Merged { names, nfreevars }) => facts.extend([
            ("PyCodeObject.co_localsplusnames", names.unsigned_abs()),
            ("PyCodeObject.co_nfreevars", nfreevars.unsigned_abs()),
        ]),
        None => {}
    }
    if let Some(locals) = LocalsLayout::get(py) {
        let field = if old_frames {
            "PyFrameObject.f_localsplus"
        } else {
            "_PyInterpreterFrame.localsplus"
        };
        facts.push((field, locals.offset));
    }
    facts
}
