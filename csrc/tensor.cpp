#include "tensor.hpp"

#include <cstring>

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "arrays.hpp"
#include "numpy_dispatch.hpp"
#include "replay.hpp"
#include "temporaries.hpp"

namespace tapegrad {

PyTypeObject* TensorBaseType = nullptr;

PyTypeObject* tensor_class = nullptr;
PyObject* foreign_label_class = nullptr;

namespace {

// Note [Stale tensors]
// A tensor made by an op whose record clear_history() removed keeps its value.
// Used again, it enters the new tape as a "stale" row: a value with no
// history. If a gradient reaches that row while a source made no later than
// the tensor is asked for, the sweep raises (the source may have fed it);
// sources made after it cannot have, and get their gradients as usual.
Value value_slot(Tape& tape, TensorObject* t) {
    Value v;
    if (t->array) v.index = tape.rows().add_array(t->array);
    else v.number = t->scalar;
    return v;
}

bool register_label(Tape& tape, TensorObject* t, uint32_t node) {
    return !t->label || tape.labels().name(node, t->label);
}

// A default label (tensor_N) for a tensor numbered elsewhere (by an earlier
// numbering of this tape, or another tape): shown for `node`, and for a
// foreign tensor also resolved by user records (Note [Labels]).
bool register_default_label(Tape& tape, TensorObject* t, uint32_t node, bool foreign) {
    return tape.labels().name_by_number(node, t->num, foreign);
}

uint32_t enter(Tape& tape, TensorObject* t, bool numbered_here);

// Whether row `node` holds t's current value: the same array object (the
// tape holds it, so no new array can have its address) or the same number.
bool holds_value(const Tape& tape, uint32_t node, const TensorObject* t) {
    const RowStore& rows = tape.rows();
    if (rows.is_array(node) || t->array) return rows.is_array(node) && rows.array_of(node) == t->array;
    const double number = rows.val(node).number;
    return std::memcmp(&number, &t->scalar, sizeof(double)) == 0;
}

// Note [Versions]: t's new value as a version row above `node`, t's row on
// this tape (its binding, or its foreign row).
uint32_t push_version(Tape& tape, TensorObject* t, uint32_t node, bool foreign) {
    const uint32_t row = tape.push(OP_VERSION, t->array ? F_ARRAY : 0, node, 0, value_slot(tape, t));
    if (row == UINT32_MAX) return row;
    if (foreign) {
        tape.foreign().move(reinterpret_cast<PyObject*>(t), row);
    } else {
        if (!(t->flags & (T_LEAF | T_SAVED))) {  // a recorded tensor now stands on the new row
            tape.drop_live(node);
            tape.add_live(row);
        }
        t->node = row;
        t->flags &= static_cast<uint8_t>(~T_UPDATED);
    }
    // Its label names the new value.
    if (!t->label && tape.labels().node_of_num(t->num) == node) tape.labels().set_num_node(t->num, row);
    else if (!t->label && !register_default_label(tape, t, row, foreign)) return UINT32_MAX;
    return register_label(tape, t, row) ? row : UINT32_MAX;
}

// Note [Versions]: t's value changed shape or dtype, so it cannot share a
// gradient with the value on `node`: that identity is retired, and t is
// unbound here (it enters anew on its next use).
void retire(Tape& tape, TensorObject* t, uint32_t node, bool foreign) {
    tape.foreign().retire(reinterpret_cast<PyObject*>(t), identity_row(tape, node));
    if (!foreign) {
        t->epoch = 0;
        t->flags &= static_cast<uint8_t>(~T_UPDATED);
    }
}

}  // namespace

bool same_layout_as(const Tape& tape, uint32_t node, const TensorObject* t) {
    if (!tape.rows().is_array(node) || !t->array) return !tape.rows().is_array(node) && !t->array;
    auto* a = reinterpret_cast<PyArrayObject*>(tape.rows().array_of(node));
    auto* b = reinterpret_cast<PyArrayObject*>(t->array);
    return PyArray_TYPE(a) == PyArray_TYPE(b) && PyArray_SAMESHAPE(a, b);
}

namespace {
// The size of the header before a GC object (CPython's PyGC_Head), measured
// at import; 0 where it is not the two words this code knows.
size_t gc_header = 0;

// A Tensor of the registered class, its GC header present but untracked
// (Note [Tracked tensors]): the header zeroed, as CPython's own allocator
// leaves it, without the allocator's count, which only paces collections
// (PyObject_GC_Del's decrement stops at zero).
TensorObject* allocate_untracked() {
    if (!gc_header) return PyObject_GC_New(TensorObject, tensor_class);
    char* memory = static_cast<char*>(PyObject_Malloc(gc_header + sizeof(TensorObject)));
    if (!memory) {
        PyErr_NoMemory();
        return nullptr;
    }
    // The header as CPython's allocator leaves it (both words zero: untracked).
    reinterpret_cast<uintptr_t*>(memory)[0] = 0;
    reinterpret_cast<uintptr_t*>(memory)[1] = 0;
    auto* t = reinterpret_cast<TensorObject*>(memory + gc_header);
    PyObject_Init(reinterpret_cast<PyObject*>(t), tensor_class);  // takes a reference to the type
    return t;
}
}  // namespace

PyObject* new_tensor(Tape& tape, double number, PyObject* array, uint32_t node, bool requires_grad) {
    auto* r = allocate_untracked();
    if (!r) {
        Py_XDECREF(array);
        return nullptr;
    }
    r->scalar = number;
    r->array = array;  // stolen
    r->label = nullptr;
    r->grad = nullptr;
    r->hooks = nullptr;
    r->born = next_birth();
    r->num = tape.labels().take_number();
    r->flags = requires_grad ? T_REQUIRES_GRAD : T_LEAF;  // no history: a constant leaf
    r->epoch = node == UINT32_MAX ? 0 : tape.epoch();
    r->node = node;
    if (node != UINT32_MAX) tape.add_live_new_row(node);  // new_tensor's node is always a new row
    tape.labels().set_num_node(r->num, node);
    return reinterpret_cast<PyObject*>(r);
}

namespace {

enum Kind { K_TENSOR, K_NUMBER, K_ARRAY };

struct Operand {
    Kind kind = K_NUMBER;
    TensorObject* tensor = nullptr;
    double number = 0.0;
    PyObject* array = nullptr;  // owned, for K_ARRAY
    Operand() = default;
    Operand(const Operand&) = delete;
    Operand& operator=(const Operand&) = delete;
    ~Operand() { Py_XDECREF(array); }

