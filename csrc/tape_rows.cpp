#include "tape_rows.hpp"

#include "array_ops.hpp"
#include "arrays.hpp"

namespace tapegrad {

size_t RowStore::data_bytes(PyObject* arr) {
    if (!PyArray_Check(arr)) return 0;  // an array op's constant number
    auto* a = reinterpret_cast<PyArrayObject*>(arr);
    for (int d = 0; d < PyArray_NDIM(a); ++d)
        if (PyArray_STRIDES(a)[d] == 0 && PyArray_DIMS(a)[d] > 1) return PyArray_ITEMSIZE(a);
    return static_cast<size_t>(PyArray_NBYTES(a));
}

size_t RowStore::params_bytes(PyObject* params) {
    if (PyArray_Check(params)) return data_bytes(params);
    if (!PyTuple_Check(params) && !PyList_Check(params)) return 0;
    size_t total = 0;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(params); ++k)
        total += params_bytes(PySequence_Fast_GET_ITEM(params, k));
    return total;
}

const std::vector<uint32_t>& RowStore::operation_rows() {
    for (; op_rows_scanned_ < op_.size(); ++op_rows_scanned_) {
        if (is_operation(op_[op_rows_scanned_]))
            op_rows_.push_back(static_cast<uint32_t>(op_rows_scanned_));
    }
    return op_rows_;
}

std::vector<uint32_t> RowStore::inputs_of(uint32_t row) const {
    const uint8_t code = op_[row];
    if (code == OP_CUSTOM) return user_records_[in0_[row]].inputs;
    if (code == OP_VERSION) return {in0_[row]};
    std::vector<uint32_t> nodes;
    if (is_array_op(code)) {
        for (int64_t in : array_records_[in0_[row]].inputs)
            if (in >= 0) nodes.push_back(static_cast<uint32_t>(in));
    } else if (code > OP_STALE) {
        if (!(flags_[row] & F_A_CONST)) nodes.push_back(in0_[row]);
        if (op_arity(code) == 2 && !(flags_[row] & F_B_CONST)) nodes.push_back(in1_[row]);
    }
    return nodes;
}

OwnedRefs RowStore::swap_refs(OwnedRefs refs) {
    arrays_.swap(refs.arrays);
    user_records_.swap(refs.user_records);
    array_records_.swap(refs.array_records);
    leaf_tensors_.swap(refs.leaf_tensors);
    row_hooks_.swap(refs.row_hooks);
    row_origins_.swap(refs.row_origins);
    return refs;
}

void OwnedRefs::release(BufferPool& pool) {
    for (PyObject* a : arrays) pool.give(a, /*cold=*/true);  // read before the sweep's last buffers
    for (UserRecord& r : user_records) {
        Py_DECREF(r.record);
        for (PyObject* h : r.saved) Py_DECREF(h);
    }
    for (ArrayRecord& r : array_records) Py_DECREF(r.params);
    for (PyObject* leaf : leaf_tensors) Py_DECREF(leaf);
    for (auto& [row, hooks] : row_hooks) Py_DECREF(hooks);
    for (auto& [row, origin] : row_origins) Py_DECREF(origin);
    for (PyObject* r : references) Py_XDECREF(r);
    *this = OwnedRefs();
}

