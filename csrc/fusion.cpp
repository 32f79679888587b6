#include "fusion.hpp"

#include <algorithm>
#include <atomic>
#include <cfenv>
#include <cstdlib>
#include <map>
#include <memory>
#include <system_error>
#include <thread>

#include "array_ops.hpp"
#include "kernels.hpp"
#include "numeric_sweep.hpp"
#include "ops.hpp"
#include "pool.hpp"

namespace tapegrad {

namespace {

using namespace kernels;

// Elements per block: a group's values and adjoints for one block stay in cache.
constexpr npy_intp BLOCK = 2048;

// Note [Fused threads]
// A fused group's blocks are independent: each reads its operands' elements
// and writes its own elements of the root and the partials. So a large group
// is shared out, as PyTorch shares out an elementwise kernel: helper threads
// and the caller take the next block left until none is (a thread slowed by
// another process takes fewer), each in values and adjoints of its own and
// with its own floating-point flags; an exception in any sends the group row
// by row. The loops are numpy's inner loops and the op tables' kernels, which
// touch no Python object, so the helpers run without the GIL, which the
// caller keeps. At most one thread per MIN_BLOCKS_PER_THREAD blocks, and no
// more than TAPEGRAD_NUM_THREADS, else OMP_NUM_THREADS (as PyTorch reads it),
// else the machine's cores; 1: the caller's thread alone.
constexpr npy_intp MIN_BLOCKS_PER_THREAD = 32;

size_t thread_limit() {
    static const size_t limit = [] {
        for (const char* name : {"TAPEGRAD_NUM_THREADS", "OMP_NUM_THREADS"}) {
            const char* v = std::getenv(name);
            const long n = v ? std::strtol(v, nullptr, 10) : 0;
            if (n >= 1) return static_cast<size_t>(n);
        }
        return static_cast<size_t>(std::max(1u, std::thread::hardware_concurrency()));
    }();
    return limit;
}

// Threads beside the caller's for a group of `blocks` blocks.
size_t helper_threads(npy_intp blocks) {
    const size_t wanted = static_cast<size_t>(std::max<npy_intp>(1, blocks / MIN_BLOCKS_PER_THREAD));
    return std::min(wanted, thread_limit()) - 1;
}

// The exceptions that send a block row by row: those numpy's errstate acts on
// (underflow too: its default ignores it, but under="raise" must raise), and,
// in the backward, a partial that underflows where eager's products need not.
constexpr int WATCHED = FE_DIVBYZERO | FE_OVERFLOW | FE_INVALID | FE_UNDERFLOW;

PyArrayObject* arr(PyObject* o) { return reinterpret_cast<PyArrayObject*>(o); }

bool plain_contiguous(PyObject* a) {
    PyArrayObject* x = arr(a);
    return PyArray_IS_C_CONTIGUOUS(x) && PyArray_ISALIGNED(x) && !PyArray_ISBYTESWAPPED(x);
}

// Whether `row` may join a group, and its step if so: an elementwise op on
// operands of its own layout, numbers or scalar rows, with a loop to run.
bool fusable(const RowStore& rows, uint32_t row, FusedStep& step) {
    const uint8_t code = rows.op(row), f = rows.flags(row);
    if (!RowStore::is_operation(code) || code == OP_CUSTOM || !(f & F_ARRAY) || is_array_op(code)) return false;
    PyObject* out = rows.array_of(row);
    const int type = PyArray_TYPE(arr(out));
    if (type != NPY_FLOAT32 && type != NPY_FLOAT64) return false;
    const bool binary = op_arity(code) == 2;
    // An array of the row's layout (a row's or a constant), or a number.
    auto operand_ok = [&](uint32_t index, bool number, bool constant_array) {
        if (number) return true;
        if (constant_array) return same_layout(rows.array(index), out) && plain_contiguous(rows.array(index));
        return !rows.is_array(index) || same_layout(rows.array_of(index), out);
    };
    const bool a_array = (f & F_A_ARRAY) || (!(f & F_A_NUMBER) && rows.is_array(rows.in0(row)));
    if (!operand_ok(rows.in0(row), f & F_A_NUMBER, f & F_A_ARRAY) || (!binary && !a_array)) return false;
    if (binary && !operand_ok(rows.in1(row), f & F_B_NUMBER, f & F_B_ARRAY)) return false;
    // x ** e takes numpy's shortcuts for some constant e (array_forward); a
    // scalar row's e would choose one per value.
    double exponent = 0.0;
    const double* constant_exponent = nullptr;
    if (code == OP_POW) {
        if (f & F_B_NUMBER) {
            exponent = rows.constant(rows.in1(row));
            constant_exponent = a_array ? &exponent : nullptr;
        } else if (!(f & F_B_ARRAY) && !rows.is_array(rows.in1(row))) {
            return false;
        }
    }
    step.row = row;
    step.code = code;
    step.loop = ufunc_inner_loop(code, type, constant_exponent);
    if (step.loop.has_ufunc && !step.loop.function) return false;
    step.loop_unary = binary && step.loop.function && step.loop.inputs == 1;
    return !step.loop.function || step.loop.inputs == (binary && !step.loop_unary ? 2 : 1);
}

// One operand of a step as the loops read it for the block at `start`: a
// pointer to its elements, or null and `value` for every element.
template <class T>
const T* operand_at(const RowStore& rows, const FusedOperand& o, npy_intp start, const T* values, T& value) {
    switch (o.kind) {
    case FusedOperand::STEP:
        return values + static_cast<npy_intp>(o.index) * BLOCK;
    case FusedOperand::CONSTANT:
        return static_cast<const T*>(PyArray_DATA(arr(rows.array(o.index)))) + start;
    case FusedOperand::ROW:
        if (o.array) return static_cast<const T*>(PyArray_DATA(arr(rows.array_of(o.index)))) + start;
        value = static_cast<T>(rows.val(o.index).number);
        return nullptr;
    default:
        value = static_cast<T>(o.number);
        return nullptr;
    }
}

// A step's forward over one block, into y.
template <class T>
void step_forward(const RowStore& rows, const FusedStep& step, npy_intp start, npy_intp length,
                  const T* values, T* y) {
    T va = T(0), vb = T(0);
    const T* pa = operand_at<T>(rows, step.a, start, values, va);
    const T* pb = step.b.kind != FusedOperand::ABSENT ? operand_at<T>(rows, step.b, start, values, vb) : nullptr;
    if (step.loop.function) {  // numpy's loop: a number is a zero stride over one element
        char* args[3];
        npy_intp strides[3];
        int k = 0;
        args[k] = const_cast<char*>(reinterpret_cast<const char*>(pa ? pa : &va));
        strides[k++] = pa ? static_cast<npy_intp>(sizeof(T)) : 0;
        if (step.b.kind != FusedOperand::ABSENT && !step.loop_unary) {
            args[k] = const_cast<char*>(reinterpret_cast<const char*>(pb ? pb : &vb));
            strides[k++] = pb ? static_cast<npy_intp>(sizeof(T)) : 0;
        }
        args[k] = reinterpret_cast<char*>(y);
        strides[k] = sizeof(T);
        step.loop.function(args, &length, strides, step.loop.data);
        return;
    }
    visit_op(step.code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        if constexpr (Op::arity == 1) {
            forward_kernel<Op, T>(length, pa, y);
        } else {
            with_choice<2>(pa != nullptr, [&](auto a_array) {
                with_choice<2>(pb != nullptr, [&](auto b_array) {
                    forward_kernel2<Op, T, a_array(), b_array()>(length, pa, va, pb, vb, y);
                });
            });
        }
    });
}

// A step's backward over one block: its operands' adjoints (or partials) from
// its own, g, by the op's kernel. mode_b MERGED: both operands are one.
template <class T>
void step_backward(const RowStore& rows, const FusedStep& step, npy_intp start, npy_intp length,
                   const T* values, const T* out, const T* g, T* da, int mode_a, T* db, int mode_b) {
    T va = T(0), vb = T(0);
    const T* pa = operand_at<T>(rows, step.a, start, values, va);
    const T* pb = step.b.kind != FusedOperand::ABSENT ? operand_at<T>(rows, step.b, start, values, vb) : nullptr;
    visit_op(step.code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        with_choice<2>(pa != nullptr, [&](auto a_array) {
            with_choice<3>(mode_a, [&](auto ma) {
                if constexpr (Op::arity == 2) {
                    with_choice<2>(pb != nullptr, [&](auto b_array) {
                        if (mode_b == MERGED) {
                            if constexpr (ma() != NONE)
                                kernel_loop<Op, T, a_array(), b_array(), ma(), MERGED>(length, pa, va, pb, vb, out,
                                                                                    g, da, da);
                            return;
                        }
                        with_choice<3>(mode_b, [&](auto mb) {
                            kernel_loop<Op, T, a_array(), b_array(), ma(), mb()>(length, pa, va, pb, vb, out, g,
                                                                                da, db);
                        });
                    });
                } else if constexpr (ma() != NONE && a_array()) {
                    kernel_loop<Op, T, true, false, ma(), NONE>(length, pa, va, nullptr, T(0), out, g, da, nullptr);
                }
            });
        });
    });
}

}  // namespace