    bool is_scalar() const { return kind == K_NUMBER || (kind == K_TENSOR && !tensor->array); }
    bool wants_grad() const { return kind == K_TENSOR && (tensor->flags & T_REQUIRES_GRAD); }
    double scalar() const { return kind == K_TENSOR ? tensor->scalar : number; }
    // The operand as numpy sees it: an ndarray or a float (new reference).
    PyObject* object() const {
        if (kind == K_ARRAY) return Py_NewRef(array);
        if (kind == K_TENSOR && tensor->array) return Py_NewRef(tensor->array);
        return PyFloat_FromDouble(scalar());
    }
};

// 1: read; 0: not a type we take (the caller returns NotImplemented); -1: error.
// The op's name is looked up only for an error message, off the hot path.
int read_operand(PyObject* o, Operand& r, uint8_t code) {
    if (is_tensor(o)) {
        r.kind = K_TENSOR;
        r.tensor = reinterpret_cast<TensorObject*>(o);
        return 1;
    }
    if (PyFloat_Check(o)) {  // numpy.float64 included
        r.number = PyFloat_AS_DOUBLE(o);
        return 1;
    }
    if (PyLong_Check(o) || PyArray_IsScalar(o, Integer) || PyArray_IsScalar(o, Bool)) {
        r.number = PyFloat_AsDouble(o);
        return r.number == -1.0 && PyErr_Occurred() ? -1 : 1;
    }
    if (PyArray_Check(o) || PyArray_IsScalar(o, Generic) || PyList_Check(o) || PyTuple_Check(o)) {
        r.kind = K_ARRAY;
        r.array = to_float_array(o, op_name(code));
        return r.array ? 1 : -1;
    }
    return 0;
}

// The node an operand stands for: a tensor's node (whose data the tape keeps
// when `read`, Note [Saved values]), or a constant's slot.
bool operand_index(Tape& tape, const Operand& x, bool read, uint8_t number_flag,
                   uint8_t array_flag, uint8_t& flags, uint32_t& index) {
    switch (x.kind) {
        case K_TENSOR:
            index = node_on(tape, x.tensor);
            if (index != UINT32_MAX && read && x.tensor->array) tape.rows().keep_value(index, x.tensor->array);
            return index != UINT32_MAX;
        case K_NUMBER:
            flags |= number_flag;
            index = tape.rows().add_const(x.number);
            return true;
        case K_ARRAY: {
            flags |= array_flag;
            // A backward reads the constant: it must not change (Note [Immutable values]);
            // nor may a compiled tape's constant, which its replays read (Note [Compiled tapes]).
            PyObject* kept = read || tape.tracing ? immutable_value(x.array) : Py_NewRef(x.array);
            if (!kept) return false;
            index = tape.rows().add_array(kept);
            Py_DECREF(kept);
            return true;
        }
    }
    return false;
}

bool read_code(PyObject* arg, int arity, uint8_t& code) {
    long c = PyLong_AsLong(arg);
    if (c == -1 && PyErr_Occurred()) return false;
    if (c <= OP_STALE || c >= OP_COUNT || op_arity(static_cast<uint8_t>(c)) != arity) {
        PyErr_Format(PyExc_ValueError, "tapegrad: %ld is not the code of an op of arity %d", c, arity);
        return false;
    }
    code = static_cast<uint8_t>(c);
    return true;
}

// Whether numpy broadcasts `small` against `big` to big's own shape.
bool broadcasts_into(PyArrayObject* small, PyArrayObject* big) {
    const int ns = PyArray_NDIM(small), nb = PyArray_NDIM(big);
    if (ns > nb) return false;
    for (int i = 1; i <= ns; ++i) {
        const npy_intp d = PyArray_DIM(small, ns - i);
        if (d != 1 && d != PyArray_DIM(big, nb - i)) return false;
    }
    return true;
}

// The array of a temporary operand that op `code` may write its result into
// (Note [Temporaries]), or nullptr. `which` is READS_A or READS_B: the op's
// backward (which reads `reads`) must not read that operand. The result has the operand's layout:
// the other operand is a number, or an array of its dtype that broadcasts to
// its shape (a row added to a matrix, say) without changing it.
PyObject* temporary_array(const Tape& tape, int reads, const Operand& x, const Operand* other,
                          int which) {
    if (x.kind != K_TENSOR || (reads & which)) return nullptr;
    const TensorObject* t = x.tensor;
    PyObject* a = t->array;
    if (!a || Py_REFCNT(reinterpret_cast<const PyObject*>(t)) != 1 ||
        (t->flags & (T_LEAF | T_SAVED)) != 0 || !(t->flags & T_REQUIRES_GRAD) || t->hooks ||
        t->epoch != tape.epoch() || t->node == UINT32_MAX)
        return nullptr;
    auto* pa = reinterpret_cast<PyArrayObject*>(a);
    if (static_cast<size_t>(PyArray_NBYTES(pa)) < MIN_ELIDE_BYTES || !is_unseen(a) ||
        !PyArray_ISCARRAY_RO(pa))
        return nullptr;
    if (other && !other->is_scalar()) {
        PyObject* o = other->kind == K_ARRAY ? other->array : other->tensor->array;
        auto* po = reinterpret_cast<PyArrayObject*>(o);
        if (o == a || PyArray_TYPE(po) != PyArray_TYPE(pa) || !broadcasts_into(po, pa)) return nullptr;
    }
    return called_from_interpreter() && held_only_by_the_stack(reinterpret_cast<PyObject*>(x.tensor))
               ? a : nullptr;
}

// Applies op `code` to one or two operands; b is null for a unary op. With
// may_elide (the operators and functions Python code calls directly), the
// result may go into a temporary operand's array (Note [Temporaries]).
PyObject* apply(uint8_t code, PyObject* a_obj, PyObject* b_obj, bool may_elide = false) {
    Operand a, b;
    int ra = read_operand(a_obj, a, code);
    int rb = b_obj ? read_operand(b_obj, b, code) : 1;
    if (ra < 0 || rb < 0) return nullptr;
    if (ra == 0 || rb == 0) {
        PyObject* bad = ra == 0 ? a_obj : b_obj;
        // Other types may implement the reflected operator; these never do usefully
        // (str * Tensor would try sequence repetition), so they get our message.
        const bool never = bad == Py_None || PyUnicode_Check(bad) || PyBytes_Check(bad) ||
                           PyComplex_Check(bad);
        if (b_obj && !never) Py_RETURN_NOTIMPLEMENTED;
        PyErr_Format(PyExc_TypeError, "%s: expected a Tensor, a number or a numeric array, got %.100s%s",
                     op_name(code), Py_TYPE(bad)->tp_name,
                     PyComplex_Check(bad) ? " (complex numbers are not supported)" : "");
        return nullptr;
    }
    const bool scalar = a.is_scalar() && (!b_obj || b.is_scalar());
    const bool any_tensor = a.kind == K_TENSOR || (b_obj && b.kind == K_TENSOR);
    bool record = a.wants_grad() || (b_obj && b.wants_grad());

    Tape* tape = current_tape();
    if (!tape) return nullptr;
    tape->maybe_reclaim();  // a safe point: operands are read after it
    record = record && tape->grad_mode();  // nothing is recorded inside no_grad()
    double number = 0.0;
    PyObject* array = nullptr;
    int reads = 0;  // what the op's backward reads (Note [Saved values])
    if (scalar) {
        const double x = a.scalar(), y = b_obj ? b.scalar() : 0.0;
        visit_op(code, [&](auto tag) {  // one switch gives the forward and `reads`
            using Op = typename decltype(tag)::type;
            if constexpr (Op::arity == 2) number = Op::forward(x, y);
            else number = Op::forward(x);
            reads = Op::reads;
        });
        if (!any_tensor) return PyFloat_FromDouble(number);
    } else {
        // Only what the wanted gradients read: x ** 2 keeps no output (ops.hpp, backward_a).
        reads = op_reads_wanted(code, a.wants_grad(), b_obj && b.wants_grad());
        PyObject* into = nullptr;
        if (may_elide) {
            into = temporary_array(*tape, reads, a, b_obj ? &b : nullptr, READS_A);
            if (!into && b_obj) into = temporary_array(*tape, reads, b, &a, READS_B);
            if (into) tape->note_temporary_reused();
        }
        PyObject* x = a.object();
        PyObject* y = b_obj ? b.object() : nullptr;
        array = (x && (y || !b_obj))
                    ? array_forward(code, x, y, any_tensor ? &tape->pool : nullptr, into)
                    : nullptr;
        Py_XDECREF(x);
        Py_XDECREF(y);
        if (!array || !any_tensor) return array;
        // The tape keeps op outputs for the backward: nobody may write into them.
        PyArray_CLEARFLAGS(reinterpret_cast<PyArrayObject*>(array), NPY_ARRAY_WRITEABLE);
    }

    if (!record) {
        // Under no_grad, a value computed from f's inputs would be a constant of the trace.
        if (tape->tracing && (a.wants_grad() || (b_obj && b.wants_grad())) &&
            !allowed_while_tracing("an op under no_grad")) {
            Py_XDECREF(array);
            return nullptr;
        }
        return new_tensor(*tape, number, array, UINT32_MAX, false);
    }
    uint8_t flags = array ? F_ARRAY : 0;
    uint32_t ia = 0, ib = 0;
    if (!operand_index(*tape, a, reads & READS_A, F_A_NUMBER, F_A_ARRAY, flags, ia) ||
        (b_obj && !operand_index(*tape, b, reads & READS_B, F_B_NUMBER, F_B_ARRAY, flags, ib))) {
        Py_XDECREF(array);
        return nullptr;
    }
    Value v;
    if (array) {
        // Note [Saved values]: the data only if this op's backward reads it.
        PyObject* kept = (reads & READS_OUT) ? Py_NewRef(array) : layout_of(array);
        if (!kept) {
            Py_DECREF(array);
            return nullptr;
        }
        v.index = tape->rows().add_array(kept);
        Py_DECREF(kept);
    } else {
        v.number = number;
    }
    const uint32_t node = tape->push(code, flags, ia, ib, v);
    if (node == UINT32_MAX) {
        Py_XDECREF(array);
        return nullptr;
    }
    return new_tensor(*tape, number, array, node, true);
}

}  // namespace

PyObject* apply_op(uint8_t code, PyObject* a, PyObject* b) { return apply(code, a, b); }

PyObject* constant_tensor(Tape& tape, PyObject* value) {
    if (!value) return nullptr;
    if (PyArray_Check(value)) return new_tensor(tape, 0.0, value, UINT32_MAX, false);
    const double number = PyFloat_AsDouble(value);
    Py_DECREF(value);
    if (number == -1.0 && PyErr_Occurred()) return nullptr;
    return new_tensor(tape, number, nullptr, UINT32_MAX, false);
}

PyObject* saved_handle(Tape& tape, TensorObject* t, uint32_t& node) {
    node = UINT32_MAX;
    // A constant: its value as it is now (an update must not reach the backward).
    if (!(t->flags & T_REQUIRES_GRAD)) return constant_tensor(tape, value_object(t));
    node = (t->flags & T_LEAF) ? node_on(tape, t) : find_node(tape, t);
    if (node == UINT32_MAX) {
        if (PyErr_Occurred()) return nullptr;
        return Py_NewRef(t);  // history gone: a stale tensor already
    }
    if (t->flags & T_UPDATED) node = node_on(tape, t);  // its row must hold its current value
    if (node == UINT32_MAX) return nullptr;
    auto* h = reinterpret_cast<TensorObject*>(
        new_tensor(tape, t->scalar, t->array ? Py_NewRef(t->array) : nullptr, UINT32_MAX, true));
    if (!h) return nullptr;
    h->flags = T_REQUIRES_GRAD | T_SAVED;
    h->epoch = tape.epoch();
    h->node = node;
    if (t->label) h->label = Py_NewRef(t->label);
    return reinterpret_cast<PyObject*>(h);
}

PyObject* node_tensor(Tape& tape, uint32_t node) {
    const uint8_t code = tape.rows().op(node);
    if (code == OP_LEAF && tape.rows().in0(node) != UINT32_MAX) {
        // The leaf itself while this row holds its value; after an update, a
        // tensor standing for the old value (Note [Versions]).
        auto* leaf = reinterpret_cast<TensorObject*>(tape.rows().leaf_tensor(tape.rows().in0(node)));
        if (leaf->epoch == tape.epoch() && leaf->node == node && !(leaf->flags & T_UPDATED))
            return Py_NewRef(reinterpret_cast<PyObject*>(leaf));
    }
    // A leaf with no holder is a constant, unless a user record outputs it.
    if (code == OP_LEAF && tape.rows().in0(node) == UINT32_MAX && !(tape.rows().flags(node) & F_CUSTOM_OUTPUT))
        return tape.rows().operand_object(node, false, false);
    auto* r = reinterpret_cast<TensorObject*>(
        new_tensor(tape, tape.rows().is_array(node) ? 0.0 : tape.rows().val(node).number,
                   tape.rows().is_array(node) ? Py_NewRef(tape.rows().array_of(node)) : nullptr, UINT32_MAX, true));
    if (!r) return nullptr;
    r->flags = T_REQUIRES_GRAD;  // made by an op: not a leaf
    r->epoch = tape.epoch();
    r->node = node;
    tape.add_live(node);
    return reinterpret_cast<PyObject*>(r);
}

namespace {

// ---- the TensorBase type ----

// A recorded tensor stops counting as live on its tape (Note [Reclaiming records]).
void forget_live(TensorObject* t) {
    if ((t->flags & (T_LEAF | T_SAVED)) || t->epoch == 0) return;
    if (Tape* tape = tape_of_epoch(t->epoch)) {
        const uint32_t node = tape->lifetime().translate(t->epoch, t->node);
        if (node != UINT32_MAX) tape->drop_live(node);
    }
}

int tensor_init(PyObject* self, PyObject* args, PyObject* kwds) {
    static const char* keywords[] = {"data", "label", "requires_grad", "copy", nullptr};
    PyObject* data = nullptr;
    PyObject* label = Py_None;
    int requires_grad = 1, copy = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$pp:Tensor", const_cast<char**>(keywords), &data,
                                     &label, &requires_grad, &copy))
        return -1;
    if (label != Py_None && !PyUnicode_Check(label)) {
        PyErr_Format(PyExc_TypeError, "Tensor: label must be a str or None, got %.100s",
                     Py_TYPE(label)->tp_name);
        return -1;
    }
    auto* t = reinterpret_cast<TensorObject*>(self);
    if (t->born) {
        // Graphs on several tapes may hold it: a second identity under the same
        // object would have two answers for one gradient.
        PyErr_SetString(PyExc_RuntimeError,
                        "Tensor.__init__: this tensor is already made and may be in recorded "
                        "graphs; make a new Tensor, or give it a new value with t.data = ...");
        return -1;
    }
    double number = 0.0;
    PyObject* array = nullptr;
    if (is_tensor(data)) {
        // A copy of a traced value would be a constant of the trace (Note [Compiled tapes]).
        if (!value_may_leave(data, "Tensor(t) or as_tensor(t), a copy of a value")) return -1;
        auto* other = reinterpret_cast<TensorObject*>(data);
        number = other->scalar;
        array = Py_XNewRef(other->array);
    } else if (PyFloat_Check(data) || PyLong_Check(data)) {
        number = PyFloat_AsDouble(data);
        if (number == -1.0 && PyErr_Occurred()) return -1;
    } else if (PyUnicode_Check(data) || PyBytes_Check(data) || data == Py_None || PyComplex_Check(data)) {
        PyErr_Format(PyExc_TypeError,
                     "Tensor: data must be a real number or a numeric array, got %.100s%s",
                     Py_TYPE(data)->tp_name,
                     PyComplex_Check(data) ? " (complex numbers are not supported yet)" : "");
        return -1;
    } else {
        array = to_float_array(data, "Tensor");
        // Note [Immutable values]: the caller's array is copied unless copy=False.
        if (array && copy) Py_SETREF(array, immutable_value(array));
        if (!array) return -1;
    }
    Tape* tape = current_tape();
    if (!tape) {
        Py_XDECREF(array);
        return -1;
    }
    tape->maybe_reclaim();
    Py_XSETREF(t->array, array);
    // A plain str: a label read from another thread's tensor names that tensor (Note [Foreign labels]).
    Py_XSETREF(t->label, label == Py_None ? nullptr : PyUnicode_FromObject(label));
    if (label != Py_None && !t->label) return -1;
    t->scalar = number;
    t->flags = T_LEAF | (requires_grad ? T_REQUIRES_GRAD : 0);
    t->born = next_birth();
    t->epoch = 0;
    t->num = tape->labels().take_number();
    // Entered at once, so that its label names it in user records.
    const uint32_t node = enter(*tape, t, true);
    if (node == UINT32_MAX) return -1;
    tape->labels().set_num_node(t->num, node);
    return 0;
}

