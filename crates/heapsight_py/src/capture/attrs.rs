//! Read-only enumeration of instance attributes.
//!
//! On 3.11+ an instance often has no dict object at all: its values sit in the pre-header
//! (3.11), behind a tagged pointer (3.12) or inline after the header (3.13+), keyed by the
//! type's shared keys. Asking for `obj.__dict__`, `PyObject_GenericGetDict` or
//! `_PyObject_GetDictPtr` would materialise a dict and change the heap being measured, so
//! this module decodes each layout directly and reports [`AttrSource::Unknown`] (enumerating
//! nothing) when it does not recognise one.

use std::ffi::CStr;

use pyo3::ffi;

use super::shims::{self, Layout, ManagedDictScheme};

const POINTER_SIZE: usize = std::mem::size_of::<*mut ffi::PyObject>();

/// `Py_T_OBJECT_EX` / `T_OBJECT_EX`: the member type `__slots__` creates.
const MEMBER_OBJECT_EX: i32 = 16;
/// 3.12+ `Py_RELATIVE_OFFSET`: offset relative to the subclass's own data; never present in a
/// readied type's table, skipped defensively.
const MEMBER_RELATIVE_OFFSET: i32 = 8;

/// Where the attributes reported by [`for_each_attr`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrSource {
    /// Neither an instance dict nor filled `__slots__`.
    Empty,
    /// Only `__slots__` members.
    Slots,
    /// A materialised `__dict__` object (iterated with `PyDict_Next`), plus any slots.
    Dict,
    /// Values stored without a dict object (3.11 pre-header values, 3.12 tagged values,
    /// 3.13+ inline values) decoded against the type's shared keys, plus any slots.
    SharedKeyValues,
    /// The layout was not recognised; nothing was enumerated.
    Unknown,
}

/// An instance's materialised `__dict__`.
#[derive(Clone, Copy)]
pub struct InstanceDict {
    pub dict: *mut ffi::PyObject,
    /// 3.13+: the dict shares the instance's still-valid inline values, and the instance's
    /// traverse visits those values rather than the dict.
    pub shares_inline_values: bool,
}

impl InstanceDict {
    fn alone(dict: *mut ffi::PyObject) -> DictLocation {
        DictLocation::Dict(InstanceDict {
            dict,
            shares_inline_values: false,
        })
    }
}

/// Where an instance's `__dict__` contents live right now.
enum DictLocation {
    /// The type has no instance dict, or it was never created.
    Absent,
    Dict(InstanceDict),
    /// A values array keyed by the shared keys of the instance's type.
    Values(ValuesArray),
    Unknown,
}

/// A split-table values array and how to read its insertion order.
#[derive(Clone, Copy)]
struct ValuesArray {
    /// Address of `values[0]`.
    values: *mut *mut ffi::PyObject,
    order: InsertionOrder,
}

#[derive(Clone, Copy)]
enum InsertionOrder {
    /// 3.11/3.12: byte `values[-2]` holds the count, entries follow downwards from
    /// `values[-3]`.
    PrefixBeforeValues,
    /// 3.13+: `size` byte in the header, entries after `values[capacity]`.
    AfterValues { capacity: usize, size: usize },
}

/// Computes `_PyObject_ComputedDictPointer` (the `tp_dictoffset` slot) without creating
/// anything; `None` when the offset cannot be resolved for this object.
///
/// # Safety
/// `op` must point to a live object.
unsafe fn dictoffset_slot(
    layout: Layout,
    op: *mut ffi::PyObject,
) -> Option<*mut *mut ffi::PyObject> {
    // SAFETY: reads the type's fields and, for negative offsets, the object's ob_size.
    unsafe {
        let tp = shims::type_of(op);
        let offset = (*tp).tp_dictoffset;
        if offset == 0 {
            return None;
        }
        if offset > 0 {
            return Some((op as *mut u8).offset(offset) as *mut *mut ffi::PyObject);
        }
        // Negative offsets count from the end of a variable-size object; a 3.12+ int keeps
        // lv_tag where ob_size would be, so its length cannot be read that way.
        let is_int = shims::type_has_flag(tp, shims::TPFLAGS_LONG_SUBCLASS);
        if is_int && layout >= Layout::V3_12 {
            return None;
        }
        let items = shims::var_size(op).unsigned_abs();
        let basicsize = usize::try_from((*tp).tp_basicsize).ok()?;
        let itemsize = usize::try_from((*tp).tp_itemsize).ok()?;
        let unaligned = basicsize + items * itemsize;
        let size = unaligned.div_ceil(POINTER_SIZE) * POINTER_SIZE;
        let end = (op as *mut u8).add(size);
        Some(end.offset(offset) as *mut *mut ffi::PyObject)
    }
}