FusedGroups::~FusedGroups() {
    for (FusedGroup& group : groups_)
        for (PyObject*& p : group.partials) Py_CLEAR(p);
}

void FusedGroups::plan(const RowStore& rows, const std::vector<uint32_t>& order,
                       const std::vector<uint8_t>& read_outside) {
    groups_.clear();
    root_of_.clear();
    member_.clear();
    // A tape of scalars (most of them) has nothing to group: no pass over its readers.
    const bool any = std::any_of(order.begin(), order.end(), [&](uint32_t row) {
        return (rows.flags(row) & F_ARRAY) && rows.op(row) != OP_CUSTOM && !is_array_op(rows.op(row));
    });
    if (!any) return;
    const size_t n = rows.size();
    // The group every reader of a row so far belongs to; -1: readers outside
    // any group, or in two.
    constexpr int UNREAD = -2;
    std::vector<int> readers(n, UNREAD), member(n, -1);
    std::vector<FusedGroup> found;
    for (size_t i = order.size(); i-- > 0;) {  // readers before what they read
        const uint32_t row = order[i];
        FusedStep step;
        if (fusable(rows, row, step)) {
            const int g = readers[row];
            if (read_outside[row] || g < 0 || !same_layout(rows.array_of(row), found[static_cast<size_t>(g)].layout.ptr())) {
                member[row] = static_cast<int>(found.size());
                found.emplace_back();
                found.back().layout = py::reinterpret_steal<py::object>(layout_of(rows.array_of(row)));
                if (!found.back().layout) throw py::error_already_set();
            } else {
                member[row] = g;
            }
            found[static_cast<size_t>(member[row])].steps.push_back(step);
        }
        for (uint32_t in : rows.inputs_of(row))
            readers[in] = readers[in] == UNREAD || readers[in] == member[row] ? member[row] : -1;
    }
    root_of_.assign(n, -1);
    member_.assign(n, -1);
    for (size_t k = 0; k < found.size(); ++k) {
        FusedGroup& group = found[k];
        if (group.steps.size() < 2) continue;  // one row: nothing to fuse
        std::reverse(group.steps.begin(), group.steps.end());
        std::map<uint32_t, uint32_t> step_of;  // row -> its step
        std::map<uint32_t, int> target_of;     // outside row -> its partials
        for (uint32_t s = 0; s < group.steps.size(); ++s) step_of[group.steps[s].row] = s;
        auto resolve = [&](FusedOperand& o, uint32_t index, bool number, bool constant_array) {
            if (number) {
                o.kind = FusedOperand::NUMBER;
                o.number = rows.constant(index);
            } else if (constant_array) {
                o.kind = FusedOperand::CONSTANT;
                o.index = index;
            } else if (auto s = step_of.find(index); s != step_of.end()) {
                o.kind = FusedOperand::STEP;
                o.index = s->second;
            } else {
                o.kind = FusedOperand::ROW;
                o.index = index;
                o.array = rows.is_array(index);
                auto [t, added] = target_of.emplace(index, static_cast<int>(group.targets.size()));
                if (added) group.targets.push_back(index);
                o.target = t->second;
            }
        };
        for (FusedStep& step : group.steps) {
            const uint8_t f = rows.flags(step.row);
            resolve(step.a, rows.in0(step.row), f & F_A_NUMBER, f & F_A_ARRAY);
            if (op_arity(step.code) == 2) resolve(step.b, rows.in1(step.row), f & F_B_NUMBER, f & F_B_ARRAY);
        }
        const int id = static_cast<int>(groups_.size());
        root_of_[group.steps.back().row] = id;
        for (const FusedStep& step : group.steps) member_[step.row] = id;
        group.partials.assign(group.targets.size(), nullptr);
        groups_.push_back(std::move(group));
    }
}

