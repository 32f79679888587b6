// The buffer pool: large arrays the tape is done with, kept for reuse.
//
// Note [Buffer pool]
// A fresh large array costs a page fault per 4 KiB the first time it is
// written, more than the arithmetic on it (1e6 float64 elements are some
// two thousand pages). So arrays that clear_history() or a
// sweep releases, and that nobody else holds, are kept here and handed out
// again as outputs of later ops and backward kernels of the same shape and
// dtype: a loop that records and differentiates the same graph every step
// then runs in memory it has already touched. Small arrays are left to
// numpy's and malloc's own caches. The pool is per tape, so per thread.
//
// Some arrays given are never asked for again (products numpy allocated
// itself, shapes no later op makes). Kept, they would make every step
// allocate that much fresh memory, page faults and all, until the pool is
// full. So an array that waits through a whole recorded graph unused is
// freed at the next reset (next_generation), where malloc hands it to the
// next step's numpy arrays: the pool holds about one step's worth.
//
// Which array take() hands out matters as much as reuse itself: an array
// still in cache is cheaper to write than one that must come from memory.
// The gradient buffers a sweep spends last were touched last, while the
// values a reset releases were read earlier in the sweep, so values go in
// cold, behind the spent buffers, and the next step's first ops write warm
// memory.
//
// Note [Lent buffers]
// A gradient that a compiled replay returns is a large array which the caller
// usually drops before the next call (a training loop's step). Handed over as
// it is, it would go back to malloc when dropped, and the next call's gradient
// would be fresh memory again: a page fault per 4 KiB, a third of an
// elementwise replay's time at 1e6 elements. So the pool lends it instead: the
// caller gets a view of the array, and the pool keeps the array itself. Once
// no view holds it any more (it is unseen again, Note [Unseen arrays]),
// take() hands it out like a pooled one, in memory already touched. A caller
// who keeps a gradient keeps its view, so a lent array is never written while
// anyone can see it. At most MAX_LENT arrays and MAX_BYTES are tracked; past
// that the oldest is let go of, and freed when its views are. A lent array
// nobody holds that a whole replay did not take (numpy allocated that output
// itself: a matrix product's) is let go of at the next lend, and a compiled
// replay ages the pool as a reset tape does (next_generation), so what no
// replay asks for goes back to malloc within a replay or two instead of
// waiting for the bounds: a training loop's first steps faulted fresh pages in
// until then.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "arrays.hpp"

namespace tapegrad {

class BufferPool {
public:
    // Arrays smaller than this are not pooled.
    static constexpr size_t MIN_BYTES = 32 * 1024;
    // At most this many arrays and this much memory wait in the pool; past
    // that the coldest go. Arrays given and never asked for again (outputs
    // numpy allocated itself) so age out instead of piling up.
    static constexpr size_t MAX_ARRAYS = 64;
    static constexpr size_t MAX_BYTES = size_t(512) << 20;

    BufferPool() = default;
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;
    ~BufferPool() { release(); }

    // A writable, C-contiguous, uninitialised array of this shape and numpy
    // type number: a pooled one when there is one, else a new one.
    PyObject* take(int nd, const npy_intp* dims, int type);

    // Offers an array (the reference is stolen): kept when nothing else holds
    // it and it owns C-contiguous data; released otherwise. take() hands out
    // the array given last first, the likeliest to be in cache; a `cold` one
    // (not touched for a while) goes behind all the others instead.
    void give(PyObject* array, bool cold = false);

    // An array to hand to the caller (the reference is stolen): a view of it,
    // the array kept to be taken again once the view is gone (Note [Lent
    // buffers]), or the array itself when it is not one the pool would keep.
    PyObject* lend(PyObject* array);
    static constexpr size_t MAX_LENT = 16;

    // A recorded graph's tape was reset: frees the arrays that have waited
    // since before the previous reset without being asked for.
    void next_generation();

    // Frees every pooled array.
    void release();

    size_t bytes() const { return bytes_; }
    size_t size() const { return free_.size(); }
    size_t lent_count() const { return lent_.size(); }

private:
    void evict(size_t k);
    void let_go_of_lent(size_t k);

    struct Entry {
        PyObject* array;
        uint64_t given;  // the generation it was given in
    };
    std::vector<Entry> free_;  // coldest first
    struct Lent {
        PyObject* array;
        size_t bytes;  // when lent: the caller may reshape or retype it since
    };
    std::vector<Lent> lent_;  // oldest first
    size_t lent_bytes_ = 0;
    size_t bytes_ = 0;
    uint64_t generation_ = 0;
};

}  // namespace tapegrad