/// # Safety
/// `op` must point to a live object; the GIL must be held.
unsafe fn dict_location(layout: Layout, op: *mut ffi::PyObject) -> DictLocation {
    // SAFETY: each branch reads only the words its version's layout defines.
    unsafe {
        let tp = shims::type_of(op);
        let base = op as *const u8;
        let managed = shims::type_has_flag(tp, shims::TPFLAGS_MANAGED_DICT);
        let scheme = shims::managed_dict_scheme(layout);
        if !managed || scheme == ManagedDictScheme::None {
            return match dictoffset_slot(layout, op) {
                None if (*tp).tp_dictoffset == 0 => DictLocation::Absent,
                None => DictLocation::Unknown,
                Some(slot) if (*slot).is_null() => DictLocation::Absent,
                Some(slot) => InstanceDict::alone(*slot),
            };
        }
        match scheme {
            ManagedDictScheme::None => DictLocation::Unknown,
            ManagedDictScheme::PreHeaderDictAndValues => {
                let dict = shims::read_ptr::<ffi::PyObject>(base, shims::MANAGED_DICT_OFFSET);
                if !dict.is_null() {
                    return InstanceDict::alone(dict);
                }
                let values =
                    shims::read_ptr::<*mut ffi::PyObject>(base, shims::MANAGED_VALUES_OFFSET_3_11);
                if values.is_null() {
                    DictLocation::Absent
                } else {
                    DictLocation::Values(ValuesArray {
                        values,
                        order: InsertionOrder::PrefixBeforeValues,
                    })
                }
            }
            ManagedDictScheme::TaggedDictOrValues => {
                let word = shims::read_ptr::<u8>(base, shims::MANAGED_DICT_OFFSET) as usize;
                if word & 1 == 1 {
                    DictLocation::Values(ValuesArray {
                        values: (word + 1) as *mut *mut ffi::PyObject,
                        order: InsertionOrder::PrefixBeforeValues,
                    })
                } else if word == 0 {
                    DictLocation::Absent
                } else {
                    InstanceDict::alone(word as *mut ffi::PyObject)
                }
            }
            ManagedDictScheme::InlineValues => {
                let dict = shims::read_ptr::<ffi::PyObject>(base, shims::MANAGED_DICT_OFFSET);
                if !shims::type_has_flag(tp, shims::TPFLAGS_INLINE_VALUES) {
                    return if dict.is_null() {
                        DictLocation::Absent
                    } else {
                        InstanceDict::alone(dict)
                    };
                }
                let Ok(basicsize) = usize::try_from((*tp).tp_basicsize) else {
                    return DictLocation::Unknown;
                };
                // struct _dictvalues { uint8 capacity, size, embedded, valid; values[] }
                let header = base.add(basicsize);
                let valid = *header.add(3) != 0;
                if !dict.is_null() {
                    return DictLocation::Dict(InstanceDict {
                        dict,
                        shares_inline_values: valid,
                    });
                }
                let capacity = usize::from(*header);
                let size = usize::from(*header.add(1));
                if !valid {
                    return DictLocation::Absent;
                }
                DictLocation::Values(ValuesArray {
                    values: header.add(POINTER_SIZE) as *mut *mut ffi::PyObject,
                    order: InsertionOrder::AfterValues { capacity, size },
                })
            }
        }
    }
}

/// The instance's existing `__dict__`, without creating one; `None` when there is none yet
/// (including 3.11+ instances whose attributes still live in a values array).
///
/// # Safety
/// `op` must point to a live object; the GIL must be held.
pub unsafe fn dict_of(op: *mut ffi::PyObject) -> Option<InstanceDict> {
    let layout = shims::layout()?;
    // SAFETY: forwarded caller guarantee.
    match unsafe { dict_location(layout, op) } {
        DictLocation::Dict(dict) => Some(dict),
        DictLocation::Absent | DictLocation::Values(_) | DictLocation::Unknown => None,
    }
}