FusedGroups::Ran FusedGroups::run(Tape& tape, int id, bool may_fuse, bool with_partials,
                                  const std::vector<uint8_t>* needed) {
    FusedGroup& group = groups_[static_cast<size_t>(id)];
    group.fused = false;  // its partials went back to the pool as the last replay ended (release())
    if (!may_fuse) return Ran::BY_ROWS;
    RowStore& rows = tape.rows();
    for (uint32_t r : group.targets)
        if (rows.is_array(r) && !plain_contiguous(rows.array_of(r))) return Ran::BY_ROWS;
    PyArrayObject* layout = arr(group.layout.ptr());
    bool any_partials = false;
    if (with_partials) {
        for (size_t k = 0; k < group.targets.size(); ++k) {
            const uint32_t node = group.targets[k];
            if (!rows.wants_gradient(node) || (needed && !(*needed)[node])) continue;
            group.partials[k] = tape.pool.take(PyArray_NDIM(layout), PyArray_DIMS(layout), PyArray_TYPE(layout));
            if (!group.partials[k]) return Ran::FAILED;
            any_partials = true;
        }
    }
    const uint32_t root = group.steps.back().row;
    tape.pool.give(rows.swap_array_value(root, Py_NewRef(Py_None)));  // as compute_row
    PyObject* out = tape.pool.take(PyArray_NDIM(layout), PyArray_DIMS(layout), PyArray_TYPE(layout));
    if (!out) return Ran::FAILED;
    const Ran ran = PyArray_TYPE(layout) == NPY_FLOAT32 ? run_blocks<float>(tape, group, out, any_partials)
                                                        : run_blocks<double>(tape, group, out, any_partials);
    if (ran != Ran::FUSED) {
        tape.pool.give(out);
        for (PyObject*& p : group.partials) {
            if (p) tape.pool.give(p);
            p = nullptr;
        }
        return ran;
    }
    PyArray_CLEARFLAGS(arr(out), NPY_ARRAY_WRITEABLE);
    Py_DECREF(rows.swap_array_value(root, out));  // None
    group.fused = true;
    return Ran::FUSED;
}