// What deallocation releases (tensor_dealloc runs it).
void release_tensor(PyObject* self) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    PyTypeObject* type = Py_TYPE(self);
    char* header = reinterpret_cast<char*>(self) - gc_header;
    forget_live(t);
    Py_CLEAR(t->array);
    Py_CLEAR(t->label);
    Py_CLEAR(t->grad);
    Py_CLEAR(t->hooks);
    // Freed as allocate_untracked allocates. For a tensor tp_alloc made
    // (Tensor(...)) the collector's count stays one higher than CPython's own
    // free would leave it; the count only paces collections.
    if (gc_header && type == tensor_class) PyObject_Free(header);
    else type->tp_free(self);
    Py_DECREF(type);  // instances of heap types own a reference to their type
}

void tensor_dealloc(PyObject* self) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    // The header's first word is nonzero while tracked (CPython's own test).
    char* header = reinterpret_cast<char*>(self) - gc_header;
    if (!gc_header || *reinterpret_cast<uintptr_t*>(header)) PyObject_GC_UnTrack(self);
    if (!t->grad && !t->hooks) {  // the common case: nothing that can chain to other tensors
        release_tensor(self);
        return;
    }
    // A chain of .grad (or hooks) can be longer than the C stack is deep:
    // CPython's trashcan frees it iteratively.
    Py_TRASHCAN_BEGIN(self, tensor_dealloc)
    release_tensor(self);
    Py_TRASHCAN_END
}

