/* Prints the struct offsets and sizes that heapsight's capture/shims.rs hard-codes, as the
 * running interpreter's own headers define them ("name value" lines). Built and compared
 * by tests/test_layout_headers.py on every interpreter the tests run on. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#include "internal/pycore_dict.h"
#else
#include "frameobject.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_interpframe_structs.h"
#endif

#define OFF(type, field) printf("%s.%s %zu\n", #type, #field, offsetof(type, field))
#define SIZE(type) printf("sizeof(%s) %zu\n", #type, sizeof(type))

int main(void) {
    OFF(PyCodeObject, co_extra);
    OFF(PyCodeObject, co_stacksize);
#if PY_VERSION_HEX >= 0x030B0000
    OFF(PyCodeObject, co_nlocalsplus);
    OFF(PyCodeObject, co_localsplusnames);
    OFF(PyCodeObject, co_nfreevars);
    OFF(struct _frame, f_back);
    OFF(struct _frame, f_frame);
    OFF(_PyInterpreterFrame, localsplus);
#if PY_VERSION_HEX >= 0x030D0000
    OFF(_PyInterpreterFrame, f_executable);
#else
    OFF(_PyInterpreterFrame, f_code);
#endif
#if PY_VERSION_HEX >= 0x030C0000
    OFF(PyGenObject, gi_iframe);
#else
    OFF(PyGenObject, gi_code);
#endif
    OFF(PyDictKeysObject, dk_log2_size);
    OFF(PyDictKeysObject, dk_log2_index_bytes);
    OFF(PyDictKeysObject, dk_kind);
    OFF(PyDictKeysObject, dk_usable);
    OFF(PyDictKeysObject, dk_nentries);
    OFF(PyDictKeysObject, dk_indices);
#else
    OFF(PyCodeObject, co_nlocals);
    OFF(PyCodeObject, co_code);
    OFF(PyCodeObject, co_varnames);
    OFF(PyCodeObject, co_cellvars);
    OFF(PyCodeObject, co_freevars);
    OFF(PyCodeObject, co_cell2arg);
    OFF(PyCodeObject, co_opcache);
    OFF(PyCodeObject, co_opcache_size);
    OFF(PyFrameObject, f_back);
    OFF(PyFrameObject, f_code);
    OFF(PyFrameObject, f_localsplus);
#endif
    SIZE(PyTypeObject);
    OFF(PyHeapTypeObject, ht_name);
    OFF(PyHeapTypeObject, ht_slots);
    OFF(PyHeapTypeObject, ht_qualname);
    OFF(PyHeapTypeObject, ht_cached_keys);
    OFF(PyASCIIObject, length);
    OFF(PyASCIIObject, state);
    SIZE(PyASCIIObject);
    SIZE(PyCompactUnicodeObject);
    SIZE(PyUnicodeObject);
    OFF(PyCompactUnicodeObject, utf8_length);
    OFF(PyCompactUnicodeObject, utf8);
    OFF(PyUnicodeObject, data);
#if PY_VERSION_HEX < 0x030C0000
    OFF(PyASCIIObject, wstr);
    OFF(PyCompactUnicodeObject, wstr_length);
    OFF(PyLongObject, ob_digit);
#else
    OFF(PyLongObject, long_value.ob_digit);
#endif
    OFF(PyDictObject, ma_keys);
    OFF(PyDictObject, ma_values);
    return 0;
}