template <class T>
FusedGroups::Ran FusedGroups::run_blocks(Tape& tape, FusedGroup& group, PyObject* out, bool with_partials) {
    const RowStore& rows = tape.rows();
    const size_t m = group.steps.size();
    const size_t block_bytes = static_cast<size_t>(BLOCK) * sizeof(T);
    scratch_.resize(std::max(scratch_.size(), (with_partials ? 2 : 1) * m * block_bytes / sizeof(double) + 1));
    T* callers_values = reinterpret_cast<T*>(scratch_.data());  // the calling thread's
    T* callers_adjoints = callers_values + m * BLOCK;
    static const std::vector<T> ones(BLOCK, T(1));
    // Where each step's backward writes: an operand's adjoint (its first
    // writer writes it, later ones add), or nothing (a number, a constant, a
    // row whose partials are not wanted).
    std::vector<int> mode_a(m, NONE), mode_b(m, NONE);
    if (with_partials) {
        std::vector<uint8_t> step_written(m, 0), target_written(group.targets.size(), 0);
        auto mode_of = [&](const FusedOperand& o) {
            uint8_t* written = nullptr;
            if (o.kind == FusedOperand::STEP) written = &step_written[o.index];
            else if (o.kind == FusedOperand::ROW && group.partials[static_cast<size_t>(o.target)])
                written = &target_written[static_cast<size_t>(o.target)];
            if (!written) return int(NONE);
            const int mode = *written ? ADD : WRITE;
            *written = 1;
            return mode;
        };
        for (size_t k = m; k-- > 0;) {
            const FusedStep& step = group.steps[k];
            mode_a[k] = mode_of(step.a);
            const bool same = step.b.kind == step.a.kind && step.b.index == step.a.index &&
                              (step.a.kind == FusedOperand::STEP || step.a.kind == FusedOperand::ROW);
            mode_b[k] = same ? (mode_a[k] != NONE ? int(MERGED) : int(NONE)) : mode_of(step.b);
        }
    }
    // Note [Passed adjoints]: where a step's gradient for a step operand is its own
    // (add's for both, sub's for a; the op's `passes`) and no other step adds to that
    // operand's adjoint, the operand's backward reads the step's adjoint in place:
    // no kernel copies it (and a step left with nothing to write runs none).
    // adjoint_from[k]: the step whose adjoint buffer holds step k's adjoint (k's own
    // but where passed; the root's is ones).
    std::vector<uint32_t> adjoint_from(m);
    for (size_t k = 0; k < m; ++k) adjoint_from[k] = static_cast<uint32_t>(k);
    if (with_partials) {
        std::vector<int> writers(m, 0);
        for (size_t k = 0; k < m; ++k) {
            const FusedStep& step = group.steps[k];
            if (step.a.kind == FusedOperand::STEP) ++writers[step.a.index];
            if (step.b.kind == FusedOperand::STEP && mode_b[k] != MERGED) ++writers[step.b.index];
        }
        for (size_t k = m; k-- > 0;) {  // readers first: a pass through a pass ends at the first
            const FusedStep& step = group.steps[k];
            const int passes = mode_b[k] == MERGED ? 0 : op_passes(step.code);  // x + x: 2 g
            if ((passes & PASSES_A) && step.a.kind == FusedOperand::STEP && writers[step.a.index] == 1) {
                adjoint_from[step.a.index] = adjoint_from[k];
                mode_a[k] = NONE;
            }
            if ((passes & PASSES_B) && step.b.kind == FusedOperand::STEP && writers[step.b.index] == 1) {
                adjoint_from[step.b.index] = adjoint_from[k];
                mode_b[k] = NONE;
            }
        }
    }
    auto adjoint_of = [&](const FusedOperand& o, npy_intp start, T* adjoints) -> T* {
        if (o.kind == FusedOperand::STEP) return adjoints + static_cast<npy_intp>(o.index) * BLOCK;
        if (o.kind == FusedOperand::ROW && group.partials[static_cast<size_t>(o.target)])
            return static_cast<T*>(PyArray_DATA(arr(group.partials[static_cast<size_t>(o.target)]))) + start;
        return nullptr;
    };
    T* root_value = static_cast<T*>(PyArray_DATA(arr(out)));
    const npy_intp n = PyArray_SIZE(arr(out));
    // One block, forward then backward, in a thread's own values and
    // adjoints; false when it raised a watched floating-point exception.
    auto one_block = [&](npy_intp start, T* values, T* adjoints) {
        const npy_intp length = std::min(BLOCK, n - start);
        for (size_t k = 0; k < m; ++k) {
            T* y = k + 1 == m ? root_value + start : values + k * BLOCK;
            step_forward<T>(rows, group.steps[k], start, length, values, y);
        }
        if (std::fetestexcept(WATCHED)) return false;
        if (!with_partials) return true;
        for (size_t k = m; k-- > 0;) {
            const FusedStep& step = group.steps[k];
            const bool root = k + 1 == m;
            const T* g = adjoint_from[k] + 1 == m ? ones.data() : adjoints + adjoint_from[k] * BLOCK;
            if (mode_a[k] == NONE && mode_b[k] == NONE) continue;
            const T* value = root ? root_value + start : values + k * BLOCK;
            step_backward<T>(rows, step, start, length, values, value, g, adjoint_of(step.a, start, adjoints),
                             mode_a[k],
                             step.b.kind != FusedOperand::ABSENT ? adjoint_of(step.b, start, adjoints) : nullptr,
                             mode_b[k]);
        }
        return !std::fetestexcept(WATCHED);
    };
    // Note [Fused threads]: the blocks are independent, so a large group's
    // are shared out between threads, each taking the next block left.
    const npy_intp blocks = (n + BLOCK - 1) / BLOCK;
    std::atomic<npy_intp> next{0};
    std::atomic<bool> raised{false};
    auto work = [&](T* values, T* adjoints) {
        std::feclearexcept(FE_ALL_EXCEPT);  // the flags are each thread's own
        for (npy_intp b = next++; b < blocks && !raised.load(std::memory_order_relaxed); b = next++)
            if (!one_block(b * BLOCK, values, adjoints)) raised = true;
    };
    const size_t helpers = helper_threads(blocks);
    const size_t per_thread = (with_partials ? 2 : 1) * m * static_cast<size_t>(BLOCK);
    std::vector<std::unique_ptr<T[]>> helper_scratch;  // uninitialised: each block writes before it reads
    std::vector<std::thread> started;
    for (size_t h = 0; h < helpers; ++h) {
        try {
            helper_scratch.emplace_back(new T[per_thread]);
            T* mine = helper_scratch.back().get();
            started.emplace_back(work, mine, mine + m * BLOCK);
        } catch (const std::exception&) {  // no memory or no thread to be had: fewer helpers
            break;
        }
    }
    work(callers_values, callers_adjoints);
    for (std::thread& t : started) t.join();
    return raised ? Ran::BY_ROWS : Ran::FUSED;
}