PyObject* get_data(PyObject* self, void*) {
    if (!value_may_leave(self, "Tensor.data")) return nullptr;  // Note [Compiled tapes]
    return value_object(reinterpret_cast<TensorObject*>(self));
}

int set_data(PyObject* self, PyObject* value, void*) {
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "Tensor.data cannot be deleted");
        return -1;
    }
    if (!allowed_while_tracing("t.data = ...")) return -1;
    // A new value, copied as Tensor() copies (Note [Immutable values]); records
    // made earlier keep the value they saw (Note [Versions]).
    double number = 0.0;
    PyObject* array = nullptr;
    if (PyFloat_Check(value) || PyLong_Check(value)) {
        number = PyFloat_AsDouble(value);
        if (number == -1.0 && PyErr_Occurred()) return -1;
    } else {
        array = to_float_array(value, "Tensor.data");
        if (array) Py_SETREF(array, immutable_value(array));
        if (!array) return -1;
    }
    set_value(reinterpret_cast<TensorObject*>(self), number, array);
    return 0;
}

PyObject* get_label(PyObject* self, void*) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    if (t->label) return Py_NewRef(t->label);
    PyObject* text = PyUnicode_FromFormat("tensor_%lld", static_cast<long long>(t->num));
    // Note [Foreign labels]: read on another thread (or outside the Tape that
    // numbered it), the label remembers its tensor.
    Tape* home = t->epoch && foreign_label_class ? tape_of_epoch(t->epoch) : nullptr;
    if (!text || !home) return text;
    Tape* here = current_tape();
    if (!here) PyErr_Clear();  // no tape to compare with: the plain text
    if (!here || home == here) return text;
    PyObject* label = PyObject_CallOneArg(foreign_label_class, text);
    Py_DECREF(text);
    if (label && PyObject_SetAttrString(label, "tensor", self) < 0) Py_CLEAR(label);
    return label;
}