/// Calls `f(name, value)` for each instance attribute of `op` (borrowed references), reading
/// memory only: a materialised `__dict__`, else a values array against the type's shared
/// keys, then filled `__slots__` of every heap type in the MRO. Runs no Python code,
/// allocates nothing, materialises nothing.
///
/// `name` is normally a str; a `__dict__` may hold other keys, which are passed as they are.
///
/// # Safety
/// `op` must point to a live object; the GIL must be held and no Python code may run while
/// `f` is called.
pub unsafe fn for_each_attr(
    op: *mut ffi::PyObject,
    mut f: impl FnMut(*mut ffi::PyObject, *mut ffi::PyObject),
) -> AttrSource {
    let Some(layout) = shims::layout() else {
        return AttrSource::Unknown;
    };
    // SAFETY: forwarded caller guarantee; every read follows the version's layout.
    unsafe {
        let tp = shims::type_of(op);
        let dict_source = match dict_location(layout, op) {
            DictLocation::Unknown => return AttrSource::Unknown,
            DictLocation::Absent => None,
            DictLocation::Dict(InstanceDict { dict, .. }) => {
                if !shims::type_has_flag(shims::type_of(dict), shims::TPFLAGS_DICT_SUBCLASS) {
                    return AttrSource::Unknown;
                }
                shims::dict_for_each(dict, |key, value| {
                    f(key, value);
                    true
                });
                Some(AttrSource::Dict)
            }
            DictLocation::Values(values) => {
                let Some(keys) = shared_keys(layout, tp) else {
                    return AttrSource::Unknown;
                };
                for_each_value(values, &keys, &mut f);
                Some(AttrSource::SharedKeyValues)
            }
        };
        let had_slots = for_each_slot(layout, op, &mut f);
        match (dict_source, had_slots) {
            (Some(source), _) => source,
            (None, true) => AttrSource::Slots,
            (None, false) => AttrSource::Empty,
        }
    }
}

/// A type's shared-key table (`ht_cached_keys`), read in place.
struct SharedKeys {
    keys_ptr: *const u8,
    keys: shims::DictKeys,
    /// Entries in use (`dk_nentries`), checked against the table size.
    count: usize,
}

impl SharedKeys {
    /// # Safety
    /// `index` must be below `count`; the keys object must still be alive.
    unsafe fn key_at(&self, index: usize) -> *mut ffi::PyObject {
        // SAFETY: entries up to dk_nentries are initialised unicode entries.
        unsafe {
            shims::read_ptr::<ffi::PyObject>(
                self.keys_ptr,
                (self.keys.entry_offset(index) + self.keys.key_field_offset()) as isize,
            )
        }
    }
}

/// # Safety
/// `tp` must point to a live heap type; the GIL must be held.
unsafe fn shared_keys(layout: Layout, tp: *mut ffi::PyTypeObject) -> Option<SharedKeys> {
    // SAFETY: ht_cached_keys is a split PyDictKeysObject with unicode entries.
    unsafe {
        if !shims::is_heap_type(tp) {
            return None;
        }
        let keys_ptr = shims::read_ptr::<u8>(
            tp as *const u8,
            shims::heap_type_cached_keys_offset(layout) as isize,
        );
        if keys_ptr.is_null() {
            return None;
        }
        let keys = shims::dict_keys(layout, keys_ptr);
        if keys.kind != shims::DICT_KEYS_SPLIT {
            return None;
        }
        let count = usize::try_from(keys.nentries).ok()?;
        if count > keys.size {
            return None;
        }
        Some(SharedKeys {
            keys_ptr,
            keys,
            count,
        })
    }
}

/// The insertion-order byte array of a values array: (first byte, count, step direction).
///
/// # Safety
/// `values` must be a live values array.
unsafe fn order_bytes(values: ValuesArray) -> (*const u8, usize, isize) {
    // SAFETY: the order bytes lie inside the values allocation.
    unsafe {
        match values.order {
            InsertionOrder::PrefixBeforeValues => {
                let bytes = values.values as *const u8;
                (bytes.sub(3), usize::from(*bytes.sub(2)), -1)
            }
            InsertionOrder::AfterValues { capacity, size } => (
                values.values.add(capacity) as *const u8,
                size.min(capacity),
                1,
            ),
        }
    }
}