bool FusedGroups::backward(NumericRows& sweep, uint32_t row) {
    FusedGroup& group = groups_[static_cast<size_t>(group_at(row))];
    Tape& t = sweep.t;
    PyObject* out = t.rows().array_of(row);
    PyObject*& g = sweep.array_grad[t.rows().val(row).index];
    bool ok = true;
    for (size_t k = 0; k < group.targets.size() && ok; ++k) {
        PyObject*& partials = group.partials[k];
        const uint32_t node = group.targets[k];
        if (!partials || !sweep.wants(node)) continue;
        // g * partials: mul's backward for its first operand, into the node's
        // gradient. Where it has none yet and one sweep reads the partials,
        // they become it: multiplied in place (not at all for a gradient of
        // ones), no buffer written and read again.
        const bool same = t.rows().is_array(node) && same_layout(t.rows().array_of(node), out);
        if (hand_over_ && same && !sweep.array_grad[t.rows().val(node).index]) {
            if (!is_uniform(g) || uniform_value(g) != 1.0) {
                GradSink in_place;
                in_place.into = partials;
                ok = array_backward(OP_MUL, partials, partials, out, g, &in_place, nullptr, &t.pool);
            }
            sweep.array_grad[t.rows().val(node).index] = partials;
            partials = nullptr;
            sweep.reached[node] |= REACHED;
            continue;
        }
        GradSink sink;
        ok = sweep.open_sink(node, out, sink) &&
             array_backward(OP_MUL, partials, partials, out, g, &sink, nullptr, &t.pool);
        if (ok && sink.fresh) ok = sweep.add_array(node, sink.fresh);
    }
    if (!(sweep.reached[row] & KEEP) && g) sweep.spend(g);
    return ok;
}

void FusedGroups::release(BufferPool& pool) {
    for (FusedGroup& group : groups_)
        for (PyObject*& p : group.partials) {
            if (p) pool.give(p);
            p = nullptr;
        }
}

}  // namespace tapegrad