int set_label(PyObject* self, PyObject* value, void*) {
    if (!value || !PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "Tensor.label must be a str");
        return -1;
    }
    auto* t = reinterpret_cast<TensorObject*>(self);
    PyObject* text = PyUnicode_FromObject(value);  // a plain str (Note [Foreign labels])
    if (!text) return -1;
    Py_XSETREF(t->label, text);
    Tape* tape = current_tape();
    if (!tape) return -1;
    find_node(*tape, t);  // rebinds a tensor bound before a compaction
    if (t->epoch == tape->epoch() && !register_label(*tape, t, t->node)) return -1;
    return 0;
}

PyObject* get_requires_grad(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<TensorObject*>(self)->flags & T_REQUIRES_GRAD);
}

PyObject* get_is_leaf(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<TensorObject*>(self)->flags & T_LEAF);
}

PyObject* get_shape(PyObject* self, void*) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    if (!t->array) return PyTuple_New(0);
    return PyObject_GetAttrString(t->array, "shape");
}

PyObject* get_ndim(PyObject* self, void*) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    return PyLong_FromLong(t->array ? PyArray_NDIM(reinterpret_cast<PyArrayObject*>(t->array)) : 0);
}

PyObject* get_grad(PyObject* self, void*) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    return Py_NewRef(t->grad ? t->grad : Py_None);
}

int set_grad(PyObject* self, PyObject* value, void*) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    if (!value || value == Py_None) {
        Py_CLEAR(t->grad);
        return 0;
    }
    if (!is_tensor(value) || value == self) {
        PyErr_SetString(PyExc_TypeError, "Tensor.grad must be None or another Tensor");
        return -1;
    }
    auto* g = reinterpret_cast<TensorObject*>(value);
    const bool same = (!g->array && !t->array) ||
                      (g->array && t->array &&
                       PyArray_SAMESHAPE(reinterpret_cast<PyArrayObject*>(g->array),
                                         reinterpret_cast<PyArrayObject*>(t->array)));
    if (!same) {
        PyObject* got = PyObject_GetAttrString(value, "shape");
        PyObject* want = PyObject_GetAttrString(self, "shape");
        PyErr_Format(PyExc_ValueError, "Tensor.grad: the gradient has shape %S but the tensor has shape %S",
                     got ? got : Py_None, want ? want : Py_None);
        Py_XDECREF(got);
        Py_XDECREF(want);
        return -1;
    }
    Py_XSETREF(t->grad, Py_NewRef(value));
    track(t);  // Note [Tracked tensors]
    return 0;
}