void RowStore::remap(const RowMap& map, OwnedRefs& old) {
    constexpr uint32_t NONE = UINT32_MAX;
    std::vector<uint32_t> const_map(consts_.size(), NONE), array_map(arrays_.size(), NONE),
        leaf_map(leaf_tensors_.size(), NONE);
    std::vector<double> new_consts;
    OwnedRefs fresh;  // what the compacted rows will own
    auto array_slot = [&](uint64_t k) {
        if (array_map[k] == NONE) {
            array_map[k] = static_cast<uint32_t>(fresh.arrays.size());
            fresh.arrays.push_back(Py_NewRef(arrays_[k]));
        }
        return array_map[k];
    };
    auto const_slot = [&](uint32_t k) {
        if (const_map[k] == NONE) {
            const_map[k] = static_cast<uint32_t>(new_consts.size());
            new_consts.push_back(consts_[k]);
        }
        return const_map[k];
    };
    std::vector<uint8_t> new_op, new_flags;
    std::vector<uint32_t> new_in0, new_in1;
    std::vector<Value> new_val;
    for (size_t i = 0; i < map.old_size(); ++i) {
        if (!map.kept(i)) continue;
        const uint32_t r = static_cast<uint32_t>(i);
        const uint8_t code = op_[r], f = flags_[r];
        uint32_t a = in0_[r], b = in1_[r];
        Value v = val_[r];
        if (f & F_ARRAY) v.index = array_slot(v.index);
        if (code == OP_LEAF) {
            if (a != NONE) {
                if (leaf_map[a] == NONE) {
                    leaf_map[a] = static_cast<uint32_t>(fresh.leaf_tensors.size());
                    fresh.leaf_tensors.push_back(Py_NewRef(leaf_tensors_[a]));
                }
                a = leaf_map[a];
            }
        } else if (code == OP_CUSTOM) {
            UserRecord u = user_records_[a];
            for (uint32_t& x : u.inputs) x = map[x];
            for (uint32_t& o : u.outputs) o = map[o];
            for (uint32_t& x : u.saved_rows) x = map[x];
            u.record = Py_NewRef(u.record);
            for (PyObject* h : u.saved) Py_INCREF(h);
            a = static_cast<uint32_t>(fresh.user_records.size());
            v.index = a;
            fresh.user_records.push_back(std::move(u));
        } else if (code >= OP_COUNT) {  // an array op
            ArrayRecord ar = array_records_[a];
            for (int64_t& x : ar.inputs)
                x = x >= 0 ? static_cast<int64_t>(map[static_cast<size_t>(x)])
                           : -static_cast<int64_t>(array_slot(static_cast<uint64_t>(-x - 1))) - 1;
            ar.params = Py_NewRef(ar.params);
            a = static_cast<uint32_t>(fresh.array_records.size());
            fresh.array_records.push_back(std::move(ar));
        } else if (code == OP_VERSION) {
            a = map[a];
        } else if (code > OP_STALE) {
            a = (f & F_A_NUMBER) ? const_slot(a) : (f & F_A_ARRAY) ? array_slot(a) : map[a];
            if (op_arity(code) == 2)
                b = (f & F_B_NUMBER) ? const_slot(b) : (f & F_B_ARRAY) ? array_slot(b) : map[b];
        }
        new_op.push_back(code);
        new_flags.push_back(f);
        new_in0.push_back(a);
        new_in1.push_back(b);
        new_val.push_back(v);
    }
    // Side tables keyed by row.
    for (const auto& [row, hooks] : row_hooks_)
        if (map.kept(row)) fresh.row_hooks[map[row]] = Py_NewRef(hooks);
    for (const auto& [row, origin] : row_origins_)
        if (map.kept(row)) fresh.row_origins[map[row]] = Py_NewRef(origin);
    op_.swap(new_op);
    flags_.swap(new_flags);
    in0_.swap(new_in0);
    in1_.swap(new_in1);
    val_.swap(new_val);
    consts_.swap(new_consts);
    OwnedRefs released = swap_refs(std::move(fresh));
    released.references = std::move(old.references);
    old = std::move(released);
    op_rows_.clear();
    op_rows_scanned_ = 0;
    n_ops_ = 0;
    for (uint8_t code : op_) n_ops_ += is_operation(code);
    array_bytes_ = 0;
    for (PyObject* a : arrays_) array_bytes_ += data_bytes(a);
    for (const ArrayRecord& r : array_records_) array_bytes_ += params_bytes(r.params);
}

void RowStore::clear(OwnedRefs& old) {
    OwnedRefs released = swap_refs(OwnedRefs());
    released.references = std::move(old.references);
    old = std::move(released);
    op_.clear();
    flags_.clear();
    in0_.clear();
    in1_.clear();
    val_.clear();
    consts_.clear();
    op_rows_.clear();
    op_rows_scanned_ = 0;
    n_ops_ = 0;
    label_records_ = 0;
    array_bytes_ = 0;
    // Keep the capacity of what is refilled at the same pace next time.
    arrays_.reserve(old.arrays.capacity());
}

}  // namespace tapegrad
