#include "pool.hpp"

namespace tapegrad {

namespace {
PyArrayObject* arr(PyObject* o) { return reinterpret_cast<PyArrayObject*>(o); }
}  // namespace

PyObject* BufferPool::take(int nd, const npy_intp* dims, int type) {
    for (size_t k = free_.size(); k-- > 0;) {  // warmest first
        PyArrayObject* a = arr(free_[k].array);
        if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != nd) continue;
        bool same = true;
        for (int i = 0; same && i < nd; ++i) same = PyArray_DIM(a, i) == dims[i];
        if (!same) continue;
        PyObject* found = free_[k].array;
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(k));
        bytes_ -= static_cast<size_t>(PyArray_NBYTES(a));
        return found;
    }
    for (size_t k = 0; k < lent_.size(); ++k) {  // back from the caller (Note [Lent buffers])
        PyArrayObject* a = arr(lent_[k].array);
        if (!is_unseen(lent_[k].array)) continue;
        // The caller could reach the array (g.base) and change its byte order or
        // strides: such an array is no buffer of ours any more.
        if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) || PyArray_ISBYTESWAPPED(a)) {
            let_go_of_lent(k--);
            continue;
        }
        if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != nd) continue;
        bool same = true;
        for (int i = 0; same && i < nd; ++i) same = PyArray_DIM(a, i) == dims[i];
        if (!same) continue;
        PyObject* found = Py_NewRef(lent_[k].array);
        let_go_of_lent(k);
        PyArray_ENABLEFLAGS(a, NPY_ARRAY_WRITEABLE);
        return found;
    }
    return PyArray_Empty(nd, const_cast<npy_intp*>(dims), PyArray_DescrFromType(type), 0);
}

PyObject* BufferPool::lend(PyObject* array) {
    if (!array || !PyArray_Check(array)) return array;
    PyArrayObject* a = arr(array);
    const size_t nbytes = static_cast<size_t>(PyArray_NBYTES(a));
    if (nbytes < MIN_BYTES || nbytes > MAX_BYTES || !is_unseen(array) || !PyArray_IS_C_CONTIGUOUS(a))
        return array;
    PyObject* view = PyArray_View(a, nullptr, &PyArray_Type);  // its base holds the array
    if (!view) {
        PyErr_Clear();
        return array;  // handed over itself: only the reuse is lost
    }
    // One that nobody holds now, yet this replay did not take (numpy allocated
    // the output it would have held: a matrix product's), is of no use: back to
    // malloc, which hands its memory to numpy's next allocation, touched already.
    for (size_t k = lent_.size(); k-- > 0;)
        if (is_unseen(lent_[k].array)) let_go_of_lent(k);
    while (!lent_.empty() && (lent_.size() >= MAX_LENT || lent_bytes_ + nbytes > MAX_BYTES)) let_go_of_lent(0);
    lent_.push_back({array, nbytes});
    lent_bytes_ += nbytes;
    return view;
}

void BufferPool::let_go_of_lent(size_t k) {
    PyObject* array = lent_[k].array;
    lent_bytes_ -= lent_[k].bytes;
    lent_.erase(lent_.begin() + static_cast<std::ptrdiff_t>(k));
    Py_DECREF(array);
}

void BufferPool::give(PyObject* array, bool cold) {
    if (!array) return;
    PyArrayObject* a = arr(array);
    const size_t nbytes = PyArray_Check(array) ? static_cast<size_t>(PyArray_NBYTES(a)) : 0;
    // Only what nobody else can see (Note [Unseen arrays]).
    const bool keep = nbytes >= MIN_BYTES && nbytes <= MAX_BYTES && is_unseen(array) &&
                      PyArray_IS_C_CONTIGUOUS(a);
    if (!keep) {
        Py_DECREF(array);
        return;
    }
    PyArray_ENABLEFLAGS(a, NPY_ARRAY_WRITEABLE);  // op outputs are handed out read-only
    while (!free_.empty() && (free_.size() >= MAX_ARRAYS || bytes_ + nbytes > MAX_BYTES))
        evict(0);  // the coldest
    if (cold) free_.insert(free_.begin(), {array, generation_});
    else free_.push_back({array, generation_});
    bytes_ += nbytes;
}

void BufferPool::next_generation() {
    ++generation_;
    // Cold arrays sit in front of warmer ones given earlier: look at every one.
    for (size_t k = free_.size(); k-- > 0;)
        if (free_[k].given + 1 < generation_) evict(k);
}

void BufferPool::evict(size_t k) {
    PyObject* array = free_[k].array;
    free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(k));
    bytes_ -= static_cast<size_t>(PyArray_NBYTES(arr(array)));
    Py_DECREF(array);
}

void BufferPool::release() {
    std::vector<Entry> old;
    old.swap(free_);
    std::vector<Lent> lent;
    lent.swap(lent_);
    bytes_ = lent_bytes_ = 0;
    for (const Entry& e : old) Py_DECREF(e.array);
    for (const Lent& l : lent) Py_DECREF(l.array);
}

}  // namespace tapegrad