PyGetSetDef tensor_getset[] = {
    {"grad", get_grad, set_grad, "The gradient backward() accumulated here (a Tensor), or None.",
     nullptr},
    {"shape", get_shape, nullptr, "The shape of the value: () for a scalar.", nullptr},
    {"ndim", get_ndim, nullptr, "Number of dimensions: 0 for a scalar.", nullptr},
    {"data", get_data, set_data, "The value: a float, or a float32/float64 ndarray.", nullptr},
    {"label", get_label, set_label, "A name for people: tensor_N unless given.", nullptr},
    {"requires_grad", get_requires_grad, nullptr, "Whether ops on it are recorded.", nullptr},
    {"is_leaf", get_is_leaf, nullptr, "True for tensors made by the user, not by an op.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

PyObject* tensor_hooks(PyObject* tensor) {
    PyObject* hooks = is_tensor(tensor) ? reinterpret_cast<TensorObject*>(tensor)->hooks : nullptr;
    return hooks && PyList_GET_SIZE(hooks) ? hooks : nullptr;
}

void rebind_leaf(Tape& tape, PyObject* leaf, uint64_t old_epoch, const RowMap& map) {
    if (!is_tensor(leaf)) return;  // let go of (a Function's output)
    auto* t = reinterpret_cast<TensorObject*>(leaf);
    if (t->epoch != old_epoch) return;  // bound to another tape (a foreign row there)
    const uint32_t base = identity_row(tape, t->node);
    if (map.kept(t->node)) {
        t->epoch = tape.epoch();
        t->node = map[t->node];
    } else if (map.kept(base)) {
        // Its newest value's row goes, but a graph kept reads an older one:
        // bound to its identity, as a tensor updated since (Note [Versions]).
        t->epoch = tape.epoch();
        t->node = map[base];
        t->flags |= T_UPDATED;
    } else {
        t->epoch = 0;
    }
}

void rebind_saved_handle(Tape& tape, PyObject* handle, uint64_t old_epoch, uint32_t row) {
    auto* h = reinterpret_cast<TensorObject*>(handle);
    if (h->epoch != old_epoch) return;
    h->epoch = tape.epoch();
    h->node = row;
}

uint32_t find_node(const Tape& tape, TensorObject* t) {
    if (t->epoch == tape.epoch()) return t->node;
    if (t->epoch && tape.lifetime().renamed_any()) {  // bound before a compaction (Note [Compaction])
        const uint32_t node = tape.lifetime().translate(t->epoch, t->node);
        if (node != UINT32_MAX) {
            t->epoch = tape.epoch();
            t->node = node;
            return node;
        }
    }
    return tape.foreign().row_of(reinterpret_cast<PyObject*>(t));
}

namespace {

// Enters t on the tape as a leaf (or a stale tensor: a recorded one whose
// history is not here), bound to the new row or, for a tensor whose home tape
// is alive, as a foreign row. `numbered_here`: t's number is this tape's (a
// tensor just made); otherwise its default label is registered for the row.
uint32_t enter(Tape& tape, TensorObject* t, bool numbered_here) {
    // Note [Foreign tensors]: a tensor whose home tape is alive stays bound to it.
    Tape* home = t->epoch ? tape_of_epoch(t->epoch) : nullptr;
    const bool foreign = home && home != &tape;
    const bool leaf = t->flags & T_LEAF;
    // A leaf that requires grad is held by the tape, so backward() can set its .grad.
    uint32_t holder = UINT32_MAX;
    if (leaf && (t->flags & T_REQUIRES_GRAD)) {
        holder = tape.rows().hold_leaf(reinterpret_cast<PyObject*>(t));
    }
    const uint8_t row_flags = (t->array ? F_ARRAY : 0) | (leaf && t->hooks ? F_HOOKED : 0);
    const uint32_t node = tape.push(leaf ? OP_LEAF : OP_STALE, row_flags, holder, 0,
                                    value_slot(tape, t));
    if (node == UINT32_MAX) return node;
    if (!leaf) tape.foreign().note_stale(node, t->born, foreign ? reinterpret_cast<PyObject*>(t) : nullptr);
    if (foreign) {
        tape.foreign().enter(reinterpret_cast<PyObject*>(t), node);
    } else {
        if (!leaf) tape.add_live(node);  // Note [Reclaiming records]: it now stands on this row
        t->epoch = tape.epoch();
        t->node = node;
        t->flags &= static_cast<uint8_t>(~T_UPDATED);  // the new row holds its current value
    }
    if (!numbered_here && !t->label && !register_default_label(tape, t, node, foreign)) return UINT32_MAX;
    return register_label(tape, t, node) ? node : UINT32_MAX;
}

}  // namespace

uint32_t node_on_slow(Tape& tape, TensorObject* t) {
    const uint32_t known = find_node(tape, t);
    if (known != UINT32_MAX) {
        // Bound here (rebound by find_node after a compaction), or a foreign row.
        const bool here = t->epoch == tape.epoch();
        if (here ? !(t->flags & T_UPDATED) : holds_value(tape, known, t)) return known;
        // Its value changed since that row recorded it (Note [Versions]).
        if (same_layout_as(tape, known, t)) return push_version(tape, t, known, !here);
        retire(tape, t, known, !here);
    }
    return enter(tape, t, false);
}

PyObject* value_object(TensorObject* t) {
    if (t->array) return Py_NewRef(t->array);
    return PyFloat_FromDouble(t->scalar);
}

// Note [Tracked tensors]
// A Tensor refers to its value (an ndarray), its label (a str), its .grad (a
// Tensor) and its hooks (a list of functions). The first two cannot refer back
// to it; .grad and hooks can (t.register_hook(lambda g, t=t: g), t.grad = u
// with u.grad = t), making cycles only Python's collector can free. So the
// type supports GC (a 16-byte header per tensor), but a tensor is tracked
// only once it holds a .grad or a hook: op results, the bulk of all tensors,
// are never walked by a collection. An op result is allocated and freed
// without the collector's bookkeeping (allocate_untracked): with it, the GC
// header cost 3.7 ns per scalar op (59.2 against 55.4 ns forward, medians of
// 11); without it, none measurable.
void track(TensorObject* t) {
    PyObject* self = reinterpret_cast<PyObject*>(t);
    if (!PyObject_GC_IsTracked(self)) PyObject_GC_Track(self);
}

namespace {

int tensor_traverse(PyObject* self, visitproc visit, void* arg) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    Py_VISIT(Py_TYPE(self));  // instances of heap types refer to their type
    Py_VISIT(t->grad);
    Py_VISIT(t->hooks);
    return 0;
}

int tensor_clear(PyObject* self) {
    auto* t = reinterpret_cast<TensorObject*>(self);
    Py_CLEAR(t->grad);
    Py_CLEAR(t->hooks);
    return 0;
}

}  // namespace

bool set_tensor_class(PyObject* cls) {
    auto* type = reinterpret_cast<PyTypeObject*>(cls);
    if (!PyType_Check(cls) || !PyType_IsSubtype(type, TensorBaseType) ||
        type->tp_basicsize != TensorBaseType->tp_basicsize || type->tp_dictoffset != 0 ||
        type->tp_weaklistoffset != 0 || type->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "set_tensor_class: expected a subclass of TensorBase with __slots__ = ()");
        return false;
    }
    // The class adds nothing to TensorBase (no __dict__, slots or weak
    // references), so its instances need none of the generic subclass
    // handling: TensorBase's own functions run directly (an op result's
    // deallocation is on the hot path).
    type->tp_dealloc = tensor_dealloc;
    type->tp_traverse = tensor_traverse;
    type->tp_clear = tensor_clear;
    PyType_Modified(type);
#if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
    // The GC header's size: what sys.getsizeof adds to a GC object's own.
    PyObject* getsizeof = PySys_GetObject("getsizeof");  // borrowed
    PyObject* probe = PyList_New(0);
    PyObject* whole = getsizeof && probe ? PyObject_CallOneArg(getsizeof, probe) : nullptr;
    PyObject* own = probe ? PyObject_CallMethod(probe, "__sizeof__", nullptr) : nullptr;
    const Py_ssize_t header = whole && own ? PyLong_AsSsize_t(whole) - PyLong_AsSsize_t(own) : 0;
    gc_header = header == static_cast<Py_ssize_t>(2 * sizeof(void*)) ? static_cast<size_t>(header) : 0;
    Py_XDECREF(whole);
    Py_XDECREF(own);
    Py_XDECREF(probe);
    PyErr_Clear();  // not measured: PyObject_GC_New serves
#endif
    Py_INCREF(cls);  // kept for the life of the process
    tensor_class = type;
    return true;
}

void set_value(TensorObject* t, double number, PyObject* array) {
    const bool same = (!array && !t->array) ||
                      (array && t->array &&
                       PyArray_TYPE(reinterpret_cast<PyArrayObject*>(array)) ==
                           PyArray_TYPE(reinterpret_cast<PyArrayObject*>(t->array)) &&
                       PyArray_SAMESHAPE(reinterpret_cast<PyArrayObject*>(array),
                                         reinterpret_cast<PyArrayObject*>(t->array)));
    if (!same && !(t->flags & T_LEAF)) {
        // A value of another shape or dtype cannot pass its gradient to the
        // tensor's history: the tensor becomes a leaf (Note [Versions]).
        forget_live(t);
        t->flags |= T_LEAF;
    }
    Py_XSETREF(t->array, array);
    t->scalar = number;
    if (t->epoch) t->flags |= T_UPDATED;  // its rows hold the old value
}