/// Visits values in insertion order, skipping deleted (NULL) slots. If the order array does
/// not account for exactly the filled slots, falls back to entry order so that no attribute
/// is ever dropped.
///
/// # Safety
/// `values` must be the live values array of an instance keyed by `keys`.
unsafe fn for_each_value(
    values: ValuesArray,
    keys: &SharedKeys,
    f: &mut impl FnMut(*mut ffi::PyObject, *mut ffi::PyObject),
) {
    // SAFETY: indices are checked against the keys' entry count before any value is read.
    unsafe {
        let value_at = |ix: usize| *values.values.add(ix);
        let (first, count, step) = order_bytes(values);
        let order_at = |i: usize| usize::from(*first.offset(step * i as isize));
        let filled = (0..keys.count)
            .filter(|&ix| !value_at(ix).is_null())
            .count();
        let order_is_usable = (0..count).all(|i| order_at(i) < keys.count)
            && (0..count)
                .filter(|&i| !value_at(order_at(i)).is_null())
                .count()
                == filled;
        let mut visit = |ix: usize| {
            let value = value_at(ix);
            let key = keys.key_at(ix);
            if !value.is_null() && !key.is_null() {
                f(key, value);
            }
        };
        if order_is_usable {
            (0..count).for_each(|i| visit(order_at(i)));
        } else {
            (0..keys.count).for_each(visit);
        }
    }
}

/// Visits filled `__slots__` members of every heap type in the MRO, naming each by the str
/// object in that type's `ht_slots` tuple (members are created in that order). Returns
/// whether any slot member exists on the type.
///
/// # Safety
/// `op` must point to a live object; the GIL must be held.
unsafe fn for_each_slot(
    layout: Layout,
    op: *mut ffi::PyObject,
    f: &mut impl FnMut(*mut ffi::PyObject, *mut ffi::PyObject),
) -> bool {
    let mut any_slot = false;
    // SAFETY: walks the MRO tuple and each heap type's member table (NULL-name terminated).
    unsafe {
        let mro = (*shims::type_of(op)).tp_mro;
        if mro.is_null() {
            return false;
        }
        for index in 0..ffi::PyTuple_GET_SIZE(mro) {
            let tp = ffi::PyTuple_GET_ITEM(mro, index) as *mut ffi::PyTypeObject;
            if !shims::is_heap_type(tp) {
                continue;
            }
            let names = shims::read_ptr::<ffi::PyObject>(
                tp as *const u8,
                shims::heap_type_slots_offset(layout) as isize,
            );
            if names.is_null()
                || !shims::type_has_flag(shims::type_of(names), shims::TPFLAGS_TUPLE_SUBCLASS)
            {
                continue;
            }
            let name_count = ffi::PyTuple_GET_SIZE(names);
            let mut member = (*tp).tp_members;
            if member.is_null() {
                continue;
            }
            let mut slot_index: ffi::Py_ssize_t = 0;
            while !(*member).name.is_null() && slot_index < name_count {
                let is_slot = (*member).type_code == MEMBER_OBJECT_EX
                    && (*member).flags & MEMBER_RELATIVE_OFFSET == 0;
                if is_slot {
                    any_slot = true;
                    let expected = ffi::PyTuple_GET_ITEM(names, slot_index);
                    slot_index += 1;
                    let member_name = CStr::from_ptr((*member).name).to_bytes();
                    let name = if shims::unicode_equals_utf8(expected, member_name) {
                        expected
                    } else {
                        match slot_name_in(names, member_name) {
                            Some(name) => name,
                            None => {
                                member = member.add(1);
                                continue;
                            }
                        }
                    };
                    let value = shims::read_ptr::<ffi::PyObject>(op as *const u8, (*member).offset);
                    if !value.is_null() {
                        f(name, value);
                    }
                }
                member = member.add(1);
            }
        }
    }
    any_slot
}

/// Finds the str in a heap type's `ht_slots` whose text equals a member's C name.
///
/// # Safety
/// `names` must be a live tuple; the GIL must be held.
unsafe fn slot_name_in(
    names: *mut ffi::PyObject,
    member_name: &[u8],
) -> Option<*mut ffi::PyObject> {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (0..ffi::PyTuple_GET_SIZE(names))
            .map(|index| ffi::PyTuple_GET_ITEM(names, index))
            .find(|&name| shims::unicode_equals_utf8(name, member_name))
    }
}