bool update_in_place(PyObject* tensor_obj, uint8_t code, PyObject* other) {
    if (!allowed_while_tracing("an in-place operator under no_grad")) return false;
    auto* t = reinterpret_cast<TensorObject*>(tensor_obj);
    Operand b;
    const int rb = read_operand(other, b, code);
    if (rb <= 0) {
        if (rb == 0)
            PyErr_Format(PyExc_TypeError, "%s in place: expected a Tensor, a number or a numeric "
                         "array, got %.100s", op_name(code), Py_TYPE(other)->tp_name);
        return false;
    }
    if (!t->array && b.kind != K_NUMBER && !b.is_scalar()) {
        // A one-element 0-d array (tg.sum(v)) is a number here, as in numpy.
        PyObject* value = b.object();
        PyArrayObject* a = value && PyArray_Check(value) ? reinterpret_cast<PyArrayObject*>(value) : nullptr;
        if (a && PyArray_NDIM(a) == 0) {
            b.kind = K_NUMBER;
            b.number = PyFloat_AsDouble(value);
        }
        Py_XDECREF(value);
        if (PyErr_Occurred()) return false;
    }
    if (!t->array) {
        if (!b.is_scalar()) {
            PyErr_Format(PyExc_ValueError,
                         "%s in place: the tensor is a scalar, so an in-place update must give a "
                         "scalar too; write t = t %s x for a result of x's shape",
                         op_name(code), code == OP_ADD ? "+" : code == OP_SUB ? "-" : code == OP_MUL ? "*" : "/");
            return false;
        }
        double number = 0.0;
        visit_op(code, [&](auto tag) {
            using Op = typename decltype(tag)::type;
            if constexpr (Op::arity == 2) number = Op::forward(t->scalar, b.scalar());
        });
        set_value(t, number, nullptr);
        return true;
    }
    // Into the tensor's own array when nobody else can see it (no graph keeps
    // it, Note [Unseen arrays]); else into a new one, the old one left to
    // the graphs that saw it. numpy's rules either way: the result keeps the
    // tensor's shape and dtype.
    PyObject* value = b.object();
    if (!value) return false;
    const bool own = is_unseen(t->array);
    PyObject* out = own ? Py_NewRef(t->array) : empty_like(t->array);
    if (own) PyArray_ENABLEFLAGS(reinterpret_cast<PyArrayObject*>(out), NPY_ARRAY_WRITEABLE);
    PyObject* done = out ? ufunc_into(code, t->array, value, out) : nullptr;
    Py_DECREF(value);
    if (out) PyArray_CLEARFLAGS(reinterpret_cast<PyArrayObject*>(out), NPY_ARRAY_WRITEABLE);
    if (!done) {
        Py_XDECREF(out);
        return false;
    }
    Py_DECREF(done);
    set_value(t, 0.0, out);
    return true;
}

namespace {
template <uint8_t CODE>
PyObject* unary_function(PyObject*, PyObject* a) {
    return apply(CODE, a, nullptr, true);
}

template <uint8_t CODE>
PyObject* binary_function(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 2 arguments (%zd given)", op_name(CODE), nargs);
        return nullptr;
    }
    PyObject* result = apply(CODE, args[0], args[1], true);
    if (result == Py_NotImplemented) {  // an operator would let the other operand try; a function raises
        Py_DECREF(result);
        PyErr_Format(PyExc_TypeError, "%s: expected Tensors, numbers or numeric arrays, got %.100s and %.100s",
                     op_name(CODE), Py_TYPE(args[0])->tp_name, Py_TYPE(args[1])->tp_name);
        return nullptr;
    }
    return result;
}
}  // namespace

PyCFunction elementwise_function(uint8_t code) {
    switch (code) {
#define TAPEGRAD_UNARY_FUNCTION(code, cls) \
    case OP_##code:                         \
        return reinterpret_cast<PyCFunction>(unary_function<OP_##code>);
        TAPEGRAD_UNARY_OPS(TAPEGRAD_UNARY_FUNCTION)
#undef TAPEGRAD_UNARY_FUNCTION
#define TAPEGRAD_BINARY_FUNCTION(code, cls) \
    case OP_##code:                          \
        return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(binary_function<OP_##code>));
        TAPEGRAD_BINARY_OPS(TAPEGRAD_BINARY_FUNCTION)
#undef TAPEGRAD_BINARY_FUNCTION
        default:
            return nullptr;
    }
}

PyObject* register_hook(PyObject* tensor_obj, PyObject* fn) {
    if (!is_tensor(tensor_obj) || !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "register_hook: expected a Tensor and a callable");
        return nullptr;
    }
    auto* t = reinterpret_cast<TensorObject*>(tensor_obj);
    if (!(t->flags & T_REQUIRES_GRAD)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "register_hook: the tensor does not require grad, so no gradient flows "
                        "into it; make it with requires_grad=True");
        return nullptr;
    }
    // A leaf's rows, on every tape, find its hooks through the leaf itself
    // (Tape::hooks_of); a recorded tensor's are kept with its row on the tape
    // that holds its history, which need not be the current one (a Tape
    // context's), on the row where its gradient collects (Note [Versions]).
    const bool leaf = t->flags & T_LEAF;
    Tape* home = leaf ? current_tape() : (t->epoch ? tape_of_epoch(t->epoch) : nullptr);
    const uint32_t node = home ? identity_row(*home, find_node(*home, t)) : UINT32_MAX;
    if (!leaf && node == UINT32_MAX) {
        PyErr_SetString(PyExc_RuntimeError,
                        "register_hook: the tensor's history is gone (freed by a backward(), or "
                        "cleared), so no gradient will flow into it");
        return nullptr;
    }
    if (leaf && !home) return nullptr;
    if (!t->hooks && !(t->hooks = PyList_New(0))) return nullptr;
    if (PyList_Append(t->hooks, fn) < 0) return nullptr;
    track(t);  // Note [Tracked tensors]
    if (!leaf) {
        home->rows().hook_row(node, t->hooks);
    }
    return Py_NewRef(t->hooks);
}

PyObject* apply_unary(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    uint8_t code;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_unary(code, a) takes 2 arguments");
        return nullptr;
    }
    if (!read_code(args[0], 1, code)) return nullptr;
    return apply(code, args[1], nullptr);
}

PyObject* apply_binary(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    uint8_t code;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "apply_binary(code, a, b) takes 3 arguments");
        return nullptr;
    }
    if (!read_code(args[0], 2, code)) return nullptr;
    return apply(code, args[1], args[2]);
}

// The operators, as the type's number slots: `a * b` is one native call.
// Python calls a slot for either operand order, so `2.0 * t` lands here too.
template <uint8_t CODE>
PyObject* binary_slot(PyObject* a, PyObject* b) {
    return apply(CODE, a, b, true);
}

template <uint8_t CODE>
PyObject* unary_slot(PyObject* a) {
    return apply(CODE, a, nullptr, true);
}

PyObject* power_slot(PyObject* a, PyObject* b, PyObject* modulo) {
    if (modulo != Py_None) Py_RETURN_NOTIMPLEMENTED;
    return apply(OP_POW, a, b, true);
}

PyObject* positive_slot(PyObject* a) { return Py_NewRef(a); }

// divmod(a, b) would hand back the quotient floor(a / b), whose derivative is
// zero almost everywhere: refused, pointing to what records.
PyObject* divmod_slot(PyObject*, PyObject*) {
    PyErr_SetString(PyExc_TypeError,
                    "divmod() on a Tensor: the quotient floor(a / b) has no useful gradient. Use a % b "
                    "(recorded, as tapegrad.remainder) and, for the quotient, np.floor_divide on the values "
                    "(t.data)");
    return nullptr;
}

// Note [In-place operators]
// `t += x` (and -=, *=, /=), as PyTorch users write them. Inside no_grad(),
// where optimizer steps belong, the value is replaced, keeping its shape and
// dtype (Note [Versions]: graphs recorded earlier keep the value they saw).
// With grad mode on they record: `t += x` is `t = t + x`, a new tensor bound
// to the name (so `total += w * w` on a constant total keeps w's gradient),
// except on a leaf that requires grad, where PyTorch raises too. Native slots:
// an optimizer's update loop pays no Python per parameter.
template <uint8_t CODE>
PyObject* inplace_slot(PyObject* self, PyObject* other) {
    static const char* symbol = CODE == OP_ADD ? "+=" : CODE == OP_SUB ? "-=" : CODE == OP_MUL ? "*=" : "/=";
    auto* t = reinterpret_cast<TensorObject*>(self);
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    if (tape->grad_mode()) {
        if ((t->flags & T_LEAF) && (t->flags & T_REQUIRES_GRAD)) {
            PyObject* label = get_label(self, nullptr);
            PyErr_Format(PyExc_RuntimeError,
                         "'%S' is a leaf that requires grad, so '%s' on it would change a value the "
                         "recorded graph depends on. Put the update inside `with "
                         "tapegrad.no_grad():` (as an optimizer step in PyTorch), or write `t = t %c "
                         "x` to record a new tensor.",
                         label ? label : Py_None, symbol, symbol[0]);
            Py_XDECREF(label);
            return nullptr;
        }
        return apply(CODE, self, other);
    }
    if (!update_in_place(self, CODE, other)) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {  // numpy's message, with the update named
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyErr_NormalizeException(&type, &value, &traceback);
            PyObject* label = get_label(self, nullptr);
            PyErr_Format(PyExc_ValueError, "'%S' %s x: %S", label ? label : Py_None, symbol,
                         value ? value : Py_None);
            Py_XDECREF(label);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
        }
        return nullptr;
    }
    return Py_NewRef(self);
}

bool init_tensor_type(PyObject* module) {
    static PyMethodDef methods[] = {
        {"__array_ufunc__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tensor_array_ufunc)),
         METH_FASTCALL | METH_KEYWORDS, "numpy's ufuncs on Tensors record, or raise TypeError naming the ufunc."},
        {nullptr, nullptr, 0, nullptr}};
    static PyType_Slot slots[] = {
        {Py_nb_add, reinterpret_cast<void*>(binary_slot<OP_ADD>)},
        {Py_nb_subtract, reinterpret_cast<void*>(binary_slot<OP_SUB>)},
        {Py_nb_multiply, reinterpret_cast<void*>(binary_slot<OP_MUL>)},
        {Py_nb_true_divide, reinterpret_cast<void*>(binary_slot<OP_DIV>)},
        {Py_nb_remainder, reinterpret_cast<void*>(binary_slot<OP_REMAINDER>)},
        {Py_nb_divmod, reinterpret_cast<void*>(divmod_slot)},
        {Py_nb_power, reinterpret_cast<void*>(power_slot)},
        {Py_nb_negative, reinterpret_cast<void*>(unary_slot<OP_NEG>)},
        {Py_nb_absolute, reinterpret_cast<void*>(unary_slot<OP_ABS>)},
        {Py_nb_inplace_add, reinterpret_cast<void*>(inplace_slot<OP_ADD>)},
        {Py_nb_inplace_subtract, reinterpret_cast<void*>(inplace_slot<OP_SUB>)},
        {Py_nb_inplace_multiply, reinterpret_cast<void*>(inplace_slot<OP_MUL>)},
        {Py_nb_inplace_true_divide, reinterpret_cast<void*>(inplace_slot<OP_DIV>)},
        {Py_nb_positive, reinterpret_cast<void*>(positive_slot)},
        {Py_nb_matrix_multiply, reinterpret_cast<void*>(apply_matmul)},  // `ndarray @ t`: Note [numpy dispatch]
        {Py_tp_methods, methods},
        {Py_tp_doc, const_cast<char*>("The native part of tapegrad.Tensor.")},
        {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
        {Py_tp_init, reinterpret_cast<void*>(tensor_init)},
        {Py_tp_dealloc, reinterpret_cast<void*>(tensor_dealloc)},
        {Py_tp_traverse, reinterpret_cast<void*>(tensor_traverse)},
        {Py_tp_clear, reinterpret_cast<void*>(tensor_clear)},
        {Py_tp_getset, tensor_getset},
        {0, nullptr}};
    static PyType_Spec spec = {"tapegrad._core.TensorBase", sizeof(TensorObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, slots};
    PyObject* type = PyType_FromSpec(&spec);
    if (!type) return false;
    TensorBaseType = reinterpret_cast<PyTypeObject*>(type);
    tensor_class = TensorBaseType;
    Py_INCREF(type);  // one reference for the module, one kept here
    return PyModule_AddObject(module, "TensorBase", type) == 0;
}

}  // namespace tapegrad
